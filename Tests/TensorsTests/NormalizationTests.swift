import Foundation
import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Normalization {
        let f = KernelFixtures.kernels

        func groupNormCase(_ name: String) throws -> (x: Tensor, w: Tensor, b: Tensor, y: Tensor, groups: Int, eps: Float) {
            let p = f.parameters(name)
            let groups = try #require(p["num_groups"] as? Int), eps = try #require(p["eps"] as? Double)
            return (try f.tensor("\(name).x"), try f.tensor("\(name).weight"), try f.tensor("\(name).bias"), try f.tensor("\(name).y"), groups, Float(eps))
        }

        @Test(arguments: ["groupnorm", "groupnorm_eps6"])
        func groupNormMatchesFixture(_ name: String) throws {
            let c = try groupNormCase(name)
            try forEachISA { isa in
                expectClose(try groupNorm(c.x, groups: c.groups, weight: c.w, bias: c.b, eps: c.eps), c.y, "\(name) [\(isa)]")
            }
        }

        @Test(arguments: ["groupnorm", "groupnorm_eps6"])
        func groupNormSiLUMatchesFixture(_ name: String) throws {
            let c = try groupNormCase(name)
            let expected = c.y.copy()
            for i in 0..<expected.count {
                let v = Double(c.y.pointer[i])
                expected.pointer[i] = Float(v / (1 + exp(-v)))
            }
            try forEachISA { isa in
                expectClose(try groupNormSiLU(c.x, groups: c.groups, weight: c.w, bias: c.b, eps: c.eps), expected, "\(name) + SiLU [\(isa)]")
            }
        }

        /// A large group far from zero: naive one-pass float statistics lose the variance here.
        @Test func groupNormLargeOffsetGroups() throws {
            let (B, C, S, G) = (1, 8, 40_000, 2)
            let x = randomTensor([B, C, S], seed: 5)
            for i in 0..<x.count { x.pointer[i] = 1000 + 0.01 * x.pointer[i] }
            let expected = Tensor(uninitializedShape: x.shape)
            let len = C / G * S
            for g in 0..<B * G {
                let block = UnsafeBufferPointer(start: x.pointer + g * len, count: len)
                let mean = block.reduce(0.0) { $0 + Double($1) } / Double(len)
                let v = block.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(len)
                for i in 0..<len { expected.pointer[g * len + i] = Float((Double(block[i]) - mean) / (v + 1e-6).squareRoot()) }
            }
            try forEachISA { isa in
                expectClose(try groupNorm(x, groups: G, weight: nil, bias: nil, eps: 1e-6), expected, "offset groups [\(isa)]")
            }
        }

        @Test func layerNormMatchesFixture() throws {
            let eps = try #require(f.parameters("layernorm")["eps"] as? Double)
            let x = try f.tensor("layernorm.x"), w = try f.tensor("layernorm.weight"), b = try f.tensor("layernorm.bias")
            try forEachISA { isa in
                expectClose(try layerNorm(x, weight: w, bias: b, eps: Float(eps)), try f.tensor("layernorm.y"), "layernorm [\(isa)]")
            }
        }

        @Test func rejectsBadShapes() throws {
            let x = randomTensor([2, 6, 3, 3], seed: 1)
            #expect(throws: TensorError.self) { try groupNorm(x, groups: 4, weight: nil, bias: nil) }
            #expect(throws: TensorError.self) { try groupNorm(x, groups: 3, weight: randomTensor([5], seed: 2), bias: nil) }
            #expect(throws: TensorError.self) { try groupNormSiLU(randomTensor([6], seed: 1), groups: 3, weight: nil, bias: nil) }
            #expect(throws: TensorError.self) { try layerNorm(x, weight: randomTensor([4], seed: 2), bias: nil) }
        }
    }
}
