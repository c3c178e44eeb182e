import COpenBLAS

/// OpenBLAS, loaded at run time with the kernel family chosen for this CPU (see COpenBLAS.h).
public enum BLAS {
    /// Why OpenBLAS could not be loaded, or nil once it is.
    private static let loadError: String? = {
        var buffer = [CChar](repeating: 0, count: 512)
        if pd_blas_load(Int32(KernelISA.supported.rawValue), &buffer, buffer.count) == 0 { return nil }
        return String(cString: buffer)
    }()

    /// Loads OpenBLAS if needed. Call early (the command-line tool does, first thing) so the
    /// core type is chosen before anything else could load the library.
    public static func load() throws {
        if let loadError { throw TensorError(loadError) }
    }

    /// The kernel family OpenBLAS runs ("SkylakeX", "Haswell", …).
    public static var coreName: String { (try? load()) == nil ? "not loaded" : String(cString: pd_blas_corename()) }
    /// True when the loader chose the core type (the user had not set OPENBLAS_CORETYPE).
    public static var coreTypeChosenByLoader: Bool { pd_blas_coretype_was_set() != 0 }
    public static var library: String { String(cString: pd_blas_library()) }
    public static var config: String { String(cString: pd_blas_config()) }
    /// OpenBLAS's own threads: 1 (the loader pins it; `sgemmAcrossCores` spreads the work).
    public static var threads: Int { Int(pd_blas_get_threads()) }

    /// The core type the loader requests for the CPU it runs on at the kernels' level
    /// (`KernelISA.supported`: PAREIDOLIA_ISA=avx2 asks for the AVX2 family), or nil.
    public static var preferredCoreType: String? { coreType(for: CPUFeatures.current, cappedAt: KernelISA.supported) }

    /// The core type the loader requests for a CPU with `features` whose kernels are capped at
    /// `level` (nil: OpenBLAS decides).
    public static func coreType(for features: CPUFeatures, cappedAt level: KernelISA = .avx512) -> String? {
        var f = pd_cpu_features()
        f.avx2 = features.avx2 ? 1 : 0
        f.fma = features.fma ? 1 : 0
        f.avx512f = features.avx512 ? 1 : 0
        f.avx512cd = features.avx512 ? 1 : 0
        f.avx512bw = features.avx512 ? 1 : 0
        f.avx512dq = features.avx512 ? 1 : 0
        f.avx512vl = features.avx512 ? 1 : 0
        f.os_ymm = features.osSavesYMM ? 1 : 0
        f.os_zmm = features.osSavesZMM ? 1 : 0
        f.vendor_amd = features.amd ? 1 : 0
        return pd_openblas_coretype_request(f, Int32(level.rawValue)).map { String(cString: $0) }
    }

    /// Row-major `C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C`.
    /// Crashes with the loader's message if OpenBLAS is missing; entry points call `load()` first.
    @inline(__always)
    public static func sgemm(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        if let loadError { fatalError(loadError) }
        pd_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha,
                 a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }
}

extension BLAS {
    /// Products smaller than this many multiply-adds run as one call (splitting costs more).
    static let splitThreshold = 1 << 21

    /// `sgemm` spread over the cores: the larger of m and n is cut into one piece per worker
    /// (pieces a multiple of 16), each a single-threaded OpenBLAS call. The cut depends only on
    /// the shape and the worker count, so the bits never depend on what else the process runs.
    public static func sgemmAcrossCores(
        transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let long = max(m, n)
        let pieces = m * n * k < splitThreshold ? 1 : min(Parallel.workers, max(1, long / 16))
        if pieces == 1 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let step = ((long + pieces - 1) / pieces + 15) / 16 * 16
        let count = (long + step - 1) / step
        Parallel.forEach(count) { p in
            let lo = p * step, len = min(long, lo + step) - lo
            if m >= n {  // rows lo..<lo+len of op(A) and C
                sgemm(transA: transA, transB: transB, m: len, n: n, k: k, alpha: alpha, a: a + (transA ? lo : lo * lda), lda: lda,
                      b: b, ldb: ldb, beta: beta, c: c + lo * ldc, ldc: ldc)
            } else {  // columns lo..<lo+len of op(B) and C
                sgemm(transA: transA, transB: transB, m: m, n: len, k: k, alpha: alpha, a: a, lda: lda,
                      b: b + (transB ? lo * ldb : lo), ldb: ldb, beta: beta, c: c + lo, ldc: ldc)
            }
        }
    }
}

/// The CPU features that decide OpenBLAS's kernel family and our own kernels' paths.
public struct CPUFeatures: Sendable, Equatable {
    public var avx2 = false, fma = false, f16c = false
    /// AVX-512 F, CD, BW, DQ and VL together (what SkylakeX kernels need).
    public var avx512 = false
    public var avx512bf16 = false, avx512fp16 = false
    public var osSavesYMM = false, osSavesZMM = false
    public var amd = false, intel = false

    public init() {}

    public static let current: CPUFeatures = {
        let c = pd_cpu_detect()
        var f = CPUFeatures()
        f.avx2 = c.avx2 != 0
        f.fma = c.fma != 0
        f.f16c = c.f16c != 0
        f.avx512 = c.avx512f != 0 && c.avx512cd != 0 && c.avx512bw != 0 && c.avx512dq != 0 && c.avx512vl != 0
        f.avx512bf16 = c.avx512bf16 != 0
        f.avx512fp16 = c.avx512fp16 != 0
        f.osSavesYMM = c.os_ymm != 0
        f.osSavesZMM = c.os_zmm != 0
        f.amd = c.vendor_amd != 0
        f.intel = c.vendor_intel != 0
        return f
    }()
}
