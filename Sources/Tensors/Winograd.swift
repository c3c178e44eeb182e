import CKernels

/// Winograd F(m×m, 3×3): each m×m output tile from an (m+2)×(m+2) input tile with (m+2)²
/// multiplies per channel pair instead of 9m² (F(2×2): 2.25× fewer, F(4×4): 4× fewer).
public enum WinogradVariant: Int, Sendable, CaseIterable, CustomStringConvertible {
    case f2x2 = 2, f4x4 = 4

    /// Output tile side m.
    var m: Int { rawValue }
    /// Input tile side α = m + 2; the transform domain has α² positions.
    var alpha: Int { rawValue + 2 }

    public var description: String { "F(\(m)×\(m),3×3)" }
}

struct WinogradTuning: Sendable, Equatable {
    /// Bytes of transform-domain scratch (V and M) per block of tiles, so that a block stays in
    /// the 32 MB L3; 16–64 MB were within ~10% of each other on the SD shapes.
    var blockBytes = 24 << 20
    /// Fewest tiles per block (where there are as many), whatever blockBytes says: at fewer, the
    /// products reread U per block (1920→640 at 32², batch 2: two blocks of 64 tiles 78 ms, one
    /// of 128 tiles, 47 MB, 68 ms).
    var minBlockTiles = 128
    /// With fewer input channels, conv2dWinograd runs conv2d instead: the transforms then cost
    /// more than the multiplies they save (C→320 at 64², batch 2, conv2d vs F(4×4): C = 4: 1.5 vs
    /// 2.6 ms, C = 8: 2.4 vs 3.3 ms, C = 16: 4.5 vs 3.7 ms).
    var minInputChannels = 16
    /// Blocks of at most this many tiles use pd_winograd_multiply_narrow instead of sgemm; at 64
    /// tiles the two were level (see winogradMultiply).
    var narrowColumns = 64
    /// Per-call weights: bytes of a block of output rows' weights (as 9 planes) and U (α positions)
    /// a core transforms at a time. At the UNet shapes, 1 MB took 653 ms for all of them once,
    /// 2 MB 560 ms, 4 MB 572 ms (fewer rows per block reread V more often).
    var fusedBytes = 2 << 20
    /// Per-call weights: blocks of more tiles than this multiply by sgemm (rows of U packed per
    /// call), fewer by pd_winograd_rows_multiply. All the UNet's shapes once, fused kernel only
    /// vs sgemm above 64 tiles: AVX2 648 → 570 ms, AVX-512 548 → 497 ms.
    var fusedSgemmColumns = 64
    /// Per-call weights taking sgemm: bytes of a row block's planes and U (bigger blocks, fewer
    /// repacks of V: 8 MB 570 / 497 ms, 32 MB 561 / 490 ms at AVX2 / AVX-512).
    var fusedSgemmBytes = 8 << 20
    /// Per-call weights run conv2d below this many tiles a call: the transform of U, per call,
    /// then costs more than its multiplies save (1280→1280 at 8², batch 2, 8 tiles: 30 ms
    /// against conv2d's 24; at 16², 32 tiles: 36–41 against 78).
    var minPerCallTiles = 16
    /// In force for the calling task (see KernelTuning).
    static var current: WinogradTuning { KernelTuning.current.winograd }
}

/// A 3×3 convolution weight [O, C, 3, 3] for Winograd. By default U [α², O, C] (U_ξ = (G g Gᵀ)_ξ
/// for every (o, c), in double precision) is computed per call, a block of output channels at a
/// time into a reused buffer: held once, it takes α²/9 times the memory of the weight (1.78× for
/// F(2×2), 4× for F(4×4): 8.4 GB for all of SD 1.5's UNet). `transformOnce` holds it instead.
/// U has the same bits either way; the products round differently (sgemm's blocking on U held,
/// sums over 128 channels at a time per call), both within WinogradTests' bounds.
public final class WinogradWeight: @unchecked Sendable {
    public let variant: WinogradVariant
    public let outChannels: Int
    public let inChannels: Int

    enum Form {
        /// U [α², O, C], transformed at load.
        case transformed(Tensor)
        /// The weight [O, C, 3, 3] (not copied); U is transformed per call.
        case perCall(Tensor)
        /// The weight, run by conv2d: too few input channels to gain.
        case direct(Tensor)
    }
    let form: Form

    /// True when the original weight must stay readable (it is not copied).
    public var keepsWeight: Bool { if case .transformed = form { false } else { true } }
    /// True when conv2dWinograd will run conv2d for this weight (fewer than 16 input channels).
    public var usesConv2d: Bool { if case .direct = form { true } else { false } }
    /// Bytes held besides the weight itself (U when transformed once).
    public var extraBytes: Int { if case .transformed(let u) = form { u.count * 4 } else { 0 } }

    public init(weight: Tensor, variant: WinogradVariant = .f4x4, transformOnce: Bool = false) throws {
        try requireRank(weight, 4, "WinogradWeight", "[O, C, 3, 3]")
        guard weight.shape[2] == 3, weight.shape[3] == 3 else {
            throw TensorError("WinogradWeight: expected a 3×3 kernel, got \(weight.shape)")
        }
        let (O, C) = (weight.shape[0], weight.shape[1])
        try requireInt32(O, C, what: "WinogradWeight")
        self.variant = variant
        (outChannels, inChannels) = (O, C)
        if C < WinogradTuning.current.minInputChannels {
            form = .direct(weight)
        } else if !transformOnce {
            form = .perCall(weight)
        } else {
            let positions = variant.alpha * variant.alpha
            let u = Tensor(uninitializedShape: [positions, O, C])  // [α², O, C]
            Parallel.forRanges(O * C, grain: 4096) { r in
                pd_winograd_weight(Int32(variant.m), weight.pointer, Int32(O), Int32(C), r.lowerBound, r.upperBound, u.pointer)
            }
            form = .transformed(u)
        }
    }
}

/// 3×3 convolution, stride 1, padding 1, by Winograd: x [B, C, H, W] → [B, O, H, W], bias [O].
/// A faster alternative to `conv2d(x, weight:, bias:, stride: 1, padding: 1)` with a slightly
/// larger rounding error (see WinogradTests for the measured figures).
///
/// The m×m output tiles of the whole batch are processed in blocks of T tiles: the input
/// transform fills V [α², C, T], α² products give M_ξ[O, T] = U_ξ[O, C] · V_ξ[C, T], and the
/// output transform turns M into y. Blocks bound the scratch (a 512² VAE conv would otherwise
/// need GBs); within a block the transforms are split over the cores by channel and the products
/// by ξ, so that each core reads only its own U_ξ (at small T, reading U is most of the work).
public func conv2dWinograd(_ x: Tensor, weight: WinogradWeight, bias: Tensor? = nil) throws -> Tensor {
    try BLAS.load()
    try requireRank(x, 4, "conv2dWinograd input", "[B, C, H, W]")
    let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let O = weight.outChannels
    guard C == weight.inChannels else {
        throw TensorError("conv2dWinograd: weight expects \(weight.inChannels) input channels, input \(x.shape) has \(C)")
    }
    if let bias { try requireShape(bias, [O], "conv2dWinograd bias") }
    let m = weight.variant.m, positions = weight.variant.alpha * weight.variant.alpha
    let tilesY = (H + m - 1) / m, tilesX = (W + m - 1) / m
    let tiles = B * tilesY * tilesX
    let u: Tensor?
    switch weight.form {
    case .direct(let w): return try conv2d(x, weight: w, bias: bias, stride: 1, padding: 1)
    case .transformed(let t): u = t
    case .perCall(let w):
        if tiles < WinogradTuning.current.minPerCallTiles { return try conv2d(x, weight: w, bias: bias, stride: 1, padding: 1) }
        u = nil
    }
    guard C >= 1 else { throw TensorError("conv2dWinograd: input \(x.shape) has no channels") }

    let y = Tensor(uninitializedShape: [B, O, H, W])  // [B, O, H, W]: same size, padding 1
    if y.count == 0 { return y }

    // Equal blocks of T tiles (a multiple of the transforms' 16 lanes) whose V (and M, when U is
    // held whole) take about blockBytes, but at least minBlockTiles tiles.
    let lanes = Int(PD_WINOGRAD_LANES)
    let bytesPerTile = 4 * positions * (u == nil ? C : C + O)
    let tuning = WinogradTuning.current
    var blocks = max(1, (tiles * bytesPerTile + tuning.blockBytes - 1) / tuning.blockBytes)
    blocks = max(1, min(blocks, tiles / max(1, tuning.minBlockTiles)))
    let blockTiles = ((tiles + blocks - 1) / blocks + lanes - 1) / lanes * lanes
    blocks = (tiles + blockTiles - 1) / blockTiles
    let ldv = blockTiles
    // One cache line between consecutive V_ξ (M_ξ): the transforms write (read) all α² at once,
    // and at power-of-two sizes they would share one cache set (transforms up to 2× slower).
    let vstride = C * ldv + lanes, mstride = O * ldv + lanes
    try requireInt32(C, O, H, W, ldv, what: "conv2dWinograd")

    Scratch.withBuffer(positions * (vstride + (u == nil ? 0 : mstride))) { scratch in
        let v = scratch  // V_ξ [C, ldv] at v + ξ·vstride
        for block in 0..<blocks {
            let tile0 = block * blockTiles, n = min(blockTiles, tiles - tile0)
            // Chunks of at least ~4096 tile-channels: less is not worth a thread.
            Parallel.forRanges(C, grain: max(1, 4096 / n)) { cs in
                pd_winograd_input(Int32(m), x.pointer, Int32(C), Int32(H), Int32(W), tile0, n,
                                  Int32(cs.lowerBound), Int32(cs.upperBound), v, ldv, vstride)
            }
            guard let u else {
                winogradRows(weight, v: v, ldv: ldv, vstride: vstride, bias: bias, y: y, tile0: tile0, n: n)
                continue
            }
            let mm = scratch + positions * vstride  // M_ξ [O, ldv] at mm + ξ·mstride
            winogradMultiply(u: u.pointer, v: v, ldv: ldv, vstride: vstride, m: mm, ldm: ldv,
                             mstride: mstride, positions: positions, O: O, C: C, n: n)
            Parallel.forRanges(O, grain: max(1, 4096 / n)) { os in
                pd_winograd_output(Int32(m), mm, ldv, mstride, 0, Int32(O), Int32(os.lowerBound), Int32(os.upperBound),
                                   bias?.pointer, y.pointer, Int32(H), Int32(W), tile0, n)
            }
        }
    }
    return y
}

/// One tile block of a per-call weight: blocks of R output rows (a multiple of 8) split over the
/// cores; for each, U is transformed α positions at a time into a buffer in cache and multiplied at
/// once, then the rows' outputs are transformed. No more of U than α positions of R rows per core
/// exists at a time. The products: pd_winograd_rows_multiply for blocks of at most
/// `fusedSgemmColumns` tiles, sgemm (single-threaded, U_ξ packed per call) for wider ones.
private func winogradRows(_ weight: WinogradWeight, v: UnsafePointer<Float>, ldv: Int, vstride: Int,
                          bias: Tensor?, y: Tensor, tile0: Int, n: Int) {
    guard case .perCall(let w) = weight.form else { return }
    let (O, C) = (weight.outChannels, weight.inChannels)
    let m = weight.variant.m, alpha = weight.variant.alpha, positions = alpha * alpha
    let (H, W) = (y.shape[2], y.shape[3])
    let lanes = Int(PD_WINOGRAD_LANES)
    let cols = (n + 15) / 16 * 16
    let tuning = WinogradTuning.current
    let sgemm = cols > tuning.fusedSgemmColumns
    // R: the rows' 9 weight planes and U's α positions in about fusedBytes, at most a core's share.
    let share = ((O + Parallel.workers - 1) / Parallel.workers + 7) / 8 * 8
    let fit = (sgemm ? tuning.fusedSgemmBytes : tuning.fusedBytes) / (4 * (alpha + 9) * C) / 8 * 8
    let R = max(8, min(share, fit))
    let mstride = R * ldv + lanes
    let planeFloats = 9 * R * C, uFloats = alpha * R * C
    Parallel.forRanges((O + R - 1) / R) { blocks in
        Scratch.withBuffer(positions * mstride + planeFloats + uFloats) { scratch in
            let mm = scratch, planes = scratch + positions * mstride, u = planes + planeFloats
            for block in blocks {
                let o0 = block * R, rows = min(R, O - o0)
                pd_winograd_rows_planes(w.pointer, Int32(C), Int32(o0), Int32(R), Int32(rows), planes)
                for i in 0..<alpha {
                    pd_winograd_rows_transform(Int32(m), planes, Int32(C), Int32(R), Int32(rows), Int32(i), u)
                    for j in 0..<alpha {
                        let xi = i * alpha + j, uj = u + j * R * C
                        if sgemm {
                            BLAS.sgemm(m: rows, n: n, k: C, a: uj, lda: C, b: v + xi * vstride, ldb: ldv, c: mm + xi * mstride, ldc: ldv)
                        } else {
                            pd_winograd_rows_multiply(uj, Int32(R), Int32(C), v + xi * vstride, ldv, Int32(cols), mm + xi * mstride, ldv)
                        }
                    }
                }
                pd_winograd_output(Int32(m), mm, ldv, mstride, Int32(o0), Int32(O), Int32(o0), Int32(o0 + rows),
                                   bias?.pointer, y.pointer, Int32(H), Int32(W), tile0, n)
            }
        }
    }
}

/// The transform-domain product, M_ξ[O, n] = U_ξ[O, C] · V_ξ[C, n] for every position ξ: the
/// one place that picks the GEMM (a bf16 GEMM could replace sgemm here). Positions are split over
/// the cores, each sgemm single-threaded (as OpenBLAS always is here). Blocks of at
/// most narrowColumns tiles (the 8² and 16² UNet layers) use a kernel that reads U once instead:
/// sgemm would repack U on every call (1280→1280 at 8², batch 2: 25 ms → 12 ms; 2560→1280 at
/// 16²: 100 ms → 46 ms).
func winogradMultiply(u: UnsafePointer<Float>, v: UnsafePointer<Float>, ldv: Int, vstride: Int,
                      m: UnsafeMutablePointer<Float>, ldm: Int, mstride: Int, positions: Int, O: Int, C: Int, n: Int) {
    let cols = (n + 15) / 16 * 16
    if cols <= WinogradTuning.current.narrowColumns {
        Parallel.forRanges(positions) { xis in
            pd_winograd_multiply_narrow(Int32(cols), u, Int32(O), Int32(C), v, ldv, vstride, m, ldm, mstride,
                                        Int32(xis.lowerBound), Int32(xis.upperBound))
        }
        return
    }
    Parallel.forRanges(positions) { xis in
        for xi in xis {
            BLAS.sgemm(m: O, n: n, k: C, a: u + xi * O * C, lda: C, b: v + xi * vstride, ldb: ldv,
                       c: m + xi * mstride, ldc: ldm)
        }
    }
}
