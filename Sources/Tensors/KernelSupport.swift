import CKernels
import Foundation

/// The instruction-set level the C kernels run at (chosen at run time from the CPU).
public enum KernelISA: Int, Sendable, CustomStringConvertible {
    case baseline = 0, avx2 = 1, avx512 = 2

    /// The best level this CPU supports.
    public static var supported: KernelISA { KernelISA(rawValue: Int(pd_isa_supported())) ?? .baseline }
    /// The level in use.
    public static var current: KernelISA { KernelISA(rawValue: Int(pd_isa())) ?? .baseline }
    /// Forces a level (clamped to `supported`; nil = best). Tests use it to run every code path;
    /// do not change it while kernels run.
    @discardableResult
    public static func force(_ level: KernelISA?) -> KernelISA {
        KernelISA(rawValue: Int(pd_set_isa(Int32(level?.rawValue ?? -1)))) ?? .baseline
    }

    public var description: String { ["baseline", "AVX2", "AVX-512"][rawValue] }
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
/// are widened into, and the heap's free blocks. For phase changes (UNet → VAE), where the next
/// phase needs different sizes and the peak resident memory matters more than a few page faults.
public func releaseCachedMemory() {
    Scratch.purge()
    WidenBuffer.purge()
    pd_trim_heap()
}

/// Runs `body` with blocks of 4 MB and more mapped afresh instead of kept in the heap. The heap
/// keeps up to 64 MB (TensorStorage) for the UNet's speed, but the VAE decoder's mix of 8–64 MB
/// tensors fragments it: a 512² decode after 16-bit UNet weights peaked at 3.35 GiB that way and at
/// 2.97 GiB with this, in the same time (its large convolutions dwarf the page faults).
public func withLargeBlocksMapped<R>(_ body: () throws -> R) rethrows -> R {
    _ = TensorStorage.allocatorTuned
    pd_set_mmap_threshold(4 << 20)
    defer { pd_set_mmap_threshold(64 << 20) }
    return try body()
}

/// Runs `body` with OpenBLAS limited to one thread, for regions that already run one sgemm per
/// core (nested thread pools would oversubscribe the cores). Overlapping callers share one
/// save/restore, so concurrent kernels cannot leave OpenBLAS stuck at one thread.
func withSingleThreadedBLAS<R>(_ body: () throws -> R) rethrows -> R {
    SingleThreadedBLAS.enter()
    defer { SingleThreadedBLAS.leave() }
    return try body()
}

private enum SingleThreadedBLAS {
    static let lock = NSLock()
    nonisolated(unsafe) static var depth = 0
    nonisolated(unsafe) static var saved = 1

    static func enter() {
        lock.lock()
        defer { lock.unlock() }
        if depth == 0 {
            saved = BLAS.threads
            if saved != 1 { BLAS.threads = 1 }
        }
        depth += 1
    }

    static func leave() {
        lock.lock()
        defer { lock.unlock() }
        depth -= 1
        if depth == 0 && saved != 1 { BLAS.threads = saved }
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
