import CKernels
import Foundation

/// Called with post-softmax attention rows: batch, head, first query row, row count and
/// probabilities [rows, Nk] (row-major), valid only during the call. Calls are serialised (never
/// two at once) but may come from any thread and in any order of (batch, head, rowStart).
public typealias AttentionProbabilities = (_ batch: Int, _ head: Int, _ rowStart: Int, _ rows: Int, _ probs: UnsafePointer<Float>) -> Void

/// How attention spreads its work; internal so that benchmarks can compare the choices.
/// Measured at 4096² × d40 × 8 heads (KernelBenchmarks): the C kernel ran at 78% of the 2048³
/// sgemm rate; sgemm across cores 59–64%, threaded sgemm 44–51% (OpenBLAS is slow at k = 40
/// and n = 40, and the separate softmax pass costs a full read and write of the scores). The
/// threaded-sgemm schedule is gone: OpenBLAS runs on one thread for good (see BLAS).
enum AttentionSchedule: Equatable, Sendable {
    /// The C slice kernel (attention.c), (batch, head, query slice) items split over the cores.
    case kernel
    /// sgemm + softmax + sgemm per item, items split over the cores, single-threaded sgemm.
    case sgemmAcrossCores
}

struct AttentionTuning: Sendable, Equatable {
    var schedule: AttentionSchedule = .kernel
    /// Score bytes per slice (per worker) when the caller does not give sliceRows.
    var sliceBytes = 1 << 20
    /// In force for the calling task (see KernelTuning).
    static var current: AttentionTuning { KernelTuning.current.attention }
}

/// Checks q [B, Nq, H·D], k and v [B, Nk, H·D] and the head split (loading BLAS first):
/// (B, Nq, H·D, Nk, D).
func attentionShapes(q: Tensor, k: Tensor, v: Tensor, heads: Int) throws -> (Int, Int, Int, Int, Int) {
    try BLAS.load()
    try requireRank(q, 3, "attention q", "[B, Nq, H·D]")
    try requireRank(k, 3, "attention k", "[B, Nk, H·D]")
    try requireShape(v, k.shape, "attention v")
    let (B, Nq, HD) = (q.shape[0], q.shape[1], q.shape[2])
    let Nk = k.shape[1]
    guard k.shape[0] == B, k.shape[2] == HD else { throw TensorError("attention: k \(k.shape) does not match q \(q.shape)") }
    guard heads >= 1, HD % heads == 0 else { throw TensorError("attention: \(HD) channels do not split into \(heads) heads") }
    try requireInt32(Nq, Nk, HD, what: "attention")
    return (B, Nq, HD, Nk, HD / heads)
}

/// The (batch, head, query-slice) items of an attention computed by sgemm, and the two products
/// of each: scores = α·Q Kᵀ [rows, Nk], then out = P V into y (heads read in place through their
/// row stride H·D). Shared by `attention`'s sgemm schedule and `maskedAttention`.
struct AttentionSlices {
    let q: Tensor, k: Tensor, v: Tensor, y: Tensor
    let heads: Int, rowsPerSlice: Int, alpha: Float
    var nq: Int { q.shape[1] }
    var nk: Int { k.shape[1] }
    var hd: Int { q.shape[2] }
    var d: Int { hd / heads }
    var slices: Int { (nq + rowsPerSlice - 1) / rowsPerSlice }
    var count: Int { q.shape[0] * heads * slices }

    struct Slice { let b: Int, h: Int, r0: Int, rows: Int }

    func slice(_ item: Int) -> Slice {
        let n = slices
        let r0 = (item % n) * rowsPerSlice
        return Slice(b: item / (n * heads), h: (item / n) % heads, r0: r0, rows: min(rowsPerSlice, nq - r0))
    }

    /// scores [rows, Nk] = α · Q Kᵀ for the slice.
    func scores(_ s: Slice, into scores: UnsafeMutablePointer<Float>) {
        let qh = q.pointer + (s.b * nq + s.r0) * hd + s.h * d  // rows × D, stride H·D
        let kh = k.pointer + s.b * nk * hd + s.h * d           // Nk × D, stride H·D
        BLAS.sgemm(transB: true, m: s.rows, n: nk, k: d, alpha: alpha, a: qh, lda: hd, b: kh, ldb: hd, c: scores, ldc: nk)
    }

    /// y[b, r0..<r0+rows, h·D..<(h+1)·D] = P V.
    func output(_ s: Slice, from p: UnsafePointer<Float>) {
        let vh = v.pointer + s.b * nk * hd + s.h * d
        BLAS.sgemm(m: s.rows, n: d, k: nk, a: p, lda: nk, b: vh, ldb: hd, c: y.pointer + (s.b * nq + s.r0) * hd + s.h * d, ldc: hd)
    }
}

/// Multi-head scaled dot-product attention with diffusers' head layout: q [B, Nq, H·D],
/// k and v [B, Nk, H·D], head h = channels h·D..<(h+1)·D → [B, Nq, H·D].
///
/// Heads are read in place through their row stride H·D (no transposes of K or V). Queries go
/// in slices of `sliceRows` (default: ~1 MB of scores, so a slice stays in L2), so at most one
/// `sliceRows × Nk` score buffer per core exists, never all heads' scores at once; slicing does
/// not change the results (bit for bit). Work items (batch, head, slice) are spread over the cores.
/// `causal`: query i sees keys j ≤ i (CLIP's mask; PyTorch's top-left `is_causal`).
/// `scale` defaults to 1/√D. `probabilities`, when given, sees each slice after the softmax.
public func attention(
    q: Tensor, k: Tensor, v: Tensor, heads: Int, causal: Bool = false, scale: Float? = nil,
    sliceRows: Int? = nil, probabilities: AttentionProbabilities? = nil
) throws -> Tensor {
    let (B, Nq, HD, Nk, D) = try attentionShapes(q: q, k: k, v: v, heads: heads)
    if let sliceRows, sliceRows < 1 { throw TensorError("attention: sliceRows must be ≥ 1, got \(sliceRows)") }
    let alpha = scale ?? 1 / Float(D).squareRoot()

    let y = Tensor(uninitializedShape: [B, Nq, HD])  // [B, Nq, H·D]
    if y.count == 0 { return y }
    if Nk == 0 { y.pointer.update(repeating: 0, count: y.count); return y }  // no keys: empty sums

    // Default slices: a multiple of 48 rows (the C kernel pads queries to 48) near sliceBytes.
    let tuning = AttentionTuning.current
    let rowsPerSlice = min(Nq, sliceRows ?? max(48, tuning.sliceBytes / (4 * Nk) / 48 * 48))
    let slices = (Nq + rowsPerSlice - 1) / rowsPerSlice
    let callbackLock = NSLock()

    let geometry = AttentionSlices(q: q, k: k, v: v, y: y, heads: heads, rowsPerSlice: rowsPerSlice, alpha: alpha)
    // sgemm schedule: one (batch, head, slice) item: scores, softmax, probabilities, output rows.
    func run(_ item: Int, scores: UnsafeMutablePointer<Float>) {
        let s = geometry.slice(item)
        geometry.scores(s, into: scores)
        pd_softmax_rows(scores, Int32(Nk), Nk, 0, s.rows, causal ? 1 : 0, s.r0)
        if let probabilities {
            callbackLock.lock()
            probabilities(s.b, s.h, s.r0, s.rows, scores)
            callbackLock.unlock()
        }
        geometry.output(s, from: scores)
    }

    let items = B * heads * slices
    switch tuning.schedule {
    case .kernel:
        // Contiguous item ranges: a core's consecutive slices share one head's K and V in cache.
        let work = pd_attention_work_floats(Int32(Nk), Int32(D), Int32(rowsPerSlice))
        Parallel.forRanges(items) { range in
            Scratch.withBuffer(work + (probabilities == nil ? 0 : rowsPerSlice * Nk)) { buffer in
                let probs = probabilities == nil ? nil : buffer + work
                for item in range {
                    let slice = item % slices, h = (item / slices) % heads, b = item / (slices * heads)
                    let r0 = slice * rowsPerSlice, rows = min(rowsPerSlice, Nq - r0)
                    let offset = b * Nq * HD + h * D, kvOffset = b * Nk * HD + h * D
                    pd_attention_slice(q.pointer + offset, k.pointer + kvOffset, v.pointer + kvOffset, y.pointer + offset,
                                       Int32(HD), Int32(D), Int32(Nk), r0, Int32(rows), alpha, causal ? 1 : 0, buffer, probs)
                    if let probabilities, let probs {
                        callbackLock.lock()
                        probabilities(b, h, r0, rows, probs)
                        callbackLock.unlock()
                    }
                }
            }
        }
    case .sgemmAcrossCores:
        Parallel.forRanges(items) { range in
            Scratch.withBuffer(rowsPerSlice * Nk) { scores in
                for item in range { run(item, scores: scores) }
            }
        }
    }
    return y
}
