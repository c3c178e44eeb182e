import COpenBLAS

/// OpenBLAS, loaded at run time with the kernel family chosen for this CPU (see COpenBLAS.h).
public enum BLAS {
    /// Why OpenBLAS could not be loaded, or nil once it is.
    private static let loadError: String? = {
        var buffer = [CChar](repeating: 0, count: 512)
        if pd_blas_load(&buffer, buffer.count) == 0 { return nil }
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
    public static var threads: Int {
        get { Int(pd_blas_get_threads()) }
        set { pd_blas_set_threads(Int32(newValue)) }
    }

    /// The core type the loader would request for the CPU it runs on, or nil.
    public static var preferredCoreType: String? { coreType(for: CPUFeatures.current) }

    /// The core type the loader requests for a CPU with `features` (nil: OpenBLAS decides).
    public static func coreType(for features: CPUFeatures) -> String? {
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
        return pd_openblas_coretype_for(f).map { String(cString: $0) }
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
