import Foundation
import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Softmax {
        let f = KernelFixtures.kernels

        @Test func matchesFixture() throws {
            let x = try f.tensor("softmax.x")
            try forEachISA { isa in
                expectClose(try softmax(x), try f.tensor("softmax.y"), "softmax [\(isa)]")
            }
        }

        /// Large logits must not overflow (max subtracted first); -inf entries give exact zeros.
        @Test func extremeValues() throws {
            let x = tensor([2, 4], [1000, 999, -1000, 1000, -.infinity, 0, -.infinity, 0])
            let e1 = 1 / (2 + exp(-1.0)), e2 = exp(-1.0) / (2 + exp(-1.0))
            try forEachISA { isa in
                let y = try softmax(x)
                expectClose(y, tensor([2, 4], [Float(e1), Float(e2), 0, Float(e1), 0, 0.5, 0, 0.5]), "extreme softmax [\(isa)]")
            }
        }

        @Test func rowsOfManyLengths() throws {
            try forEachISA { isa in
                for n in [1, 15, 16, 17, 33, 100] {
                    let x = randomTensor([3, n], seed: UInt64(n))
                    let expected = x.copy()
                    for r in 0..<3 {
                        let row = (0..<n).map { 8 * Double(x.pointer[r * n + $0]) }
                        let m = row.max()!, s = row.reduce(0) { $0 + exp($1 - m) }
                        for j in 0..<n { expected.pointer[r * n + j] = Float(exp(row[j] - m) / s) }
                    }
                    expectClose(try softmax(scale(x, 8)), expected, "softmax n=\(n) [\(isa)]")
                }
            }
        }
    }
}
