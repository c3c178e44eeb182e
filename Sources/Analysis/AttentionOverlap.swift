import Foundation

/// How two words' attention maps relate at one evaluation: the measures a merge verdict rests
/// on. Maps are any non-negative [h·w] arrays (a word's DAAM map at one evaluation, or summed).
public struct MapOverlap: Sendable, Equatable {
    /// Pearson correlation of the two maps over the pixels (0 when either is constant).
    public let pearson: Double
    /// Intersection over union of their regions: pixels at or above `threshold` of each map's
    /// min–max range (DAAM's τ = 0.4).
    public let iou: Double

    public init(_ a: [Float], _ b: [Float], threshold: Float = 0.4) {
        precondition(a.count == b.count, "maps of different sizes")
        pearson = Self.pearson(a, b)
        let ra = Self.region(a, threshold), rb = Self.region(b, threshold)
        let inter = zip(ra, rb).filter { $0 && $1 }.count, union = zip(ra, rb).filter { $0 || $1 }.count
        iou = union == 0 ? 0 : Double(inter) / Double(union)
    }

    static func pearson(_ a: [Float], _ b: [Float]) -> Double {
        let n = Double(a.count)
        guard n > 1 else { return 0 }
        let ma = a.reduce(0.0) { $0 + Double($1) } / n, mb = b.reduce(0.0) { $0 + Double($1) } / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for (x, y) in zip(a, b) {
            let (da, db) = (Double(x) - ma, Double(y) - mb)
            sab += da * db; saa += da * da; sbb += db * db
        }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : 0
    }

    /// Pixels at or above `threshold` of the map's min–max range (none for a constant map).
    static func region(_ m: [Float], _ threshold: Float) -> [Bool] {
        guard let lo = m.min(), let hi = m.max(), hi > lo else { return Array(repeating: false, count: m.count) }
        let cut = lo + threshold * (hi - lo)
        return m.map { $0 >= cut }
    }
}

/// The share of the image each word wins: for every pixel, the word with the most attention there
/// (maps [words][h·w], all the same size); shares sum to 1.
public func areaShares(_ maps: [[Float]]) -> [Double] {
    guard let first = maps.first, !first.isEmpty else { return maps.map { _ in 0 } }
    var wins = [Int](repeating: 0, count: maps.count)
    for p in first.indices {
        var best = 0
        for w in maps.indices where maps[w][p] > maps[best][p] { best = w }
        wins[best] += 1
    }
    return wins.map { Double($0) / Double(first.count) }
}

/// Two subjects over the evaluations of a run: their overlap at each one, and from which
/// evaluation on they compete for one region (IoU and correlation both high to the end).
public struct MergeTimeline: Sendable {
    public let overlaps: [MapOverlap]
    /// The first evaluation from which every later one has IoU ≥ `iouCut` and Pearson ≥
    /// `pearsonCut`; nil when the maps stay apart at the end.
    public let mergedFrom: Int?

    public init(a: [[Float]], b: [[Float]], threshold: Float = 0.4, iouCut: Double = 0.5, pearsonCut: Double = 0.5) {
        overlaps = zip(a, b).map { MapOverlap($0, $1, threshold: threshold) }
        var from: Int?
        for e in overlaps.indices.reversed() {
            guard overlaps[e].iou >= iouCut && overlaps[e].pearson >= pearsonCut else { break }
            from = e
        }
        mergedFrom = from
    }
}
