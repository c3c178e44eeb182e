import Foundation
import Testing
@testable import Analysis
import Tensors

/// Where two runs part, on made-up x̂₀ whose answer is known.
@Suite("Run divergence")
struct RunDivergenceTests {
    /// x̂₀ [E, 4, h, w]: a fixed pattern, plus `change(e)` times a second one at evaluation e.
    static func x0(evaluations e: Int, side: Int = 4, change: (Int) -> Float = { _ in 0 }) -> Tensor {
        let t = Tensor(zeros: [e, 4, side, side])  // [E, 4, h, w]
        let n = 4 * side * side
        for k in 0..<e { for i in 0..<n { t.pointer[k * n + i] = sin(Float(i)) + change(k) * cos(Float(3 * i)) } }
        return t
    }

    /// "Pictures": bytes from each evaluation's x̂₀.
    static func pictures(_ t: Tensor) -> [[UInt8]] {
        let n = t.count / t.shape[0]
        return (0..<t.shape[0]).map { e in (0..<n).map { UInt8(max(0, min(255, 128 + 40 * t.pointer[e * n + $0]))) } }
    }

    @Test("the same x̂₀: zero distance, and the runs never part")
    func identicalRunsNeverPart() throws {
        let a = Self.x0(evaluations: 6)
        let d = try RunDivergence(x0: a, a, picturesA: Self.pictures(a), picturesB: Self.pictures(a))
        #expect(d.latent == [Double](repeating: 0, count: 6) && d.pictures == [Double](repeating: 0, count: 6))
        #expect(d.partsAt == nil && d.settledBy == nil)
        #expect(d.sentence.contains("never part"))
    }

    @Test("a run that leaves the other at evaluation 4 and settles at 6")
    func partingAndSettling() throws {
        let a = Self.x0(evaluations: 10)
        // Apart from evaluation 3 (0-based), moving until 5, then still.
        let b = Self.x0(evaluations: 10) { e in [0, 0, 0, 0.3, 0.6][safe: e] ?? 1.5 }
        let d = try RunDivergence(x0: a, b, picturesA: Self.pictures(a), picturesB: Self.pictures(b))
        #expect(d.latent[0..<3].allSatisfy { $0 == 0 } && d.latent[3] > RunDivergence.partThreshold)
        #expect(d.partsAt == 3 && d.settledBy == 5, "k \(String(describing: d.partsAt)), m \(String(describing: d.settledBy))")
        #expect(d.sentence == "The runs part from evaluation 4; the layout is settled by evaluation 6 (of 10).")
        #expect(d.remainingA.allSatisfy { $0 == 0 } && d.remainingB.last == 0)
        // Without pictures, m is read from the latent x̂₀ the same way.
        let latentOnly = try RunDivergence(x0: a, b)
        #expect(latentOnly.pictures.isEmpty && latentOnly.partsAt == 3 && latentOnly.settledBy == 5)
    }

    @Test("m is the first evaluation from which both runs stay near their last picture, never before k")
    func settlingRule() {
        let d = RunDivergence(latent: [0.05, 0.2, 0.3, 0.3], pictures: [0.01, 0.05, 0.1, 0.1],
                              remainingA: [0.2, 0.1, 0.04, 0], remainingB: [0.3, 0.06, 0.03, 0])
        #expect(d.settleLevel == 0.05 && d.partsAt == 1 && d.settledBy == 2)
        #expect(d.sentence == "The runs part from evaluation 2; the layout is settled by evaluation 3 (of 4).")
        // Still moving before the end: m is the last evaluation, and the sentence says so.
        let late = RunDivergence(latent: [0.2, 0.2, 0.2], pictures: [0.1, 0.1, 0.1], remainingA: [0.2, 0.2, 0], remainingB: [0, 0, 0])
        #expect(late.settledBy == 2 && late.stillChanging && late.sentence.contains("still changing"))
        // Settled before the runs part: m waits for k.
        let early = RunDivergence(latent: [0, 0, 0.5, 0.5], pictures: [0, 0, 0.2, 0.2], remainingA: [0, 0, 0, 0], remainingB: [0, 0, 0, 0])
        #expect(early.partsAt == 2 && early.settledBy == 2)
    }

    @Test func distances() {
        let a: [Float] = [1, 2, 3, 4], minus = a.map { -$0 }, zero: [Float] = [0, 0, 0, 0]
        func rel(_ x: [Float], _ y: [Float]) -> Double { x.withUnsafeBufferPointer { p in y.withUnsafeBufferPointer { RunDivergence.relativeDistance(p, $0) } } }
        #expect(abs(rel(a, minus) - 2) < 1e-12 && abs(rel(a, zero) - 2.0.squareRoot()) < 1e-12 && rel(zero, zero) == 0)
        #expect(RunDivergence.pictureDistance([0, 255], [255, 0]) == 1 && RunDivergence.pictureDistance([7], [7]) == 0)
    }
}

extension Array {
    subscript(safe i: Int) -> Element? { indices.contains(i) ? self[i] : nil }
}
