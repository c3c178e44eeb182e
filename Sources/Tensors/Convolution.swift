import CKernels

/// Measured on the 2-core AVX-512 VM (KernelBenchmarks): (image, column block) items across the
/// cores, each a single-threaded sgemm, gave 93–98% of the same-size sgemm rate at the SD shapes
/// vs 81–95% for one image at a time with OpenBLAS's threads; blocks of ≤ 32 MB cost nothing at
/// the UNet shapes and keep the VAE's 256² convs at ~94% (whole-image im2col there: 65%).
struct ConvTuning: Sendable, Equatable {
    /// Bytes of im2col columns per block (0 = the whole image at once).
    var blockBytes = 32 << 20
    /// In force for the calling task (see KernelTuning).
    static var current: ConvTuning { KernelTuning.current.conv }
}

/// 2-D convolution, NCHW: x [B, C, H, W], weight [O, C, kh, kw], bias [O] → [B, O, OH, OW],
/// OH = (H + 2·padding − kh) / stride + 1. Groups and dilation are 1 (all SD 1.x needs).
///
/// im2col + sgemm: per image `y[O, OH·OW] = W[O, C·kh·kw] · cols[C·kh·kw, OH·OW]`, in column
/// blocks spread over the cores (`convolveInItems`); a 1×1, stride-1, unpadded convolution
/// multiplies x directly (no copy). The bias pre-fills y and sgemm accumulates onto it (beta = 1),
/// so it costs no extra pass.
public func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) throws -> Tensor {
    try BLAS.load()
    try requireRank(x, 4, "conv2d input", "[B, C, H, W]")
    try requireRank(weight, 4, "conv2d weight", "[O, C, kh, kw]")
    let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (O, kh, kw) = (weight.shape[0], weight.shape[2], weight.shape[3])
    guard weight.shape[1] == C else { throw TensorError("conv2d: weight \(weight.shape) expects \(weight.shape[1]) input channels, input \(x.shape) has \(C)") }
    guard stride >= 1, padding >= 0 else { throw TensorError("conv2d: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0") }
    if let bias { try requireShape(bias, [O], "conv2d bias") }
    let OH = (H + 2 * padding - kh) / stride + 1, OW = (W + 2 * padding - kw) / stride + 1
    guard kh >= 1, kw >= 1, H + 2 * padding >= kh, W + 2 * padding >= kw else {
        throw TensorError("conv2d: kernel \(kh)×\(kw) larger than padded input \(H)×\(W) (padding \(padding))")
    }
    let K = C * kh * kw, N = OH * OW
    try requireInt32(K, N, O, K * N, what: "conv2d")

    let y = Tensor(uninitializedShape: [B, O, OH, OW])  // [B, O, OH, OW]
    if y.count == 0 { return y }
    convolveInItems(x, into: y, kernel: kh, kw, stride: stride, padding: padding, bias: bias,
                    blockBytes: ConvTuning.current.blockBytes) { c, ldc, b, ldb, n in
        BLAS.sgemm(m: O, n: n, k: K, a: weight.pointer, lda: K, b: b, ldb: ldb,
                   beta: bias == nil ? 0 : 1, c: c, ldc: ldc)
    }
    return y
}

/// The (image, column block) schedule of a convolution as one GEMM per block: items spread over
/// the cores, each filling y's block with the bias, writing its im2col columns [K, n] into reused
/// scratch (a 1×1, stride-1, unpadded conv reads x in place) and calling `multiply` on its own
/// thread: `multiply(c, ldc, b, ldb, n)` must do c[O, n] (+)= W · b[K, n] — accumulating when there
/// is a bias. Blocks hold at most `blockBytes` of columns (0: whole images), their count a multiple
/// of the cores where the columns allow. x [B, C, H, W], y [B, O, OH, OW] already allocated.
func convolveInItems(_ x: Tensor, into y: Tensor, kernel kh: Int, _ kw: Int, stride: Int, padding: Int, bias: Tensor?, blockBytes: Int,
                     multiply: (UnsafeMutablePointer<Float>, Int, UnsafePointer<Float>, Int, Int) -> Void) {
    let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (O, OH, OW) = (y.shape[1], y.shape[2], y.shape[3])
    let K = C * kh * kw, N = OH * OW
    let direct = kh == 1 && kw == 1 && stride == 1 && padding == 0
    var blocks = blockBytes > 0 && !direct ? max(1, (4 * K * N + blockBytes - 1) / blockBytes) : 1
    while (B * blocks) % Parallel.workers != 0 && blocks * 16 < N { blocks += 1 }
    let blockN = min(N, ((N + blocks - 1) / blocks + 15) / 16 * 16)
    blocks = (N + blockN - 1) / blockN
    Parallel.forRanges(B * blocks) { items in
        Scratch.withBuffer(direct ? 0 : K * blockN) { cols in  // [K, blockN]
            for item in items {
                let xb = x.pointer + (item / blocks) * C * H * W, yb = y.pointer + (item / blocks) * O * N  // [C, H·W], [O, N]
                let n0 = (item % blocks) * blockN, n1 = min(N, n0 + blockN)
                if let bias { pd_fill_rows(yb + n0, bias.pointer, 0, Int32(O), n1 - n0, N) }
                if direct {
                    multiply(yb + n0, N, xb + n0, N, n1 - n0)
                } else {
                    pd_im2col(xb, Int32(C), Int32(H), Int32(W), Int32(kh), Int32(kw), Int32(stride), Int32(padding),
                              Int32(OH), Int32(OW), 0, Int32(K), n0, n1, cols, n1 - n0)  // [K, n1 - n0]
                    multiply(yb + n0, N, cols, n1 - n0, n1 - n0)
                }
            }
        }
    }
}
