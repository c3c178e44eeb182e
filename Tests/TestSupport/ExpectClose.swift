import Testing
import Tensors

/// The worst element of a comparison: where, and the two values.
public struct WorstElement: CustomStringConvertible {
    public let index: [Int]
    public let actual: Float
    public let expected: Float
    public let error: Float
    public var description: String { "at \(index): got \(actual), expected \(expected) (|error| \(error))" }
}

/// Largest |actual − expected| and where it is (multi-index in `shape`).
public func worstElement(_ actual: Tensor, _ expected: Tensor) -> WorstElement {
    var worst = 0, worstError: Float = -1
    for i in 0..<min(actual.count, expected.count) {
        let e = abs(actual.pointer[i] - expected.pointer[i])
        if e > worstError || e.isNaN { worstError = e; worst = i; if e.isNaN { break } }
    }
    var index: [Int] = []
    var rest = worst
    for d in expected.shape.reversed() { index.insert(d > 0 ? rest % d : 0, at: 0); rest /= max(d, 1) }
    return WorstElement(index: index, actual: actual.count > worst ? actual.pointer[worst] : .nan,
                        expected: expected.count > worst ? expected.pointer[worst] : .nan, error: worstError)
}

/// Expects equal shapes and max |actual − expected| ≤ relTol × max |expected|; on failure the
/// message names the worst element.
public func expectClose(_ actual: Tensor, _ expected: Tensor, relTol: Float = 1e-5, _ what: String = "",
                        sourceLocation: SourceLocation = #_sourceLocation) {
    guard actual.shape == expected.shape else {
        Issue.record("\(what): shape \(actual.shape), expected \(expected.shape)", sourceLocation: sourceLocation)
        return
    }
    let bound = relTol * expected.maxAbs
    let worst = worstElement(actual, expected)
    if !(worst.error <= bound) {
        Issue.record("\(what): max |error| \(worst.error) > \(relTol) × max|ref| = \(bound); worst \(worst)",
                     sourceLocation: sourceLocation)
    }
}

/// The relative error actually measured (max |error| / max |reference|), for reports.
public func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    worstElement(actual, expected).error / max(expected.maxAbs, .leastNormalMagnitude)
}
