import Foundation
import Testing
import TestSupport
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
        // Capped (PAREIDOLIA_ISA): the family a lesser CPU of the same vendor would get.
        #expect(BLAS.coreType(for: f, cappedAt: .avx2) == "Zen")
        f.amd = false
        #expect(BLAS.coreType(for: f, cappedAt: .avx2) == "Haswell")
        #expect(BLAS.coreType(for: f, cappedAt: .baseline) == "Nehalem")  // not the AVX kernels it would detect
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

extension BLASLoaderTests {
    /// OpenBLAS's thread count is process-wide and changes the bits of some products (measured:
    /// 333×517×1001 on 1 and 2 threads, 75% of the elements), so the loader pins it to one thread
    /// and sgemmAcrossCores spreads products over the cores with a cut that depends on the shape only.
    @Test("OpenBLAS runs on one thread")
    func oneThread() throws {
        try BLAS.load()
        #expect(BLAS.threads == 1)
    }

    /// The pieces land where they belong: against one single-threaded call (OpenBLAS itself is
    /// checked above), with transposes, leading dimensions wider than the operands and beta = 1.
    @Test("sgemmAcrossCores: every piece, with transposes and leading dimensions", arguments: [
        (1, 1, 1), (2, 3, 4), (333, 517, 13), (517, 333, 13), (77, 768, 64), (1600, 40, 40), (16, 5000, 30),
    ])
    func acrossCores(_ shape: (Int, Int, Int)) throws {
        try BLAS.load()
        let (m, n, k) = shape
        for (transA, transB) in [(false, false), (false, true), (true, false), (true, true)] {
            let lda = (transA ? m : k) + 3, ldb = (transB ? k : n) + 1, ldc = n + 2
            let a = randomTensor([(transA ? k : m) * lda], seed: 1), b = randomTensor([(transB ? n : k) * ldb], seed: 2)
            let c = randomTensor([m * ldc], seed: 3), expected = c.copy()
            BLAS.sgemmAcrossCores(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda,
                                  b: b.pointer, ldb: ldb, beta: 1, c: c.pointer, ldc: ldc)
            BLAS.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, a: a.pointer, lda: lda,
                       b: b.pointer, ldb: ldb, beta: 1, c: expected.pointer, ldc: ldc)
            // Padding columns (n..<ldc) stay as they were in both.
            expectClose(c, expected, relTol: 1e-5, "\(shape) transA \(transA) transB \(transB)")
        }
    }
}
