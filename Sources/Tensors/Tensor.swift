import CKernels
import Foundation

/// Errors raised by tensor construction and kernels when given shapes that do not fit.
public struct TensorError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Float32 buffer, 64-byte aligned when owned; may also borrow memory kept alive by `owner`
/// (a memory-mapped checkpoint, say), so weights can be used without a copy.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int
    /// What keeps borrowed memory alive (a mapped file), or nil when this storage owns it.
    public let owner: AnyObject?
    private let owned: Bool
    /// Owned memory from pd_block_alloc rather than malloc.
    private let block: Bool

    /// glibc hands allocations above its mmap threshold (up to 32 MB) to mmap and unmaps them on
    /// free, so large activations page-fault afresh on every use (an upsample at [2,320,64,64]:
    /// 14 ms instead of 1.2 ms). So blocks of 1 MB and more come from pd_block_alloc (2 MB pages, a
    /// bounded cache of freed blocks: the heap fragmented under them), smaller ones from the heap,
    /// which keeps up to 64 MB (pd_tune_allocator). See docs/PERFORMANCE.md.
    static let allocatorTuned: Void = {
        pd_tune_allocator()
    }()

    /// Allocates `count` floats; contents are undefined unless `zeroed`.
    public init(count: Int, zeroed: Bool = false) {
        _ = Self.allocatorTuned
        let bytes = max(count, 1) * MemoryLayout<Float>.stride
        var raw: UnsafeMutableRawPointer?
        if bytes >= PD_BLOCK_MIN_BYTES {
            raw = pd_block_alloc(bytes)
            block = true
        } else {
            // 64-byte alignment keeps AVX-512 loads and OpenBLAS packing on cache lines.
            if posix_memalign(&raw, 64, bytes) != 0 { raw = nil }
            block = false
        }
        guard let raw else {
            fatalError("out of memory allocating \(bytes) bytes")  // not user input: the machine is out of memory
        }
        if zeroed { memset(raw, 0, bytes) }
        self.pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.count = count
        self.owner = nil
        self.owned = true
    }

    /// Wraps memory owned by someone else; `owner` is retained for as long as this storage lives.
    public init(borrowing pointer: UnsafeMutablePointer<Float>, count: Int, owner: AnyObject?) {
        self.pointer = pointer
        self.count = count
        self.owner = owner
        self.owned = false
        self.block = false
    }

    deinit {
        guard owned else { return }
        if block { pd_block_free(pointer, max(count, 1) * MemoryLayout<Float>.stride) } else { free(pointer) }
    }
}

/// A dense, contiguous, row-major float32 tensor (images are NCHW).
///
/// `Tensor` is a value with reference storage: copies share memory. Kernels only write into
/// tensors they have just allocated, so sharing is safe; `reshaped` is free.
public struct Tensor: @unchecked Sendable {
    public let shape: [Int]
    public let storage: TensorStorage

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var pointer: UnsafeMutablePointer<Float> { storage.pointer }

    /// A new tensor; its contents are undefined (callers overwrite every element).
    public init(uninitializedShape shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *))
    }

    public init(zeros shape: [Int]) {
        self.shape = shape
        self.storage = TensorStorage(count: shape.reduce(1, *), zeroed: true)
    }

    public init(shape: [Int], repeating value: Float) {
        self.init(uninitializedShape: shape)
        pointer.update(repeating: value, count: count)
    }

    public init(shape: [Int], scalars: [Float]) throws {
        let n = shape.reduce(1, *)
        guard n == scalars.count else {
            throw TensorError("shape \(shape) needs \(n) values, got \(scalars.count)")
        }
        self.init(uninitializedShape: shape)
        scalars.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: n) }
    }

    public init(shape: [Int], storage: TensorStorage) throws {
        let n = shape.reduce(1, *)
        guard n <= storage.count else {
            throw TensorError("shape \(shape) needs \(n) values, storage holds \(storage.count)")
        }
        self.shape = shape
        self.storage = storage
    }

    /// Same memory, new shape; `-1` stands for the one dimension inferred from the count.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var dims = newShape
        if let i = dims.firstIndex(of: -1) {
            let known = dims.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else { throw TensorError("cannot reshape \(shape) to \(newShape)") }
            dims[i] = count / known
        }
        guard dims.reduce(1, *) == count else { throw TensorError("cannot reshape \(shape) to \(newShape)") }
        return try Tensor(shape: dims, storage: storage)
    }

    public var scalars: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    public subscript(flat index: Int) -> Float { pointer[index] }

    /// A deep copy with its own storage.
    public func copy() -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        out.pointer.update(from: pointer, count: count)
        return out
    }

    /// Largest absolute value (0 for an empty tensor).
    public var maxAbs: Float {
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(pointer[i])) }
        return m
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}
