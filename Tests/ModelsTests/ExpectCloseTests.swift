import Testing
import TestSupport
import Tensors

@Suite("expectClose can fail")
struct ExpectCloseTests {
    @Test("reports a mismatch beyond the tolerance, with the worst element")
    func reportsMismatch() throws {
        let a = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        let b = try Tensor(shape: [2, 2], scalars: [1, 2, 3.01, 4])
        withKnownIssue { expectClose(a, b, relTol: 1e-5, "perturbed") }
        withKnownIssue { expectClose(a, try! a.reshaped([4]), "shape") }
        let worst = worstElement(a, b)
        #expect(worst.index == [1, 0])
        expectClose(a, a.copy(), relTol: 0, "identical")
    }
}
