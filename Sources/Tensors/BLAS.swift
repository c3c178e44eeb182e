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
    public static var preferredCoreType: String? {
        pd_openblas_coretype_for(pd_cpu_detect()).map { String(cString: $0) }
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
