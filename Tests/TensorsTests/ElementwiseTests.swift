import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Elementwise {
        /// Sizes around the vector widths and the parallel split.
        let sizes = [1, 15, 17, 100, 70_001]

        @Test func binaryOps() throws {
            try forEachISA { isa in
                for n in sizes {
                    let a = randomTensor([n], seed: 1), b = randomTensor([n], seed: 2)
                    let sum = Tensor(uninitializedShape: [n]), prod = Tensor(uninitializedShape: [n]), scaled = Tensor(uninitializedShape: [n])
                    for i in 0..<n { sum.pointer[i] = a.pointer[i] + b.pointer[i]; prod.pointer[i] = a.pointer[i] * b.pointer[i]; scaled.pointer[i] = a.pointer[i] * 0.25 }
                    expectClose(try add(a, b), sum, relTol: 0, "add n=\(n) [\(isa)]")
                    expectClose(try mul(a, b), prod, relTol: 0, "mul n=\(n) [\(isa)]")
                    expectClose(scale(a, 0.25), scaled, relTol: 0, "scale n=\(n) [\(isa)]")
                    let c = a.copy()
                    try addInPlace(into: c, b)
                    expectClose(c, sum, relTol: 0, "addInPlace n=\(n) [\(isa)]")
                    scaleInPlace(c, 2)
                    for i in 0..<n { sum.pointer[i] *= 2 }
                    expectClose(c, sum, relTol: 0, "scaleInPlace n=\(n) [\(isa)]")
                }
            }
            #expect(throws: TensorError.self) { try add(randomTensor([2, 3], seed: 1), randomTensor([3, 2], seed: 1)) }
            #expect(throws: TensorError.self) { try addInPlace(into: randomTensor([2], seed: 1), randomTensor([3], seed: 1)) }
        }

        @Test func channelBiasAndBroadcast() throws {
            let (B, C, H, W) = (2, 3, 5, 7)
            let x = randomTensor([B, C, H, W], seed: 4), bias = randomTensor([C], seed: 5), emb = randomTensor([B, C], seed: 6)
            let withBias = x.copy(), withEmb = x.copy()
            for b in 0..<B { for c in 0..<C { for s in 0..<H * W {
                let i = (b * C + c) * H * W + s
                withBias.pointer[i] += bias.pointer[c]
                withEmb.pointer[i] += emb.pointer[b * C + c]
            } } }
            try forEachISA { isa in
                expectClose(try addChannelBias(x, bias), withBias, relTol: 0, "addChannelBias [\(isa)]")
                expectClose(try addBroadcast(x, emb), withEmb, relTol: 0, "addBroadcast [\(isa)]")
                let y = x.copy(), z = x.copy()
                try addChannelBiasInPlace(into: y, bias)
                try addBroadcastInPlace(into: z, emb)
                expectClose(y, withBias, relTol: 0, "addChannelBiasInPlace [\(isa)]")
                expectClose(z, withEmb, relTol: 0, "addBroadcastInPlace [\(isa)]")
            }
            #expect(throws: TensorError.self) { try addChannelBias(x, randomTensor([B], seed: 1)) }
            #expect(throws: TensorError.self) { try addBroadcast(x, randomTensor([C, B], seed: 1)) }
        }
    }
}
