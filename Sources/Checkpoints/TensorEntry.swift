import Foundation
import Tensors

/// Where a tensor's storage lives: a byte range of a memory-mapped file.
public struct StorageLocation: @unchecked Sendable {
    public let file: MappedFile
    /// Absolute offset of the storage's first byte in the file.
    public let byteOffset: Int
    public let byteCount: Int
    /// Raw bytes are big-endian (a torch `byteorder` record or legacy sys_info said so).
    public let bigEndian: Bool

    public init(file: MappedFile, byteOffset: Int, byteCount: Int, bigEndian: Bool = false) {
        self.file = file
        self.byteOffset = byteOffset
        self.byteCount = byteCount
        self.bigEndian = bigEndian
    }
}

/// One tensor in a checkpoint: its name, element type, shape and where its bytes are. Nothing is
/// read until `float32()` is called.
public struct TensorEntry: @unchecked Sendable, CustomStringConvertible {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Element strides (row-major contiguous for safetensors; torch views may differ).
    public let strides: [Int]
    /// Offset of element 0 from the start of the storage, in elements.
    public let storageOffset: Int
    public let storage: StorageLocation

    public var elementCount: Int { shape.reduce(1, *) }
    public var isContiguous: Bool { strides == TensorEntry.contiguousStrides(shape) || elementCount <= 1 }
    /// Absolute file offset of element 0.
    public var byteOffset: Int { storage.byteOffset + storageOffset * dtype.size }
    /// Bytes spanned by a contiguous tensor.
    public var byteCount: Int { elementCount * dtype.size }
    public var file: MappedFile { storage.file }

    public var description: String { "\(name) \(dtype) \(shape)" }

    /// A dense row-major tensor whose bytes are already known to lie inside the file.
    init(name: String, dtype: DType, shape: [Int], file: MappedFile, byteOffset: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.strides = TensorEntry.contiguousStrides(shape)
        self.storageOffset = 0
        self.storage = StorageLocation(file: file, byteOffset: byteOffset, byteCount: shape.reduce(1, *) * dtype.size)
    }

    /// A (possibly strided) view into a storage; checks that every element it reaches is inside.
    public init(name: String, dtype: DType, shape: [Int], strides: [Int], storageOffset: Int,
                storage: StorageLocation) throws {
        let fail = { (why: String) in CheckpointError(file: storage.file.name, "tensor \(quoted(name)): \(why)") }
        guard shape.count == strides.count else {
            throw fail("shape \(shape) and strides \(strides) differ in rank")
        }
        guard shape.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }), storageOffset >= 0 else {
            throw fail("negative size, stride or offset (shape \(shape), strides \(strides), offset \(storageOffset))")
        }
        guard storage.file.contains(offset: storage.byteOffset, count: storage.byteCount) else {
            throw fail("storage bytes \(storage.byteOffset)..<\(storage.byteOffset &+ storage.byteCount) lie outside the file (\(storage.file.size) bytes)")
        }
        guard let count = checkedProduct(shape) else { throw fail("shape \(shape) is too large") }
        // Zero strides let a tiny storage describe a huge tensor; reading it would allocate the
        // full size, so refuse broadcasts past 2^28 elements (1 GiB of float32).
        let available = storage.byteCount / dtype.size
        if count > available && count > 1 << 28 {
            throw fail("view of \(count) elements broadcasts a storage of \(available) (strides \(strides)); too large")
        }
        if !shape.contains(0) {
            // The furthest element reached is offset + Σ (size-1)·stride; it must be in the storage.
            var last = storageOffset
            for (n, s) in zip(shape, strides) {
                let (step, o1) = (n - 1).multipliedReportingOverflow(by: s)
                let (sum, o2) = last.addingReportingOverflow(step)
                guard !o1, !o2 else { throw fail("view with shape \(shape), strides \(strides) is too large") }
                last = sum
            }
            guard last < available else {
                throw fail("view (offset \(storageOffset), shape \(shape), strides \(strides)) needs \(last + 1) elements but its storage holds \(available)")
            }
        }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.strides = strides
        self.storageOffset = storageOffset
        self.storage = storage
    }

    /// The same tensor under another name (e.g. prefixed by a diffusers subfolder).
    public func renamed(_ newName: String) -> TensorEntry { TensorEntry(copying: self, name: newName) }

    private init(copying e: TensorEntry, name: String) {
        self.name = name
        self.dtype = e.dtype
        self.shape = e.shape
        self.strides = e.strides
        self.storageOffset = e.storageOffset
        self.storage = e.storage
    }

    static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = acc
            acc = acc &* max(shape[i], 1)
        }
        return strides
    }

    /// The values as a contiguous float32 tensor. Aligned little-endian F32 data is borrowed
    /// straight from the mapping (no copy; the tensor keeps the file mapped and must not be
    /// written to); everything else is converted into new storage.
    public func float32() throws -> Tensor {
        let n = elementCount
        if n == 0 { return Tensor(zeros: shape) }
        let src = storage.file.base + byteOffset
        if isContiguous && !storage.bigEndian {
            if dtype == .f32 && Int(bitPattern: src) % MemoryLayout<Float>.alignment == 0 {
                let p = UnsafeMutablePointer(mutating: src.assumingMemoryBound(to: Float.self))
                return try Tensor(shape: shape, storage: TensorStorage(borrowing: p, count: n, owner: storage.file))
            }
            let out = Tensor(uninitializedShape: shape)
            convertToFloat32(src, dtype, out.pointer, count: n)
            return out
        }
        // Strided or byte-swapped: gather into a dense buffer first, then convert.
        let es = dtype.size
        let tmp = UnsafeMutableRawPointer.allocate(byteCount: n * es, alignment: 16)
        defer { tmp.deallocate() }
        gather(into: tmp)
        if storage.bigEndian && es > 1 { swapBytes(tmp, elementSize: es, count: n) }
        let out = Tensor(uninitializedShape: shape)
        convertToFloat32(UnsafeRawPointer(tmp), dtype, out.pointer, count: n)
        return out
    }

    /// The values in 16 bits. Stored in that format (contiguous, little-endian, aligned): borrowed
    /// from the mapping; otherwise read as float32 and rounded to nearest even.
    public func half(_ format: HalfFormat) throws -> HalfTensor {
        let matches = (dtype == .f16 && format == .fp16) || (dtype == .bf16 && format == .bf16)
        let src = storage.file.base + byteOffset
        if matches && elementCount > 0 && isContiguous && !storage.bigEndian
            && Int(bitPattern: src) % MemoryLayout<UInt16>.alignment == 0 {
            let p = UnsafeMutablePointer(mutating: src.assumingMemoryBound(to: UInt16.self))
            return try HalfTensor(shape: shape, format: format,
                                  storage: HalfStorage(borrowing: p, count: elementCount, owner: storage.file))
        }
        let rounded = HalfTensor(rounding: try float32(), to: format)
        // The file's bytes were only needed for the rounding: give their pages back now, so that
        // holding a 4 GB fp32 model in 16 bits never has both copies resident.
        if isContiguous { storage.file.releaseResidentPages(offset: byteOffset, count: byteCount) }
        return rounded
    }

    /// Copies the elements in row-major order into `dst` (n × element size bytes).
    private func gather(into dst: UnsafeMutableRawPointer) {
        let es = dtype.size
        let base = storage.file.base + byteOffset
        let rank = shape.count
        if rank == 0 || isContiguous {
            dst.copyMemory(from: base, byteCount: elementCount * es)
            return
        }
        let inner = shape[rank - 1], innerStride = strides[rank - 1]
        var index = [Int](repeating: 0, count: rank - 1)
        var out = dst
        while true {
            var off = 0
            for d in 0..<(rank - 1) { off += index[d] * strides[d] }
            let row = base + off * es
            if innerStride == 1 {
                out.copyMemory(from: row, byteCount: inner * es)
            } else {
                for i in 0..<inner { (out + i * es).copyMemory(from: row + i * innerStride * es, byteCount: es) }
            }
            out += inner * es
            // Odometer over the outer dimensions.
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }
}

func checkedProduct(_ dims: [Int]) -> Int? {
    var p = 1
    for d in dims {
        let (r, o) = p.multipliedReportingOverflow(by: d)
        if o { return nil }
        p = r
    }
    return p
}

private func swapBytes(_ p: UnsafeMutableRawPointer, elementSize es: Int, count: Int) {
    let b = p.assumingMemoryBound(to: UInt8.self)
    for i in 0..<count {
        var lo = i * es, hi = lo + es - 1
        while lo < hi { b.swapAt(lo, hi); lo += 1; hi -= 1 }
    }
}

private extension UnsafeMutablePointer where Pointee == UInt8 {
    func swapAt(_ i: Int, _ j: Int) { let t = self[i]; self[i] = self[j]; self[j] = t }
}

/// Converts `count` dense little-endian elements of `dtype` at `src` (any alignment) to float32,
/// spreading big arrays over the cores.
func convertToFloat32(_ src: UnsafeRawPointer, _ dtype: DType, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    let es = dtype.size
    Parallel.forRanges(count, grain: 1 << 16) { r in
        let s = src + r.lowerBound * es, d = dst + r.lowerBound, n = r.count
        switch dtype {
        case .f32:
            UnsafeMutableRawPointer(d).copyMemory(from: s, byteCount: n * 4)
        case .f16, .bf16:
            let convert = dtype == .f16 ? convertF16toF32 : convertBF16toF32
            if Int(bitPattern: s) % 2 == 0 {
                convert(s.assumingMemoryBound(to: UInt16.self), d, n)
            } else {
                // Odd offsets are legal in safetensors; realign in small chunks.
                withUnsafeTemporaryAllocation(of: UInt16.self, capacity: 4096) { tmp in
                    var i = 0
                    while i < n {
                        let m = min(4096, n - i)
                        UnsafeMutableRawPointer(tmp.baseAddress!).copyMemory(from: s + i * 2, byteCount: m * 2)
                        convert(tmp.baseAddress!, d + i, m)
                        i += m
                    }
                }
            }
        case .f64: for i in 0..<n { d[i] = Float(Double(bitPattern: UInt64(littleEndian: s.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))) }
        case .i64: for i in 0..<n { d[i] = Float(Int64(littleEndian: s.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
        case .u64: for i in 0..<n { d[i] = Float(UInt64(littleEndian: s.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) }
        case .i32: for i in 0..<n { d[i] = Float(Int32(littleEndian: s.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))) }
        case .u32: for i in 0..<n { d[i] = Float(UInt32(littleEndian: s.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self))) }
        case .i16: for i in 0..<n { d[i] = Float(Int16(littleEndian: s.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))) }
        case .u16: for i in 0..<n { d[i] = Float(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
        case .i8: for i in 0..<n { d[i] = Float(s.load(fromByteOffset: i, as: Int8.self)) }
        case .u8: for i in 0..<n { d[i] = Float(s.load(fromByteOffset: i, as: UInt8.self)) }
        case .bool: for i in 0..<n { d[i] = s.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        case .f8e4m3: for i in 0..<n { d[i] = f8e4m3Table[Int(s.load(fromByteOffset: i, as: UInt8.self))] }
        case .f8e5m2: for i in 0..<n { d[i] = halfToFloat(UInt16(s.load(fromByteOffset: i, as: UInt8.self)) << 8) }
        }
    }
}

/// float8 E4M3FN (bias 7, no infinities, S.1111.111 is NaN) decoded once.
private let f8e4m3Table: [Float] = (0..<256).map { b in
    let sign: Float = b & 0x80 != 0 ? -1 : 1
    let e = (b >> 3) & 0xF, m = b & 7
    if e == 15 && m == 7 { return .nan }
    if e == 0 { return sign * Float(m) * 0x1p-9 }
    return sign * (1 + Float(m) / 8) * Float(sign: .plus, exponent: e - 7, significand: 1)
}
