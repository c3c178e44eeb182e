import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Layout {
        let f = KernelFixtures.kernels

        @Test func upsampleMatchesFixture() throws {
            try forEachISA { isa in
                expectClose(try upsampleNearest2x(try f.tensor("upsample_nearest.x")), try f.tensor("upsample_nearest.y"), relTol: 0, "upsample [\(isa)]")
            }
        }

        @Test func concatMatchesFixture() throws {
            let axis = try #require(f.parameters("concat")["dim"] as? Int)
            let a = try f.tensor("concat.a"), b = try f.tensor("concat.b"), y = try f.tensor("concat.y")
            expectClose(try concat([a, b], axis: axis), y, relTol: 0, "concat")
            expectClose(try concat([a, b], axis: axis - 4), y, relTol: 0, "concat, negative axis")
        }

        @Test func concatOtherAxes() throws {
            let a = tensor([2, 2], [1, 2, 3, 4]), b = tensor([1, 2], [5, 6]), c = tensor([2, 1], [7, 8])
            expectClose(try concat([a, b], axis: 0), tensor([3, 2], [1, 2, 3, 4, 5, 6]), relTol: 0, "concat axis 0")
            expectClose(try concat([a, c], axis: -1), tensor([2, 3], [1, 2, 7, 3, 4, 8]), relTol: 0, "concat last axis")
            #expect(throws: TensorError.self) { try concat([a, b], axis: 1) }
            #expect(throws: TensorError.self) { try concat([a, c], axis: 2) }
            #expect(throws: TensorError.self) { try concat([], axis: 0) }
        }

        @Test func tokensRoundTrip() throws {
            try forEachISA { isa in
                for (b, c, h, w) in [(2, 5, 3, 4), (1, 70, 9, 7), (2, 33, 1, 40)] {
                    let x = randomTensor([b, c, h, w], seed: 3)
                    let t = try imageToTokens(x)
                    #expect(t.shape == [b, h * w, c])
                    for bi in 0..<b { for ci in 0..<c { for p in 0..<h * w {
                        if t.pointer[(bi * h * w + p) * c + ci] != x.pointer[(bi * c + ci) * h * w + p] {
                            Issue.record("imageToTokens [\(isa)] wrong at b\(bi) c\(ci) p\(p)"); return
                        }
                    } } }
                    expectClose(try tokensToImage(t, height: h, width: w), x, relTol: 0, "tokens round trip [\(isa)]")
                    expectClose(try permute(x, [0, 2, 3, 1]).reshaped([b, h * w, c]), t, relTol: 0, "permute = imageToTokens")
                }
            }
            #expect(throws: TensorError.self) { try tokensToImage(randomTensor([1, 6, 2], seed: 1), height: 2, width: 2) }
        }

        @Test func permuteGeneral() throws {
            let x = randomTensor([2, 3, 4, 5], seed: 9)
            let y = try permute(x, [2, 0, 3, 1])
            #expect(y.shape == [4, 2, 5, 3])
            for a in 0..<2 { for b in 0..<3 { for c in 0..<4 { for d in 0..<5 {
                #expect(y.pointer[((c * 2 + a) * 5 + d) * 3 + b] == x.pointer[((a * 3 + b) * 4 + c) * 5 + d])
            } } } }
            #expect(throws: TensorError.self) { try permute(x, [0, 1, 1, 2]) }
        }
    }
}
