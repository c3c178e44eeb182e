import CKernels
import Foundation

/// How a model's weights are held in memory. Arithmetic is float32 either way: 16-bit weights are
/// widened (exactly) just before each product, so they halve the memory, not the precision of
/// the sums. (The bf16 *arithmetic* of the fast mode is a separate choice.)
public enum Precision: String, Sendable, CaseIterable, CustomStringConvertible {
    case fp32, fp16, bf16

    public var description: String { rawValue }
    /// The 16-bit format, or nil for fp32.
    public var halfFormat: HalfFormat? {
        switch self {
        case .fp32: return nil
        case .fp16: return .fp16
        case .bf16: return .bf16
        }
    }
}

/// A 16-bit floating-point format: IEEE binary16 or bfloat16.
public enum HalfFormat: String, Sendable {
    case fp16, bf16
}

/// 16-bit storage, 64-byte aligned when owned, or borrowed from a mapped file kept alive by `owner`.
public final class HalfStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<UInt16>
    public let count: Int
    public let owner: AnyObject?
    private let owned: Bool

    public init(count: Int) {
        var raw: UnsafeMutableRawPointer?
        let bytes = max(count, 1) * 2
        if posix_memalign(&raw, 64, bytes) != 0 || raw == nil {
            fatalError("out of memory allocating \(bytes) bytes")  // not user input: the machine is out of memory
        }
        pointer = raw!.bindMemory(to: UInt16.self, capacity: max(count, 1))
        self.count = count
        owner = nil
        owned = true
    }

    public init(borrowing pointer: UnsafeMutablePointer<UInt16>, count: Int, owner: AnyObject?) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
        owned = false
    }

    deinit { if owned { free(pointer) } }
}

/// A dense row-major tensor of 16-bit floats (weights held at half size).
public struct HalfTensor: @unchecked Sendable {
    public let shape: [Int]
    public let format: HalfFormat
    public let storage: HalfStorage

    public var count: Int { shape.reduce(1, *) }

    public init(shape: [Int], format: HalfFormat, storage: HalfStorage) throws {
        guard shape.reduce(1, *) <= storage.count else {
            throw TensorError("shape \(shape) needs \(shape.reduce(1, *)) values, storage holds \(storage.count)")
        }
        self.shape = shape
        self.format = format
        self.storage = storage
    }

    /// `t` rounded to the nearest 16-bit value (ties to even), as torch's `.half()`/`.bfloat16()`.
    public init(rounding t: Tensor, to format: HalfFormat) {
        shape = t.shape
        self.format = format
        storage = HalfStorage(count: t.count)
        let (src, dst) = (t.pointer, storage.pointer)
        Parallel.forRanges(t.count, grain: 1 << 17) { r in
            switch format {
            case .fp16: pd_f32_to_f16(src + r.lowerBound, dst + r.lowerBound, r.count)
            case .bf16: pd_f32_to_bf16(src + r.lowerBound, dst + r.lowerBound, r.count)
            }
        }
    }

    public func reshaped(_ newShape: [Int]) throws -> HalfTensor {
        guard newShape.reduce(1, *) == count else { throw TensorError("cannot reshape \(shape) to \(newShape)") }
        return try HalfTensor(shape: newShape, format: format, storage: storage)
    }

    /// Widens into `dst` (`count` floats); exact.
    public func widen(into dst: UnsafeMutablePointer<Float>) {
        switch format {
        case .fp16: convertHalfToFloat(storage.pointer, dst, count: count)
        case .bf16: convertBFloat16ToFloat(storage.pointer, dst, count: count)
        }
    }

    /// The values as a new float32 tensor.
    public func float32() -> Tensor {
        let t = Tensor(uninitializedShape: shape)
        widen(into: t.pointer)
        return t
    }
}

/// A layer's weight as held: float32, or 16-bit and widened for each use.
public enum WeightData: @unchecked Sendable {
    case float(Tensor)
    case half(HalfTensor)

    public var shape: [Int] {
        switch self {
        case .float(let t): return t.shape
        case .half(let h): return h.shape
        }
    }

    /// Bytes held (what a precision choice saves).
    public var bytes: Int {
        switch self {
        case .float(let t): return t.count * 4
        case .half(let h): return h.count * 2
        }
    }

    /// Runs `body` with the weight as float32: the tensor itself, or a widened copy in one reused
    /// buffer (valid only during `body`; as large as the largest weight, 118 MB for SD 1.5's UNet).
    public func withFloat32<R>(_ body: (Tensor) throws -> R) throws -> R {
        switch self {
        case .float(let t):
            return try body(t)
        case .half(let h):
            return try WidenBuffer.with(h.count) { storage in
                h.widen(into: storage.pointer)
                return try body(try Tensor(shape: h.shape, storage: storage))
            }
        }
    }

    /// Row `i` of a matrix [R, C] as float32 into `dst` (C floats): an embedding-table lookup.
    public func row(_ i: Int, into dst: UnsafeMutablePointer<Float>) {
        let c = shape.last ?? 0
        switch self {
        case .float(let t): dst.update(from: t.pointer + i * c, count: c)
        case .half(let h):
            switch h.format {
            case .fp16: pd_f16_to_f32(h.storage.pointer + i * c, dst, c)
            case .bf16: pd_bf16_to_f32(h.storage.pointer + i * c, dst, c)
            }
        }
    }

    /// The weight as a float32 tensor (a new copy when held in 16 bits).
    public func float32() -> Tensor {
        switch self {
        case .float(let t): return t
        case .half(let h): return h.float32()
        }
    }
}

/// The one buffer 16-bit weights are widened into. Layers run one after another, so one buffer
/// serves them all; it is kept out of the general scratch pool so that pool does not end up
/// holding a widened copy of every large weight size. A concurrent caller gets its own memory.
enum WidenBuffer {
    static let lock = NSLock()
    nonisolated(unsafe) static var storage: TensorStorage?
    nonisolated(unsafe) static var busy = false

    static func with<R>(_ count: Int, _ body: (TensorStorage) throws -> R) rethrows -> R {
        lock.lock()
        if busy {
            lock.unlock()
            return try body(TensorStorage(count: count))
        }
        busy = true
        if storage == nil || storage!.count < count { storage = nil; storage = TensorStorage(count: count) }
        let s = storage!
        lock.unlock()
        defer { lock.lock(); busy = false; lock.unlock() }
        return try body(s)
    }

    static func purge() {
        lock.lock()
        if !busy { storage = nil }
        lock.unlock()
    }
}

/// `linear` with a weight held in any precision.
public func linear(_ x: Tensor, weight: WeightData, bias: Tensor? = nil) throws -> Tensor {
    try weight.withFloat32 { try linear(x, weight: $0, bias: bias) }
}

/// `conv2d` with a weight held in any precision.
public func conv2d(_ x: Tensor, weight: WeightData, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) throws -> Tensor {
    try weight.withFloat32 { try conv2d(x, weight: $0, bias: bias, stride: stride, padding: padding) }
}

/// Memory whose resident pages can be dropped and read back on demand (a read-only file
/// mapping): a model phase that is over gives its weights' RAM back this way.
public protocol PageReleasing: AnyObject {
    func releaseResidentPages()
    /// Only the whole pages inside `bytes` bytes from `pointer` (a tensor just copied out).
    func releaseResidentPages(at pointer: UnsafeRawPointer, bytes: Int)
}
