import Foundation
import Imaging

/// A colour map from [0, 1] to RGB bytes, exactly as matplotlib's `cmap(x, bytes=True)`:
/// a 256-entry lookup table, x picks entry ⌊256 · x⌋ (x = 1 the last; below 0 the first, above 1
/// the last, NaN the first — matplotlib would draw NaN transparent), and an entry's bytes are its
/// [0, 1] channels × 255 truncated, as numpy's cast to uint8 does.
///
/// Call it as a function: `ColorMap.viridis(0.5)` → (32, 144, 140).
public struct ColorMap: Sendable {
    public let name: String
    /// The lookup table, RGB in [0, 1], as matplotlib holds it.
    public let table: [(Double, Double, Double)]
    /// `table` as bytes, [entries, 3].
    let bytes: [UInt8]

    /// A map from its table (at least one entry; an empty table is taken as black).
    public init(name: String, table: [(Double, Double, Double)]) {
        self.name = name
        self.table = table.isEmpty ? [(0, 0, 0)] : table
        // Truncation, not rounding: numpy's (lut * 255).astype(uint8), so the bytes are matplotlib's.
        func byte(_ v: Double) -> UInt8 { UInt8(min(max(v, 0), 1) * 255) }
        bytes = self.table.flatMap { [byte($0.0), byte($0.1), byte($0.2)] }  // [entries, 3]
    }

    /// The table entry `x` picks.
    public func index(_ x: Float) -> Int {
        let n = table.count
        guard !x.isNaN else { return 0 }
        let scaled = x * Float(n)  // exact for n = 256
        if scaled < 0 { return 0 }
        if scaled >= Float(n) { return n - 1 }  // x = 1 included
        return Int(scaled)
    }

    /// The colour of `x` as bytes.
    public func callAsFunction(_ x: Float) -> (UInt8, UInt8, UInt8) {
        let i = 3 * index(x)
        return (bytes[i], bytes[i + 1], bytes[i + 2])
    }

    /// A map of values in [0, 1] (row-major [height, width]) as an image.
    public func image(values: [Float], width: Int, height: Int) -> RGBImage {
        let n = max(width, 0) * max(height, 0)
        var px = [UInt8](repeating: 0, count: n * 3)  // [H, W, 3]
        for i in 0..<min(n, values.count) {
            let (r, g, b) = self(values[i])
            (px[3 * i], px[3 * i + 1], px[3 * i + 2]) = (r, g, b)
        }
        return RGBImage(width: max(width, 0), height: max(height, 0), pixels: px)
    }

    /// A heat map as an image.
    public func image(_ heat: WordHeatMap) -> RGBImage {
        image(values: heat.values, width: heat.width, height: heat.height)
    }

    /// matplotlib's `viridis` (perceptually uniform, readable in grey and by most colour-blind
    /// readers); the table is in ColorMapTables.swift.
    public static let viridis = ColorMap(name: "viridis", table: viridisTable)

    /// matplotlib's `jet`, the map DAAM draws with: piecewise linear per channel through
    /// matplotlib's points, sampled into 256 entries as its `LinearSegmentedColormap` does.
    public static let jet = ColorMap(name: "jet", table: segmented(red: [(0, 0, 0), (0.35, 0, 0), (0.66, 1, 1), (0.89, 1, 1), (1, 0.5, 0.5)],
                                                                  green: [(0, 0, 0), (0.125, 0, 0), (0.375, 1, 1), (0.64, 1, 1), (0.91, 0, 0), (1, 0, 0)],
                                                                  blue: [(0, 0.5, 0.5), (0.11, 1, 1), (0.34, 1, 1), (0.65, 0, 0), (1, 0, 0)]))

    /// A table from matplotlib's segment data: per channel (x, value left of x, value right of x),
    /// x from 0 to 1 increasing. Entry i is the channel at x = i / (n − 1), linear between points;
    /// the arithmetic follows matplotlib's `_create_lookup_table` step for step so the bytes match.
    static func segmented(red: [(Double, Double, Double)], green: [(Double, Double, Double)],
                          blue: [(Double, Double, Double)], entries n: Int = 256) -> [(Double, Double, Double)] {
        func channel(_ points: [(x: Double, below: Double, above: Double)]) -> [Double] {
            guard points.count >= 2 else { return [Double](repeating: points.first?.above ?? 0, count: n) }
            let xs = points.map { $0.x * Double(n - 1) }
            let step = 1.0 / Double(n - 1)  // numpy's linspace(0, 1, n): i · step
            var lut = [Double](repeating: 0, count: n)
            lut[0] = points[0].above
            lut[n - 1] = points[points.count - 1].below
            for i in 1..<(n - 1) {
                let xi = Double(n - 1) * (Double(i) * step)
                var k = 1  // numpy's searchsorted (left): the first point at or past xi
                while k < xs.count - 1 && xs[k] < xi { k += 1 }
                let distance = (xi - xs[k - 1]) / (xs[k] - xs[k - 1])
                lut[i] = distance * (points[k].below - points[k - 1].above) + points[k - 1].above
            }
            return lut.map { min(max($0, 0), 1) }
        }
        let (r, g, b) = (channel(red.map { ($0.0, $0.1, $0.2) }), channel(green.map { ($0.0, $0.1, $0.2) }),
                         channel(blue.map { ($0.0, $0.1, $0.2) }))
        return (0..<n).map { (r[$0], g[$0], b[$0]) }
    }
}

extension HeatMaps {
    /// A heat map over an image, DAAM's `plot_overlay`: the image drawn with alpha 1 − h over the
    /// heat map's colours, per channel
    ///
    ///     out = (1 − s·h) · image + s·h · colour(h)
    ///
    /// with `strength` s = 1 as DAAM (s < 1 keeps more of the image where attention is high). Where
    /// h = 0 the image is unchanged; where h = 1 (s = 1) only the colour remains. Computed on the
    /// bytes, rounded to nearest. The colours are those of h in [0, 1] (DAAM's color_normalize=False;
    /// with per-word maps, already spanning [0, 1], the same as its default).
    ///
    /// A heat map of another size than the image is resized to it bicubically first (values clamped
    /// to [0, 1]); an empty one leaves the image as it is.
    public static func blend(image: RGBImage, heat: WordHeatMap, colourMap: ColorMap = .jet, strength: Float = 1) -> RGBImage {
        blend(image: image, heat: heat.values, width: heat.width, height: heat.height, colourMap: colourMap, strength: strength)
    }

    /// The same for a raw map, row-major [height, width] in [0, 1].
    public static func blend(image: RGBImage, heat values: [Float], width: Int, height: Int,
                             colourMap: ColorMap = .jet, strength: Float = 1) -> RGBImage {
        let n = image.width * image.height
        guard n > 0, image.pixels.count == n * 3, width > 0, height > 0, values.count == width * height else { return image }
        let heat = width == image.width && height == image.height ? values
            : bicubicResizeUnchecked(values, width: width, height: height, toWidth: image.width, toHeight: image.height)  // [H·W]
        let s = strength.isNaN ? 1 : min(max(strength, 0), 1)
        var px = image.pixels  // [H, W, 3]
        for i in 0..<n {
            let h = heat[i].isNaN ? 0 : min(max(heat[i], 0), 1)
            let a = s * h
            guard a > 0 else { continue }  // no attention: the image's own colour
            let (r, g, b) = colourMap(h)
            for (c, colour) in [r, g, b].enumerated() {
                let mixed = (1 - a) * Float(px[3 * i + c]) + a * Float(colour)
                px[3 * i + c] = UInt8(min(max(mixed.rounded(), 0), 255))
            }
        }
        return RGBImage(width: image.width, height: image.height, pixels: px)
    }
}
