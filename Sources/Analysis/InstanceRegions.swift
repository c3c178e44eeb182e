import Foundation

/// Regions for the merge remedy's `--regions auto`: one word's attention map (a class word such as
/// "person", from a run of the same seed that names the subjects by their class) split into
/// `count` instances, left to right, as normalised boxes (OMG's two-stage idea with Bounded
/// Attention's clustering reduced to what a 16×16 map supports; merge-remedies.md §6.3):
///
/// 1. the map, min–max normalised, thresholded at `threshold` (DAAM's 0.4);
/// 2. when that leaves `count` or more connected blobs of at least 2% of the map, the largest
///    `count` are the instances;
/// 3. else the pixels above the threshold are split by weighted k-means on their x coordinate
///    (subjects side by side share rows, not columns);
/// 4. each instance's box is the bounding box of its pixels, sorted by centre x; where two
///    neighbours' boxes overlap in x, both are cut at the midpoint of their weighted centres
///    (first-box-wins labelling would otherwise give the overlap to one of them silently).
/// When the map cannot be split (fewer than `count` columns lit) the result is nil.
public enum InstanceRegions {
    public struct Split: Sendable, Equatable {
        public let boxes: [[Float]]
        /// "blobs" or "k-means".
        public let method: String
    }

    public static func split(_ map: [Float], height h: Int, width w: Int, count: Int = 2, threshold: Float = 0.4) -> Split? {
        guard map.count == h * w, count >= 1, let lo = map.min(), let hi = map.max(), hi > lo else { return nil }
        let norm = map.map { ($0 - lo) / (hi - lo) }
        let lit = norm.map { $0 >= threshold }
        let blobs = components(lit, height: h, width: w).filter { Double($0.count) >= 0.02 * Double(h * w) }
        if blobs.count >= count {
            let chosen = blobs.sorted { $0.count > $1.count }.prefix(count)
            return Split(boxes: separated(Array(chosen), norm, height: h, width: w), method: "blobs")
        }
        // k-means on x, weighted by attention.
        let pixels = (0..<(h * w)).filter { lit[$0] }
        let xs = pixels.map { Double($0 % w) + 0.5 }, weights = pixels.map { Double(norm[$0]) }
        guard Set(pixels.map { $0 % w }).count >= count, let minX = xs.min(), let maxX = xs.max() else { return nil }
        var centres = (0..<count).map { minX + (maxX - minX) * (Double($0) + 0.5) / Double(count) }
        var assignment = [Int](repeating: 0, count: pixels.count)
        for _ in 0..<50 {
            for (i, x) in xs.enumerated() {
                assignment[i] = centres.indices.min { abs(centres[$0] - x) < abs(centres[$1] - x) }!
            }
            var moved = false
            for c in centres.indices {
                let members = assignment.indices.filter { assignment[$0] == c }
                let wsum = members.reduce(0) { $0 + weights[$1] }
                guard wsum > 0 else { continue }
                let next = members.reduce(0) { $0 + weights[$1] * xs[$1] } / wsum
                if abs(next - centres[c]) > 1e-9 { moved = true }
                centres[c] = next
            }
            if !moved { break }
        }
        let groups = centres.indices.map { c in pixels.indices.filter { assignment[$0] == c }.map { pixels[$0] } }
        guard groups.allSatisfy({ !$0.isEmpty }) else { return nil }
        return Split(boxes: separated(groups, norm, height: h, width: w), method: "k-means")
    }

    /// Boxes of the instances left to right, cut apart where they overlap in x.
    static func separated(_ instances: [[Int]], _ weight: [Float], height h: Int, width w: Int) -> [[Float]] {
        let centre = { (p: [Int]) -> Float in
            let ws = p.reduce(Float(0)) { $0 + weight[$1] }
            return p.reduce(Float(0)) { $0 + weight[$1] * (Float($1 % w) + 0.5) } / max(ws, .leastNormalMagnitude) / Float(w)
        }
        let ordered = instances.map { (box: box($0, height: h, width: w), centre: centre($0)) }.sorted { $0.centre < $1.centre }
        var boxes = ordered.map(\.box)
        for i in 1..<max(1, boxes.count) where boxes[i - 1][2] > boxes[i][0] {
            let cut = (ordered[i - 1].centre + ordered[i].centre) / 2
            boxes[i - 1][2] = min(boxes[i - 1][2], cut)
            boxes[i][0] = max(boxes[i][0], cut)
        }
        return boxes
    }

    /// 4-connected components of the lit pixels, as pixel index lists.
    static func components(_ lit: [Bool], height h: Int, width w: Int) -> [[Int]] {
        var label = [Int](repeating: -1, count: h * w)
        var out: [[Int]] = []
        for start in 0..<(h * w) where lit[start] && label[start] < 0 {
            var stack = [start], members: [Int] = []
            label[start] = out.count
            while let p = stack.popLast() {
                members.append(p)
                let (y, x) = (p / w, p % w)
                for (ny, nx) in [(y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)] where ny >= 0 && ny < h && nx >= 0 && nx < w {
                    let q = ny * w + nx
                    if lit[q] && label[q] < 0 { label[q] = out.count; stack.append(q) }
                }
            }
            out.append(members)
        }
        return out
    }

    /// The pixels' bounding box, normalised (x1, y1 exclusive).
    static func box(_ pixels: [Int], height h: Int, width w: Int) -> [Float] {
        let xs = pixels.map { $0 % w }, ys = pixels.map { $0 / w }
        return [Float(xs.min()!) / Float(w), Float(ys.min()!) / Float(h), Float(xs.max()! + 1) / Float(w), Float(ys.max()! + 1) / Float(h)]
    }
}
