import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Linear {
        let f = KernelFixtures.kernels

        @Test func matchesFixture() throws {
            let y = try linear(f.tensor("linear.x"), weight: f.tensor("linear.weight"), bias: f.tensor("linear.bias"))
            expectClose(y, try f.tensor("linear.y"), "linear")
        }

        @Test func withoutBias() throws {
            let x = try f.tensor("linear.x"), w = try f.tensor("linear.weight"), b = try f.tensor("linear.bias")
            // y − bias from the fixture is the bias-free product.
            let expected = try f.tensor("linear.y")
            for i in 0..<expected.count { expected.pointer[i] -= b.pointer[i % b.count] }
            expectClose(try linear(x, weight: w), expected, relTol: 1e-5, "linear without bias")
        }

        @Test func rejectsBadShapes() throws {
            let x = randomTensor([2, 5, 24], seed: 1)
            #expect(throws: TensorError.self) { try linear(x, weight: randomTensor([16, 23], seed: 2)) }
            #expect(throws: TensorError.self) { try linear(x, weight: randomTensor([16, 24], seed: 2), bias: randomTensor([15], seed: 3)) }
            #expect(throws: TensorError.self) { try linear(x, weight: randomTensor([16, 24, 1], seed: 2)) }
        }
    }
}
