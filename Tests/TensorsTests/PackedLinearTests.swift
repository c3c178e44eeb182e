import Foundation
import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    /// The pre-packed product of few rows (the text encoder's linear layers).
    @Suite struct PackedLinear {
        /// y = x Wᵀ + b summed in double: what every output must be near.
        static func reference(_ x: Tensor, _ w: Tensor, _ b: Tensor?) -> Tensor {
            let (n, k) = (w.shape[0], w.shape[1]), m = x.count / k
            let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [n])  // [..., n]
            for r in 0..<m {
                for c in 0..<n {
                    var s = Double(b?.pointer[c] ?? 0)
                    for i in 0..<k { s += Double(x.pointer[r * k + i]) * Double(w.pointer[c * k + i]) }
                    y.pointer[r * n + c] = Float(s)
                }
            }
            return y
        }

        /// Rows around the blocks (6 and 12), columns around the 32-wide panels and the 16-wide
        /// halves, odd depths: near the double-precision sum, and the same bits at every ISA level.
        @Test(arguments: [(1, 1, 1), (5, 7, 3), (13, 33, 17), (25, 47, 64), (154, 80, 96), (30, 96, 200)])
        func matchesReferenceAtEveryLevel(_ shape: (Int, Int, Int)) throws {
            let (m, n, k) = shape
            let x = randomTensor([m, k], seed: 11), w = randomTensor([n, k], seed: 12), b = randomTensor([n], seed: 13)
            let packed = try PackedLinearWeight(.float(w))
            let want = Self.reference(x, w, b)
            var first: Tensor?
            try forEachISA { level in
                let y = try linear(x, packed: packed, bias: b)
                expectClose(y, want, relTol: 1e-5, "\(m)×\(n)×\(k) at \(level)")
                if let first {
                    #expect(memcmp(first.pointer, y.pointer, y.count * 4) == 0, "\(m)×\(n)×\(k): \(level) differs in bits from the first level")
                } else { first = y }
                let plain = try linear(x, packed: packed)  // no bias
                let noBias = Self.reference(x, w, nil)
                expectClose(plain, noBias, relTol: 1e-5, "\(m)×\(n)×\(k) without bias at \(level)")
            }
        }

        /// Released and packed again, from a 16-bit weight too: the same outputs as the plain product.
        @Test func releaseRepacksAndHalfWeights() throws {
            let x = randomTensor([2, 77, 64], seed: 21), w = randomTensor([96, 64], seed: 22), b = randomTensor([96], seed: 23)
            let packed = try PackedLinearWeight(.float(w))
            #expect(!packed.isPacked)
            let y1 = try linear(x, packed: packed, bias: b)
            #expect(packed.isPacked)
            #expect(y1.shape == [2, 77, 96])
            packed.release()
            #expect(!packed.isPacked)
            let y2 = try linear(x, packed: packed, bias: b)
            #expect(memcmp(y1.pointer, y2.pointer, y1.count * 4) == 0)
            expectClose(y1, try linear(x, weight: w, bias: b), relTol: 1e-5, "against OpenBLAS")

            let half = HalfTensor(rounding: w, to: .fp16)
            let fromHalf = try PackedLinearWeight(.half(half))
            expectClose(try linear(x, packed: fromHalf, bias: b), try linear(x, weight: .half(half), bias: b), relTol: 1e-5, "16-bit weight")
        }

        @Test func rejectsBadShapes() throws {
            #expect(throws: TensorError.self) { try PackedLinearWeight(.float(randomTensor([4, 4, 1], seed: 1))) }
            let packed = try PackedLinearWeight(.float(randomTensor([16, 24], seed: 2)))
            #expect(throws: TensorError.self) { try linear(randomTensor([3, 23], seed: 3), packed: packed) }
            #expect(throws: TensorError.self) { try linear(randomTensor([3, 24], seed: 3), packed: packed, bias: randomTensor([15], seed: 4)) }
        }
    }
}
