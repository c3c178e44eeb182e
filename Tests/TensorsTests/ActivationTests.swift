import Foundation
import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Activations {
        let f = KernelFixtures.kernels

        @Test func matchFixtures() throws {
            try forEachISA { isa in
                expectClose(silu(try f.tensor("silu.x")), try f.tensor("silu.y"), "silu [\(isa)]")
                expectClose(gelu(try f.tensor("gelu.x")), try f.tensor("gelu.y"), "gelu [\(isa)]")
                expectClose(quickGelu(try f.tensor("quick_gelu.x")), try f.tensor("quick_gelu.y"), "quick_gelu [\(isa)]")
                expectClose(try geglu(try f.tensor("geglu.x")), try f.tensor("geglu.y"), "geglu [\(isa)]")
            }
        }

        @Test func inPlaceFormsMatch() throws {
            for (name, op, inPlace) in [("silu", silu, siluInPlace), ("gelu", gelu, geluInPlace), ("quick_gelu", quickGelu, quickGeluInPlace)] {
                let x = try f.tensor("\(name).x")
                let expected = op(x)
                inPlace(x)
                expectClose(x, expected, relTol: 0, "\(name) in place")
            }
        }

        /// GELU over a dense range, far tails included, against a float64 erfc reference:
        /// the error must stay within a few float32 ulps of each value, not just of the largest.
        @Test func geluElementwiseAccuracy() throws {
            let n = 200_001
            let x = Tensor(uninitializedShape: [n])
            for i in 0..<n { x.pointer[i] = -12 + 24 * Float(i) / Float(n - 1) }
            forEachISA { isa in
                let y = gelu(x)
                var worst = 0.0, at: Float = 0
                for i in 0..<n {
                    let v = Double(x.pointer[i])
                    let ref = 0.5 * v * erfc(-v / 2.0.squareRoot())
                    guard abs(ref) > 1e-30 else { continue }
                    let rel = abs(Double(y.pointer[i]) - ref) / abs(ref)
                    if rel > worst { worst = rel; at = x.pointer[i] }
                }
                #expect(worst < 2e-5, "gelu [\(isa)] worst relative error \(worst) at x = \(at)")
            }
        }

        @Test func siluExtremes() throws {
            let x = tensor([6], [-200, -88, 0, 1e-30, 88, 200])
            forEachISA { isa in
                let y = silu(x)
                #expect(y.scalars.allSatisfy { $0.isFinite }, "silu [\(isa)] \(y.scalars)")
                #expect(abs(y.pointer[0]) < 1e-30 && y.pointer[2] == 0 && y.pointer[4] == 88 && y.pointer[5] == 200, "silu [\(isa)] \(y.scalars)")
            }
        }

        @Test func gegluRejectsOddWidth() {
            #expect(throws: TensorError.self) { try geglu(randomTensor([2, 5], seed: 1)) }
        }
    }
}
