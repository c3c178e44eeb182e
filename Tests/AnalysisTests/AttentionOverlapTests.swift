import Foundation
import Testing
@testable import Analysis

/// Synthetic maps with known answers: apart, identical, and two blobs that drift into one.
@Suite("Attention overlap")
struct AttentionOverlapTests {
    /// A Gaussian blob on a w×w grid centred at (cx, cy).
    static func blob(_ cx: Double, _ cy: Double, side w: Int = 16, radius: Double = 2) -> [Float] {
        (0..<(w * w)).map { (p: Int) -> Float in
            let dx = Double(p % w) - cx, dy = Double(p / w) - cy
            let d2: Double = dx * dx + dy * dy
            return Float(exp(-d2 / (2 * radius * radius)))
        }
    }

    @Test func apartAndTogether() {
        let left = Self.blob(3, 8), right = Self.blob(12, 8)
        let apart = MapOverlap(left, right)
        #expect(apart.iou == 0 && apart.pearson < 0)
        let same = MapOverlap(left, left.map { $0 * 3 })  // scale does not matter
        #expect(same.iou == 1 && abs(same.pearson - 1) < 1e-9)
        #expect(MapOverlap([1, 1, 1], [0, 1, 2]).pearson == 0)  // a constant map correlates with nothing
    }

    @Test func shares() {
        let s = areaShares([Self.blob(3, 8), Self.blob(12, 8), [Float](repeating: 0.01, count: 256)])
        #expect(abs(s.reduce(0, +) - 1) < 1e-12)
        #expect(s[0] > 0.3 && s[1] > 0.3 && abs(s[0] - s[1]) < 0.1)
    }

    /// Two subjects that start apart and meet at evaluation 6 of 10: the timeline says so; two
    /// that stay apart never merge.
    @Test func timeline() {
        let a = (0..<10).map { e in Self.blob(e < 6 ? 3 : 8, 8) }, b = (0..<10).map { e in Self.blob(e < 6 ? 12 : 8.5, 8) }
        let merging = MergeTimeline(a: a, b: b)
        #expect(merging.mergedFrom == 6, "\(merging.overlaps.map(\.iou))")
        let apart = MergeTimeline(a: a.map { _ in Self.blob(3, 8) }, b: b.map { _ in Self.blob(12, 8) })
        #expect(apart.mergedFrom == nil)
    }
}
