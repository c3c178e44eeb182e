import Analysis
import Foundation

/// How the upsampled maps are scaled to [0, 1].
public enum HeatMapNormalisation: Sendable {
    /// Each word's map on its own: (m − min) / (max − min). Shapes compare; strengths do not.
    case perWord
    /// One min and max over all the words' maps, so a word that drew little attention stays dim.
    case global
}

/// One word's DAAM heat map at image size.
public struct WordHeatMap: Sendable {
    /// The word ("witch"), or an embedding's trigger.
    public let label: String
    /// Its conditioning positions (the sub-tokens averaged into the map).
    public let positions: [Int]
    public let width: Int, height: Int
    /// Row-major [height, width], in [0, 1].
    public let values: [Float]

    public init(label: String, positions: [Int], width: Int, height: Int, values: [Float]) {
        (self.label, self.positions, self.width, self.height, self.values) = (label, positions, width, height, values)
    }

    /// The value at pixel (x, y), or nil outside the map.
    public subscript(x: Int, y: Int) -> Float? {
        guard x >= 0, x < width, y >= 0, y < height, values.count == width * height else { return nil }
        return values[y * width + x]
    }
}

/// DAAM's display recipe (Tang et al., "What the DAAM"; castorini/daam's `expand_image`) on a trace's
/// per-word cross-attention maps (docs/TRACE.md):
///
/// 1. a word's map is the mean of its sub-tokens' maps (TraceWordMaps does this), summed over the
///    chosen evaluations (all by default);
/// 2. upsampled to image size with `bicubicResize` (PyTorch's bicubic, align_corners=False);
/// 3. clamped at 0: the cubic kernel undershoots next to hot spots, and attention is never negative
///    (non-finite values, from a diverged run, become 0 too);
/// 4. normalised (`HeatMapNormalisation`). A constant map (max == min, e.g. all zeros) becomes all
///    zeros rather than 0/0.
///
/// The functions do not throw: an evaluation window is clipped to the evaluations recorded (an
/// empty one gives all-zero maps), a size ≤ 0 gives empty maps, and in the raw-map forms a map that
/// does not hold latentWidth · latentHeight values counts as zeros.
public enum HeatMaps {
    /// Every word's heat map at `imageWidth` × `imageHeight`, in the trace's word order.
    public static func wordHeatMaps(_ maps: TraceWordMaps, imageWidth: Int, imageHeight: Int,
                                    evaluations: Range<Int>? = nil,
                                    normalisation: HeatMapNormalisation) -> [WordHeatMap] {
        wordHeatMaps(words: maps.words, maps: maps.maps, latentWidth: maps.width, latentHeight: maps.height,
                     imageWidth: imageWidth, imageHeight: imageHeight, evaluations: evaluations, normalisation: normalisation)
    }

    /// The same from raw maps: `maps[word][evaluation]` = [latentHeight · latentWidth], row-major.
    public static func wordHeatMaps(words: [(label: String, positions: [Int])], maps: [[[Float]]],
                                    latentWidth: Int, latentHeight: Int, imageWidth: Int, imageHeight: Int,
                                    evaluations: Range<Int>? = nil,
                                    normalisation: HeatMapNormalisation) -> [WordHeatMap] {
        let up = upsampledWordMaps(maps, latentWidth: latentWidth, latentHeight: latentHeight,
                                   imageWidth: imageWidth, imageHeight: imageHeight, evaluations: evaluations)
        let normal = normalised(up, normalisation)
        let (w, h) = (max(imageWidth, 0), max(imageHeight, 0))
        return normal.indices.map { i in
            WordHeatMap(label: i < words.count ? words[i].label : "", positions: i < words.count ? words[i].positions : [],
                        width: w, height: h, values: normal[i])
        }
    }

    /// Steps 1–3 without the normalisation: per word, the maps summed over the window, upsampled and
    /// clamped at 0; [imageHeight · imageWidth] each, in attention units (a sum of probabilities).
    public static func upsampledWordMaps(_ maps: [[[Float]]], latentWidth: Int, latentHeight: Int,
                                         imageWidth: Int, imageHeight: Int, evaluations: Range<Int>? = nil) -> [[Float]] {
        maps.map { perEvaluation in
            let all = 0..<perEvaluation.count
            let window = (evaluations ?? all).clamped(to: all)
            let summed = sum(window.map { perEvaluation[$0] }, count: max(latentWidth, 0) * max(latentHeight, 0))  // [h·w]
            return upsampledClamped(summed, latentWidth: latentWidth, latentHeight: latentHeight,
                                    width: imageWidth, height: imageHeight)  // [H·W]
        }
    }

    /// One word's map at every evaluation, for an "attention over time" strip: each evaluation's map
    /// upsampled to `width` × `height` (usually small) and clamped at 0, then min–max normalised with
    /// one min and max over all of this word's evaluations, so a word whose attention fades dims.
    /// Empty when `word` is not a word of `maps`.
    public static func evaluationHeatMaps(_ maps: TraceWordMaps, word: Int, width: Int, height: Int) -> [WordHeatMap] {
        guard maps.words.indices.contains(word), maps.maps.indices.contains(word) else { return [] }
        let up = maps.maps[word].map {
            upsampledClamped($0, latentWidth: maps.width, latentHeight: maps.height, width: width, height: height)
        }  // [E][H·W]
        let (lo, hi) = range(up)
        return up.map {
            WordHeatMap(label: maps.words[word].label, positions: maps.words[word].positions,
                        width: max(width, 0), height: max(height, 0), values: minMax($0, lo, hi))
        }
    }

    /// Each word's share of the attention at each evaluation, `shares[word][evaluation]`: the sum of
    /// the word's map over the latent pixels divided by the sum over all the words' maps. Only
    /// content words count (TraceWordMaps leaves out start, end and padding, which take most of the
    /// attention), so at each evaluation the shares sum to 1 — or are all 0 where every map is 0.
    /// A word's map is the mean of its sub-tokens', so a word split into three tokens is not
    /// counted three times.
    public static func attentionShares(_ maps: TraceWordMaps) -> [[Double]] {
        attentionShares(maps.maps)
    }

    /// The same from raw maps, `maps[word][evaluation]` = [h·w].
    public static func attentionShares(_ maps: [[[Float]]]) -> [[Double]] {
        let evaluations = maps.map(\.count).min() ?? 0
        let sums = maps.map { word in (0..<evaluations).map { e in word[e].reduce(0.0) { $0 + Double($1) } } }  // [words][E]
        let totals = (0..<evaluations).map { e in sums.reduce(0.0) { $0 + $1[e] } }  // [E]
        return sums.map { word in (0..<evaluations).map { e in totals[e] > 0 ? word[e] / totals[e] : 0 } }
    }

    /// Min–max normalisation of maps ≥ 0 (step 4): per map, or with one range over all of them.
    public static func normalised(_ maps: [[Float]], _ normalisation: HeatMapNormalisation) -> [[Float]] {
        switch normalisation {
        case .perWord:
            return maps.map { let (lo, hi) = range([$0]); return minMax($0, lo, hi) }
        case .global:
            let (lo, hi) = range(maps)
            return maps.map { minMax($0, lo, hi) }
        }
    }

    // MARK: - Steps

    /// Element-wise sum of planes of `count` values (a plane of another size counts as zeros).
    static func sum(_ planes: [[Float]], count: Int) -> [Float] {
        var acc = [Double](repeating: 0, count: count)  // [h·w]
        for p in planes where p.count == count {
            for i in 0..<count { acc[i] += Double(p[i]) }
        }
        return acc.map { Float($0) }
    }

    /// Bicubic to width × height, then clamped at 0 (NaN and ±∞ to 0). Bad sizes give zeros or [].
    static func upsampledClamped(_ plane: [Float], latentWidth: Int, latentHeight: Int, width: Int, height: Int) -> [Float] {
        guard width > 0, height > 0 else { return [] }
        guard latentWidth > 0, latentHeight > 0, plane.count == latentWidth * latentHeight else {
            return [Float](repeating: 0, count: width * height)
        }
        let up = bicubicResizeUnchecked(plane, width: latentWidth, height: latentHeight, toWidth: width, toHeight: height)  // [H·W]
        return up.map { $0.isFinite && $0 > 0 ? $0 : 0 }
    }

    /// The smallest and largest value over all the planes (0, 0 when there are none).
    static func range(_ planes: [[Float]]) -> (Float, Float) {
        var lo = Float.infinity, hi = -Float.infinity
        for p in planes { for v in p { lo = min(lo, v); hi = max(hi, v) } }
        return lo <= hi ? (lo, hi) : (0, 0)
    }

    /// (v − lo) / (hi − lo); all zeros when hi == lo (a constant map carries no location).
    static func minMax(_ plane: [Float], _ lo: Float, _ hi: Float) -> [Float] {
        guard hi > lo else { return [Float](repeating: 0, count: plane.count) }
        let span = hi - lo
        return plane.map { ($0 - lo) / span }
    }
}
