import CKernels
import Foundation

/// The instruction-set level the C kernels run at (chosen at run time from the CPU).
///
/// `PAREIDOLIA_ISA=avx2|sse|scalar` caps it for the whole process (OpenBLAS's kernel family
/// included), so that a machine with AVX-512 runs every path an AVX2 or baseline CPU would; the cap
/// never raises a level above what the CPU has. Tests and benchmarks may force a lower level for
/// one piece of work with `withLevel`, which affects only that work (its thread and the workers
/// `Parallel` lends it), never code running beside it.
public enum KernelISA: Int, Sendable, CustomStringConvertible, CaseIterable {
    case baseline = 0, avx2 = 1, avx512 = 2

    /// The best level this CPU (and OS) supports.
    public static var cpu: KernelISA { KernelISA(rawValue: Int(pd_isa_cpu())) ?? .baseline }
    /// The level kernels run at: the CPU's, capped by PAREIDOLIA_ISA.
    public static var supported: KernelISA { KernelISA(rawValue: Int(pd_isa_supported())) ?? .baseline }
    /// The level the calling thread's kernels use now (`supported`, or what `withLevel` forced).
    public static var current: KernelISA { KernelISA(rawValue: Int(pd_isa())) ?? .baseline }
    /// The names PAREIDOLIA_ISA takes.
    public static let environmentNames = "avx512, avx2, sse (or scalar, baseline)"

    /// A one-line complaint when PAREIDOLIA_ISA holds a value it does not know (kernels then run
    /// at the baseline); entry points report it and stop.
    public static var environmentProblem: String? {
        guard pd_isa_cap() < 0 else { return nil }
        let value = ProcessInfo.processInfo.environment["PAREIDOLIA_ISA"] ?? ""
        return "PAREIDOLIA_ISA=\(value): expected \(environmentNames)"
    }

    /// True when PAREIDOLIA_ISA holds the process below what the CPU has.
    public static var isCapped: Bool { supported < cpu }

    /// Runs `body` with the kernels of the calling thread (and of the workers `Parallel` lends it)
    /// at `level`, clamped to `supported`; returns what `body` returns. The level in effect is
    /// passed to `body`. Nothing else in the process is affected.
    public static func withLevel<R>(_ level: KernelISA, _ body: (KernelISA) throws -> R) rethrows -> R {
        let previous = pd_forced_isa()
        let effective = KernelISA(rawValue: Int(pd_set_isa(Int32(level.rawValue)))) ?? .baseline
        defer { pd_set_isa(previous) }
        return try body(effective)
    }

    public var description: String { ["baseline", "AVX2", "AVX-512"][rawValue] }
}

extension KernelISA: Comparable {
    public static func < (a: KernelISA, b: KernelISA) -> Bool { a.rawValue < b.rawValue }
}

/// The kernels' schedule and blocking knobs (measured defaults; tests and benchmarks vary them).
/// A task-local value: `KernelTuning.with` changes them for one piece of work only, and `Parallel`
/// hands the caller's value to its workers, so work running beside it computes exactly as before.
struct KernelTuning: Sendable, Equatable {
    var conv = ConvTuning()
    var convBF16 = ConvBF16Tuning()
    var attention = AttentionTuning()
    var winograd = WinogradTuning()

    @TaskLocal static var current = KernelTuning()

    /// Runs `body` with the current knobs changed by `change`.
    static func with<R>(_ change: (inout KernelTuning) -> Void, _ body: () throws -> R) rethrows -> R {
        var t = current
        change(&t)
        return try $current.withValue(t) { try body() }
    }
}

/// Reusable scratch memory (im2col columns, attention scores). Fresh multi-megabyte allocations
/// are mmap'ed and page-faulted on every call; keeping a few buffers avoids that cost.
enum Scratch {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var free: [TensorStorage] = []
    private static let maxKept = 8
    private static let maxKeptFloats = 64 << 20  // 256 MB: larger requests are not kept

    /// Runs `body` with at least `count` floats (contents undefined) that nobody else uses meanwhile.
    static func withBuffer<R>(_ count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        try withStorage(count) { try body($0.pointer) }
    }

    /// As `withBuffer`, handing over the storage itself (to wrap in a Tensor that must not escape).
    static func withStorage<R>(_ count: Int, _ body: (TensorStorage) throws -> R) rethrows -> R {
        let storage = take(count)
        defer { give(storage) }
        return try body(storage)
    }

    /// Frees every kept buffer.
    static func purge() {
        lock.lock()
        free.removeAll()
        lock.unlock()
    }

    private static func take(_ count: Int) -> TensorStorage {
        lock.lock()
        // The smallest kept buffer that is big enough.
        var best: Int?
        for (i, s) in free.enumerated() where s.count >= count && (best == nil || s.count < free[best!].count) {
            best = i
        }
        if let best {
            let s = free.remove(at: best)
            lock.unlock()
            return s
        }
        lock.unlock()
        return TensorStorage(count: count)
    }

    private static func give(_ storage: TensorStorage) {
        guard storage.count <= maxKeptFloats else { return }
        lock.lock()
        defer { lock.unlock() }
        free.append(storage)
        if free.count > maxKept {
            // Drop the smallest: big ones are the expensive ones to fault in again.
            let i = free.indices.min { free[$0].count < free[$1].count }!
            free.remove(at: i)
        }
    }
}

/// Gives cached memory back to the system: the kernels' scratch buffers, the buffer 16-bit weights
/// are widened into, the cached tensor blocks and the heap's free memory. For phase changes
/// (UNet → VAE), where the next phase needs different sizes and the peak resident memory matters
/// more than a few page faults.
public func releaseCachedMemory() {
    Scratch.purge()
    WidenBuffer.purge()
    pd_block_purge()
    pd_trim_heap()
}

/// Runs `body` with blocks of 4 MB and more mapped afresh instead of kept in the heap. The heap
/// keeps up to 64 MB (TensorStorage) for the UNet's speed, but the VAE decoder's mix of 8–64 MB
/// tensors fragments it: a 512² decode after 16-bit UNet weights peaked at 3.35 GiB that way and at
/// 2.97 GiB with this, in the same time (its large convolutions dwarf the page faults).
/// The threshold is the allocator's, process-wide: overlapping callers (two generations decoding at
/// once) share one setting, restored when the last one leaves. It changes where memory comes from,
/// never what is computed.
public func withLargeBlocksMapped<R>(_ body: () throws -> R) rethrows -> R {
    _ = TensorStorage.allocatorTuned
    LargeBlocksMapped.enter()
    defer { LargeBlocksMapped.leave() }
    return try body()
}

private enum LargeBlocksMapped {
    static let lock = NSLock()
    nonisolated(unsafe) static var depth = 0

    static func enter() {
        lock.lock()
        defer { lock.unlock() }
        if depth == 0 { pd_set_mmap_threshold(4 << 20) }
        depth += 1
    }

    static func leave() {
        lock.lock()
        defer { lock.unlock() }
        depth -= 1
        if depth == 0 { pd_set_mmap_threshold(64 << 20) }
    }
}

// Shape checks shared by the kernels; each throws a one-line TensorError.

@inline(__always)
func requireRank(_ t: Tensor, _ rank: Int, _ what: String, _ layout: String) throws {
    guard t.rank == rank else { throw TensorError("\(what): expected \(layout), got \(t.shape)") }
}

@inline(__always)
func requireShape(_ t: Tensor, _ shape: [Int], _ what: String) throws {
    guard t.shape == shape else { throw TensorError("\(what): expected shape \(shape), got \(t.shape)") }
}

/// sgemm takes 32-bit sizes; larger operands would silently wrap.
@inline(__always)
func requireInt32(_ values: Int..., what: String) throws {
    for v in values where v > Int(Int32.max) {
        throw TensorError("\(what): dimension \(v) exceeds the 32-bit BLAS interface")
    }
}
