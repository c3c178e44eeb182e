import Testing
import TestSupport
@testable import Tensors

/// Every kernel suite nests in this one. Levels forced by `forEachISA` hold for the forcing test
/// only (KernelISA.withLevel is per thread), so these tests may run beside any other.
@Suite enum KernelTests {}

/// Runs `body` at every ISA level the process supports (baseline, AVX2, AVX-512 — fewer when the
/// CPU or PAREIDOLIA_ISA caps it), each forced for this test's work only.
func forEachISA(_ body: (KernelISA) throws -> Void) rethrows {
    for level in KernelISA.allCases where level <= KernelISA.supported {
        try KernelISA.withLevel(level) { try body($0) }
    }
}

/// The same values as a new tensor of `shape` (for hand-written cases).
func tensor(_ shape: [Int], _ values: [Float]) -> Tensor {
    try! Tensor(shape: shape, scalars: values)
}

/// Deterministic values in [-1, 1).
func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var g = SplitMix(seed)
    let t = Tensor(uninitializedShape: shape)
    for i in 0..<t.count { t.pointer[i] = g.nextFloat() }
    return t
}

/// SplitMix64: a small deterministic generator for test inputs.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func nextFloat() -> Float { Float(next() >> 40) * 0x1p-23 - 1 }
}
