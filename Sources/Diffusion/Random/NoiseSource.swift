import Tensors

/// A stream of standard-normal tensors, like calling `torch.randn(shape, generator=g)` repeatedly
/// on one generator: every call draws the *next* tensor of the stream.
///
/// Implementations are value types: copying a generator forks the stream (both copies then
/// produce the same values), as `Generator.clone_state()` does in torch.
public protocol NoiseSource {
    /// The next standard-normal float32 tensor of `shape` (row-major, as torch fills it).
    mutating func randn(_ shape: [Int]) -> Tensor
}

/// Which torch generator the initial noise and the ancestral/SDE noise reproduce.
///
/// * `cpu`: `torch.Generator("cpu").manual_seed(seed)`: MT19937 (A1111 "CPU", diffusers with a CPU
///   generator, the usual choice for reproducible images across machines).
/// * `philox`: `torch.Generator("cuda").manual_seed(seed)`: Philox4x32-10 as torch's CUDA kernels
///   use it (A1111 "GPU", the default of the web UI, and "NV", its CPU emulation).
public enum RNGKind: String, CaseIterable, Sendable {
    case cpu
    case philox

    /// A fresh generator seeded like `manual_seed(seed)`.
    public func makeGenerator(seed: UInt64) -> any NoiseSource {
        switch self {
        case .cpu: return TorchCPUGenerator(seed: seed)
        case .philox: return PhiloxGenerator(seed: seed)
        }
    }
}

/// Element count of a noise shape; a negative dimension is a programming error.
@inline(__always) func noiseElementCount(_ shape: [Int]) -> Int {
    var n = 1
    for d in shape {
        precondition(d >= 0, "negative dimension in shape \(shape)")
        n *= d
    }
    return n
}
