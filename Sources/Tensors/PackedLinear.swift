import CKernels
import Foundation

/// A linear layer's weight packed for products of few rows (`y = x Wᵀ + b` with x of a few hundred
/// rows: the text encoder's 2 × 77 tokens). OpenBLAS packs the whole weight on every such call; this
/// packs it once, on first use, into panels of 32 output features (packed_gemm.c), exact fp32.
///
/// The packed copy is memory beside the checkpoint's pages, so it can be dropped when a phase of a
/// run is over (`release()`, as the mapped pages are) and is packed again from the weight the next
/// time it is used.
public final class PackedLinearWeight: @unchecked Sendable {
    /// Output and input features.
    public let outFeatures: Int, inFeatures: Int
    /// The weight [out, in] as bound (float32, or 16-bit and widened for packing).
    public let source: WeightData
    private let lock = NSLock()
    private var packed: UnsafeMutablePointer<Float>?

    public init(_ weight: WeightData) throws {
        guard weight.shape.count == 2 else { throw TensorError("packed linear weight: expected [out, in], got \(weight.shape)") }
        (outFeatures, inFeatures) = (weight.shape[0], weight.shape[1])
        try requireInt32(outFeatures, inFeatures, what: "packed linear weight")
        source = weight
    }

    deinit { unmap(packed) }

    /// Whether the packed copy is held now (for tests and memory accounting).
    public var isPacked: Bool { lock.lock(); defer { lock.unlock() }; return packed != nil }

    /// Frees the packed copy; the next product packs it again.
    public func release() {
        lock.lock()
        unmap(packed)
        packed = nil
        lock.unlock()
    }

    /// Bytes the packed copy takes (whole panels).
    private var packedBytes: Int { 4 * pd_packed_weight_count(Int32(outFeatures), Int32(inFeatures)) }

    private func unmap(_ p: UnsafeMutablePointer<Float>?) {
        if let p { munmap(p, max(packedBytes, 64)) }
    }

    /// Runs `body` with the packed panels, packing them first if needed. The lock is held
    /// throughout, so a concurrent `release()` waits for the product to finish.
    func withPanels<R>(_ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        lock.lock()
        defer { lock.unlock() }
        if packed == nil { packed = try pack() }
        return try body(packed!)
    }

    private func pack() throws -> UnsafeMutablePointer<Float> {
        // A mapping of its own (page-aligned, so a panel's row of 32 floats is two whole cache
        // lines): released, it goes back to the system at once. From malloc, freed blocks of these
        // sizes stayed in the heap, and a 512² txt2img peaked 0.32 GiB higher.
        let bytes = max(packedBytes, 64)
        let raw = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let raw, raw != MAP_FAILED else {
            throw TensorError("out of memory packing a [\(outFeatures), \(inFeatures)] linear weight (\(bytes) bytes)")
        }
        let wp = raw.bindMemory(to: Float.self, capacity: bytes / 4)
        let panels = (outFeatures + 31) / 32
        try source.withFloat32 { w in
            Parallel.forRanges(panels, grain: max(1, 65536 / max(32 * inFeatures, 1))) { r in
                pd_pack_weight_panels(w.pointer, Int32(outFeatures), Int32(inFeatures), Int32(r.lowerBound), Int32(r.upperBound), wp)
            }
        }
        // The packed copy stands in for the mapped fp32 pages it was read from: give those back
        // (the page cache keeps them for the next packing), so packing adds no resident memory.
        if case .float(let t) = source, let file = t.storage.owner as? PageReleasing {
            file.releaseResidentPages(at: t.pointer, bytes: t.count * 4)
        }
        return wp
    }
}

/// `y = x Wᵀ + b` with a packed weight: x [..., in] → [..., out]. Each output is the bias plus the
/// products summed in input-feature order with fused multiply-adds: the same bits at every ISA
/// level and thread count.
public func linear(_ x: Tensor, packed w: PackedLinearWeight, bias: Tensor? = nil) throws -> Tensor {
    let (outF, inF) = (w.outFeatures, w.inFeatures)
    guard x.rank >= 1, x.shape.last == inF else {
        throw TensorError("linear: input \(x.shape) does not end in \(inF) (weight [\(outF), \(inF)])")
    }
    if let bias { try requireShape(bias, [outF], "linear bias") }
    let rows = x.count / max(inF, 1)
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])  // [..., out]
    if rows == 0 || outF == 0 { return y }
    let mr = Int(pd_packed_rows_per_block())
    let blocks = (rows + mr - 1) / mr
    // x in blocks of mr rows, zero-padded: [blocks, in, mr]
    let xp = Tensor(uninitializedShape: [blocks, max(inF, 1), mr])
    Parallel.forRanges(blocks, grain: max(1, 32768 / max(mr * inF, 1))) { r in
        pd_pack_row_blocks(x.pointer, rows, Int32(inF), Int32(mr), r.lowerBound, r.upperBound, xp.pointer)
    }
    try w.withPanels { wp in
        let panels = (outF + 31) / 32
        // Panels split over the cores: each reads its share of W once, every block of x from L2.
        Parallel.forRanges(panels, grain: max(1, (1 << 20) / max(rows * inF * 32, 1))) { r in
            pd_packed_gemm(xp.pointer, rows, Int32(inF), Int32(mr), wp, Int32(outF), bias?.pointer, y.pointer, outF,
                           Int32(r.lowerBound), Int32(r.upperBound))
        }
    }
    return y
}
