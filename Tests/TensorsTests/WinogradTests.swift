import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    /// conv2dWinograd against conv2d (im2col + sgemm) at every ISA level.
    @Suite struct Winograd {
        /// Tolerances, relative to max |conv2d output|: about 2× the largest errors measured on
        /// these tests (every ISA level, both products): F(2×2) 1.5e-6, F(4×4) 2.6e-6, both at
        /// 150 channels of values in [-1, 1) (8×8). Against a double-precision convolution there,
        /// F(2×2) is within 4–5e-7 and F(4×4) within 2–3.2e-6; conv2d's own error (0.7–1.5e-6 at
        /// K = 1350) makes up most of the F(2×2) figure. pareidolia-bench winograd measures
        /// ≤ 9.4e-7 and ≤ 6.3e-6 at the SD shapes.
        static func tolerance(_ v: WinogradVariant) -> Float { v == .f2x2 ? 3e-6 : 5e-6 }

        /// Runs `body` with Winograd forced on for few channels, `blockBytes` of scratch (no floor on
        /// the tiles per block), and each product: sgemm only, then the narrow kernel for blocks of
        /// up to 64 tiles (the default) for U held; for U per call, blocks of 8 output rows with
        /// sgemm products, then of a core's share with the fused kernel's.
        func withTuning(blockBytes: Int, _ body: () throws -> Void) rethrows {
            for (narrow, fused) in [(0, 1), (64, 1 << 20)] {
                try KernelTuning.with({ $0.winograd = WinogradTuning(blockBytes: blockBytes, minBlockTiles: 1, minInputChannels: 1,
                                                                     narrowColumns: narrow, fusedBytes: fused, fusedSgemmColumns: narrow,
                                                                     fusedSgemmBytes: fused, minPerCallTiles: 1) }) { try body() }
            }
        }

        func check(_ b: Int, _ c: Int, _ o: Int, _ h: Int, _ w: Int, bias: Bool, seed: UInt64) throws {
            let x = randomTensor([b, c, h, w], seed: seed), wt = randomTensor([o, c, 3, 3], seed: seed + 1)
            let bt = bias ? randomTensor([o], seed: seed + 2) : nil
            let expected = try conv2d(x, weight: wt, bias: bt, stride: 1, padding: 1)
            for variant in WinogradVariant.allCases {
                for once in [false, true] {
                    let y = try conv2dWinograd(x, weight: WinogradWeight(weight: wt, variant: variant, transformOnce: once), bias: bt)
                    expectClose(y, expected, relTol: Self.tolerance(variant),
                                "\(variant) \(once ? "held" : "per call") \(KernelISA.current) [\(b), \(c), \(h), \(w)] → \(o)\(bias ? " + bias" : "")")
                }
            }
        }

        /// Odd and tiny images (every tile an edge tile; partial tiles right and bottom), channel
        /// counts that are not multiples of the 16 lanes, batch 1 and 2, with and without bias.
        @Test func smallShapes() throws {
            try withTuning(blockBytes: 16 << 20) {
                try forEachISA { _ in
                    for (i, (b, c, o, h, w)) in [(1, 3, 5, 1, 1), (2, 5, 7, 3, 5), (1, 19, 13, 7, 7), (2, 17, 6, 9, 13),
                                                  (2, 1, 1, 2, 2), (1, 7, 3, 13, 9)].enumerated() {
                        try check(b, c, o, h, w, bias: i % 2 == 0, seed: UInt64(10 * i))
                        try check(b, c, o, h, w, bias: i % 2 == 1, seed: UInt64(10 * i + 5))
                    }
                }
            }
        }

        /// Rows of whole 8-tile segments (the AVX-512 permute copies): a segment ending on a partial
        /// tile (30 = 7·4 + 2), groups whose halves lie in two images (8 tiles per image), rows that
        /// are not whole groups (18 tiles), and 64-pixel rows of interior tiles. The last case sums
        /// over more channels than the narrow kernel's 128-channel chunks.
        @Test func segmentCopies() throws {
            try withTuning(blockBytes: 16 << 20) {
                try forEachISA { _ in
                    for (i, (b, c, o, h, w)) in [(1, 6, 5, 11, 30), (2, 9, 4, 4, 32), (2, 5, 3, 2, 16), (1, 4, 6, 10, 72),
                                                  (1, 40, 24, 12, 64), (1, 150, 21, 8, 8)].enumerated() {
                        try check(b, c, o, h, w, bias: i % 2 == 0, seed: UInt64(100 + 10 * i))
                    }
                }
            }
        }

        /// Blocks of 16 tiles: blocks start inside tile rows and inside images, the last one partial.
        @Test func manyBlocks() throws {
            try withTuning(blockBytes: 1) {
                try forEachISA { _ in
                    try check(2, 5, 7, 9, 13, bias: true, seed: 200)
                    try check(3, 4, 6, 20, 36, bias: false, seed: 210)
                }
            }
        }

        /// Below minInputChannels the weight is kept and conv2d runs: identical results.
        @Test func fewChannelsUseConv2d() throws {
            let x = randomTensor([2, 4, 9, 11], seed: 300), w = randomTensor([8, 4, 3, 3], seed: 301), b = randomTensor([8], seed: 302)
            let ww = try WinogradWeight(weight: w)
            #expect(ww.usesConv2d && ww.keepsWeight && ww.extraBytes == 0)
            expectClose(try conv2dWinograd(x, weight: ww, bias: b), try conv2d(x, weight: w, bias: b, padding: 1), relTol: 0)
        }

        /// Per call, nothing is held besides the weight itself (not copied); held, U is 4× its size.
        @Test func perCallHoldsNoTransform() throws {
            let w = randomTensor([24, 40, 3, 3], seed: 400)
            let perCall = try WinogradWeight(weight: w), held = try WinogradWeight(weight: w, transformOnce: true)
            #expect(perCall.extraBytes == 0 && perCall.keepsWeight && !perCall.usesConv2d)
            #expect(held.extraBytes == 36 * 24 * 40 * 4)
        }

        @Test func rejectsBadShapes() throws {
            #expect(throws: TensorError.self) { try WinogradWeight(weight: randomTensor([4, 3, 1, 1], seed: 1)) }
            #expect(throws: TensorError.self) { try WinogradWeight(weight: randomTensor([4, 3, 3], seed: 1)) }
            let ww = try WinogradWeight(weight: randomTensor([4, 32, 3, 3], seed: 1))
            #expect(throws: TensorError.self) { try conv2dWinograd(randomTensor([1, 31, 5, 5], seed: 2), weight: ww) }
            #expect(throws: TensorError.self) { try conv2dWinograd(randomTensor([32, 5, 5], seed: 2), weight: ww) }
            #expect(throws: TensorError.self) {
                try conv2dWinograd(randomTensor([1, 32, 5, 5], seed: 2), weight: ww, bias: randomTensor([3], seed: 3))
            }
        }
    }
}
