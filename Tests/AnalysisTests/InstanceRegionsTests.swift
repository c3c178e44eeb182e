import Foundation
import Testing
@testable import Analysis

/// `--regions auto`: a class word's map split into instances, on synthetic maps.
@Suite("Instance regions from one word's map")
struct InstanceRegionsTests {
    /// A w × h map with Gaussian blobs at (cx, cy) (pixels), heights `peaks`.
    static func blobs(_ centres: [(Double, Double, Float)], w: Int = 16, h: Int = 16, sigma: Double = 1.5) -> [Float] {
        (0..<(h * w)).map { i in
            let (x, y) = (Double(i % w) + 0.5, Double(i / w) + 0.5)
            var v: Float = 0
            for (cx, cy, peak) in centres {
                let d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy)
                v += peak * Float(exp(-d2 / (2 * sigma * sigma)))
            }
            return v
        }
    }

    @Test("two blobs: each its own box, left to right, around its centre")
    func twoBlobs() throws {
        let split = try #require(InstanceRegions.split(Self.blobs([(12, 8, 1), (4, 6, 0.9)]), height: 16, width: 16))
        #expect(split.method == "blobs")
        let (a, b) = (split.boxes[0], split.boxes[1])
        #expect(a[0] < 4 / 16 && a[2] > 4 / 16 && a[1] < 6 / 16 && a[3] > 6 / 16)     // the left blob first
        #expect(b[0] < 12 / 16 && b[2] > 12 / 16 && b[1] < 8 / 16 && b[3] > 8 / 16)
        #expect(a[2] <= b[0])
    }

    @Test("one merged blob is split by k-means on x into two boxes that do not overlap")
    func oneBlob() throws {
        // Two close peaks that threshold into one component.
        let map = Self.blobs([(6, 8, 1), (10, 8, 1)], sigma: 2.2)
        let split = try #require(InstanceRegions.split(map, height: 16, width: 16))
        #expect(split.method == "k-means")
        #expect(split.boxes.count == 2 && split.boxes[0][2] <= split.boxes[1][0])
        #expect(split.boxes[0][0] < 6 / 16 && split.boxes[1][2] > 10 / 16)
    }

    @Test("non-square maps; a flat or single-column map cannot be split")
    func edges() throws {
        let wide = Self.blobs([(4, 4, 1), (20, 4, 1)], w: 24, h: 8)
        let split = try #require(InstanceRegions.split(wide, height: 8, width: 24))
        #expect(split.boxes[0][2] <= 8 / 24 + 1e-6 && split.boxes[1][0] >= 16 / 24 - 1e-6)
        #expect(InstanceRegions.split([Float](repeating: 1, count: 64), height: 8, width: 8) == nil)
        var column = [Float](repeating: 0, count: 64)
        for y in 0..<8 { column[y * 8 + 3] = 1 }
        #expect(InstanceRegions.split(column, height: 8, width: 8) == nil)
        #expect(InstanceRegions.split([1, 2], height: 2, width: 2) == nil)  // wrong size
    }
}
