import CKernels
import Foundation

/// A weight matrix W [M, K] rounded to bfloat16 and packed once for `gemmBF16` (the fast mode:
/// bf16 operands, fp32 sums, about twice the fp32 rate on CPUs with AVX512-BF16).
public final class PackedBF16Matrix: @unchecked Sendable {
    /// Rows (output features or channels) and columns (input features, or C·kh·kw).
    public let rows: Int, columns: Int
    let packed: UnsafeMutablePointer<UInt16>

    /// Whether this CPU can run the bf16 kernels (and PAREIDOLIA_ISA does not cap it below AVX-512).
    public static var isSupported: Bool { pd_bf16_supported() != 0 }

    /// Why the bf16 kernels cannot run here, in one line; nil where they can.
    public static var unsupportedReason: String? {
        if isSupported { return nil }
        if pd_bf16_cpu() != 0 { return "PAREIDOLIA_ISA caps this process below AVX-512" }
        return "this CPU lacks AVX512-BF16"
    }

    /// From a linear weight [M, K] or a convolution weight [O, C, kh, kw] (as [O, C·kh·kw]).
    public init(_ weight: Tensor) throws {
        if let reason = Self.unsupportedReason { throw TensorError("bf16 products: \(reason)") }
        guard weight.rank == 2 || weight.rank == 4 else {
            throw TensorError("PackedBF16Matrix: expected [M, K] or [O, C, kh, kw], got \(weight.shape)")
        }
        rows = weight.shape[0]
        columns = weight.shape.dropFirst().reduce(1, *)  // [M, K]
        try requireInt32(rows, columns, what: "PackedBF16Matrix")
        let count = pd_bf16_packed_count(Int32(rows), Int32(columns))
        // 64-byte aligned: each pair of W's 16-row panel is one cache line.
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, max(2 * count, 64)) == 0, let raw else {
            fatalError("out of memory allocating \(2 * count) bytes")
        }
        packed = raw.bindMemory(to: UInt16.self, capacity: max(count, 32))
        // Panels of 16 rows pack independently: spread them over the cores (model load time).
        let (m, k) = (Int32(rows), Int32(columns))
        Parallel.forRanges((rows + 15) / 16, grain: max(1, 65536 / max(16 * columns, 1))) { r in
            pd_bf16_pack_panels(weight.pointer, m, k, Int32(r.lowerBound), Int32(r.upperBound), self.packed)
        }
    }

    deinit { free(packed) }
}

/// `C[m, n] (=|+=) Σ_k W[m, k]·B[k, n]` for n < `n`, with B[k, n] at `b[k·rsb + n·csb]` (fp32,
/// rounded to bf16 on the fly) and C[m, n] at `c[m·rsc + n·csc]`. `accumulate` adds onto C (a
/// pre-filled bias). `parallel` splits the columns over the cores; false runs on this thread,
/// for callers that already spread their work.
public func gemmBF16(_ w: PackedBF16Matrix, b: UnsafePointer<Float>, rsb: Int, csb: Int, n: Int,
                     c: UnsafeMutablePointer<Float>, rsc: Int, csc: Int, accumulate: Bool, parallel: Bool = true) {
    guard n > 0, w.rows > 0 else { return }
    let (m, k) = (Int32(w.rows), Int32(w.columns))
    func run(_ n0: Int, _ n1: Int) {
        Scratch.withBuffer(pd_gemm_bf16_work_count(k, n0, n1)) { work in
            pd_gemm_bf16(w.packed, m, k, b, rsb, csb, n0, n1, c, rsc, csc, accumulate ? 1 : 0, work)
        }
    }
    guard parallel else { run(0, n); return }
    // Whole 16-column tiles per core; a thread is worth ~1 MFLOP at least.
    let tiles = (n + 15) / 16
    Parallel.forRanges(tiles, grain: max(1, (1 << 20) / max(32 * w.rows * w.columns, 1))) { r in
        run(r.lowerBound * 16, min(n, r.upperBound * 16))
    }
}

/// `y = x Wᵀ + b` in bf16 (see `linear`): x [..., in], weight [out, in] packed, bias [out].
public func linearBF16(_ x: Tensor, weight: PackedBF16Matrix, bias: Tensor? = nil) throws -> Tensor {
    let (outF, inF) = (weight.rows, weight.columns)
    guard x.rank >= 1, x.shape.last == inF else {
        throw TensorError("linearBF16: input \(x.shape) does not end in \(inF) (weight [\(outF), \(inF)])")
    }
    if let bias { try requireShape(bias, [outF], "linearBF16 bias") }
    let rows = x.shape.dropLast().reduce(1, *)  // rows of x [rows, in]; in = 0 gives y = bias
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])  // [..., out]
    if rows == 0 || outF == 0 { return y }
    // The bias pre-fills y and the gemm accumulates onto it: no extra pass over y.
    if let bias {
        Parallel.forRanges(rows, grain: max(1, 16384 / outF)) { r in
            pd_fill_cols(y.pointer, bias.pointer, r.lowerBound, r.upperBound, Int32(outF))
        }
    }
    // As C = W · xᵀ: B[k, n] = x[n, k] (rsb 1, csb in), C[m, n] = y[n, m] (rsc 1, csc out).
    gemmBF16(weight, b: x.pointer, rsb: 1, csb: inF, n: rows, c: y.pointer, rsc: 1, csc: outF,
             accumulate: bias != nil)
    return y
}

/// Bytes of fp32 im2col columns per (image, column block) item of `conv2dBF16`.
struct ConvBF16Tuning: Sendable, Equatable {
    var blockBytes = 32 << 20
    /// In force for the calling task (see KernelTuning).
    static var current: ConvBF16Tuning { KernelTuning.current.convBF16 }
}

/// 2-D convolution in bf16 (see `conv2d`): x [B, C, H, W], weight [O, C·k·k] packed from
/// [O, C, k, k], bias [O] → [B, O, OH, OW]. (image, column block) items run across the cores,
/// each an im2col block and a single-threaded gemm; a 1×1 stride-1 unpadded conv reads x directly.
public func conv2dBF16(_ x: Tensor, weight: PackedBF16Matrix, kernel: Int, bias: Tensor? = nil,
                       stride: Int = 1, padding: Int = 0) throws -> Tensor {
    try requireRank(x, 4, "conv2dBF16 input", "[B, C, H, W]")
    let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (O, k) = (weight.rows, kernel)
    guard k >= 1, weight.columns == C * k * k else {
        throw TensorError("conv2dBF16: weight [\(O), \(weight.columns)] does not fit \(C) channels × \(k)×\(k) (input \(x.shape))")
    }
    guard stride >= 1, padding >= 0 else { throw TensorError("conv2dBF16: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0") }
    guard H + 2 * padding >= k, W + 2 * padding >= k else {
        throw TensorError("conv2dBF16: kernel \(k)×\(k) larger than padded input \(H)×\(W) (padding \(padding))")
    }
    if let bias { try requireShape(bias, [O], "conv2dBF16 bias") }
    let OH = (H + 2 * padding - k) / stride + 1, OW = (W + 2 * padding - k) / stride + 1
    let K = C * k * k, N = OH * OW
    try requireInt32(K, N, O, what: "conv2dBF16")

    let y = Tensor(uninitializedShape: [B, O, OH, OW])  // [B, O, OH, OW]
    if y.count == 0 { return y }
    convolveInItems(x, into: y, kernel: k, k, stride: stride, padding: padding, bias: bias,
                    blockBytes: ConvBF16Tuning.current.blockBytes) { c, ldc, b, ldb, n in  // y_b[:, block] (+)= W · b
        gemmBF16(weight, b: b, rsb: ldb, csb: 1, n: n, c: c, rsc: ldc, csc: 1, accumulate: bias != nil, parallel: false)
    }
    return y
}
