import Foundation
import Testing
@testable import Tensors

@Suite("OpenBLAS loader")
struct BLASLoaderTests {
    @Test("core type chosen from CPU features")
    func coreTypeChoice() {
        var f = CPUFeatures()
        #expect(BLAS.coreType(for: f) == nil)  // SSE-only: OpenBLAS's own detection
        f.avx2 = true; f.fma = true
        #expect(BLAS.coreType(for: f) == nil)  // the OS does not save ymm: AVX is unusable
        f.osSavesYMM = true
        #expect(BLAS.coreType(for: f) == "Haswell")
        f.amd = true
        #expect(BLAS.coreType(for: f) == "Zen")
        f.avx512 = true
        #expect(BLAS.coreType(for: f) == "Zen")  // zmm state not saved: no AVX-512 kernels
        f.osSavesZMM = true
        #expect(BLAS.coreType(for: f) == "SkylakeX")
    }

    @Test("the loaded library runs the chosen core, unless the user chose one")
    func loadedCore() throws {
        try BLAS.load()
        if let user = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !user.isEmpty {
            #expect(!BLAS.coreTypeChosenByLoader)
            #expect(BLAS.coreName.lowercased() == user.lowercased())
        } else if let preferred = BLAS.preferredCoreType {
            #expect(BLAS.coreTypeChosenByLoader)
            #expect(BLAS.coreName.lowercased() == preferred.lowercased())
            // The variable was only for OpenBLAS's constructor; it must not leak to children.
            #expect(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil)
        }
        #expect(BLAS.coreName.lowercased() != "prescott" || BLAS.preferredCoreType == nil)
    }

    @Test("sgemm computes row-major products with transposes")
    func sgemmSmall() throws {
        try BLAS.load()
        // A [2,3], B [3,2]; C = A·B; also Aᵀ and Bᵀ variants through leading dimensions.
        let a: [Float] = [1, 2, 3, 4, 5, 6], b: [Float] = [7, 8, 9, 10, 11, 12]
        var c = [Float](repeating: 0, count: 4)
        BLAS.sgemm(m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 2, c: &c, ldc: 2)
        #expect(c == [58, 64, 139, 154])
        let at: [Float] = [1, 4, 2, 5, 3, 6], bt: [Float] = [7, 9, 11, 8, 10, 12]
        BLAS.sgemm(transA: true, transB: true, m: 2, n: 2, k: 3, a: at, lda: 2, b: bt, ldb: 3, c: &c, ldc: 2)
        #expect(c == [58, 64, 139, 154])
    }
}
