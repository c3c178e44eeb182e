import Foundation
import Imaging

/// A value in [0, 1] → an RGB colour.
public typealias ColourScale = (Float) -> (UInt8, UInt8, UInt8)

/// A map of values in [0, 1] ([h·w], row-major) as an image through a colour scale.
func colourised(_ values: [Float], width: Int, height: Int, scale: ColourScale) -> RGBImage {
    var px = [UInt8](repeating: 0, count: width * height * 3)  // [H, W, 3]
    for i in 0..<(width * height) {
        let (r, g, b) = scale(values[i])
        px[3 * i] = r; px[3 * i + 1] = g; px[3 * i + 2] = b
    }
    return RGBImage(width: width, height: height, pixels: px)
}

/// One word's heat map over the final image: the overlay, a colour bar and the word with its
/// A1111 weight.
public struct HeatMapFigure: Figure {
    public let label: String
    public let weight: Double
    public let overlay: RGBImage
    public let scale: ColourScale
    public let panel: Double
    public let note: String
    /// Laid out in grids by the page; the image keeps its exact size.
    public var margin: Double { 0 }
    public var width: Double { panel + 44 }
    public var height: Double { 26 + panel * Double(overlay.height) / Double(max(1, overlay.width)) + 20 }

    /// `overlay`: the image blended with the map at image size.
    public init(label: String, weight: Double, overlay: RGBImage, scale: @escaping ColourScale, panel: Double, note: String = "") {
        (self.label, self.weight, self.overlay, self.scale, self.panel, self.note) = (label, weight, overlay, scale, panel, note)
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        let ph = panel * Double(overlay.height) / Double(max(1, overlay.width))
        let title = weight == 1 ? label : "\(label)  (weight \(String(format: "%.2f", weight)))"
        c.text(title, x: x, y: y + 2, font: Font(size: 14, bold: true), maxWidth: panel, oneLine: true)
        c.image(overlay, x: x, y: y + 26, w: panel, h: ph, smooth: true)
        // Colour bar: 1 at the top.
        let bar = colourised((0..<64).map { 1 - Float($0) / 63 }, width: 1, height: 64, scale: scale)
        c.image(bar, x: x + panel + 8, y: y + 26, w: 12, h: ph, smooth: true)
        c.strokeRect(x: x + panel + 8, y: y + 26, w: 12, h: ph, .rule)
        c.text("1", x: x + panel + 23, y: y + 22, font: Font(size: 10), colour: .muted)
        c.text("0", x: x + panel + 23, y: y + 26 + ph - 12, font: Font(size: 10), colour: .muted)
        if !note.isEmpty { c.text(note, x: x, y: y + 28 + ph, font: Font(size: 10), colour: .muted, maxWidth: panel + 40, oneLine: true) }
    }
}

/// Each word's map at every evaluation, one row per word: where its attention goes as the image
/// forms. Each row is normalised over its own evaluations, so a word that fades shows fading.
public struct AttentionStrips: Figure {
    public let labels: [String]
    /// maps[word][k] = [h·w] for the shown evaluations
    public let maps: [[[Float]]]
    public let mapWidth: Int, mapHeight: Int
    public let columnLabels: [String]
    public let scale: ColourScale
    public let thumb: Double
    static let labelWidth = 130.0

    public init(labels: [String], maps: [[[Float]]], mapWidth: Int, mapHeight: Int, columnLabels: [String], scale: @escaping ColourScale, thumb: Double = 44) {
        (self.labels, self.maps, self.mapWidth, self.mapHeight, self.columnLabels, self.scale, self.thumb) =
            (labels, maps, mapWidth, mapHeight, columnLabels, scale, thumb)
    }

    var th: Double { thumb * Double(mapHeight) / Double(max(1, mapWidth)) }
    public var width: Double { max(560, Self.labelWidth + Double(columnLabels.count) * (thumb + 2) + 12) }
    public var height: Double { 56 + Double(labels.count) * (th + 4) + 8 }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text("Attention over time — each word's map at every evaluation", x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        let gx = x + Self.labelWidth
        for (k, l) in columnLabels.enumerated() where k % max(1, columnLabels.count / 10) == 0 || k == columnLabels.count - 1 {
            c.text(l, x: gx + Double(k) * (thumb + 2) + thumb / 2, y: y + 30, font: Font(size: 10), colour: .muted, align: .centre)
        }
        for (w, label) in labels.enumerated() {
            let ry = y + 50 + Double(w) * (th + 4)
            let s = c.measure(label, font: .small, maxWidth: Self.labelWidth - 10, oneLine: true)
            c.text(label, x: gx - 8 - s.width, y: ry + (th - s.height) / 2, font: .small, maxWidth: Self.labelWidth - 10, oneLine: true)
            let all = maps[w].flatMap { $0 }
            let lo = all.min() ?? 0, hi = all.max() ?? 1
            for (k, m) in maps[w].enumerated() {
                let norm = m.map { hi > lo ? ($0 - lo) / (hi - lo) : 0 }
                c.image(colourised(norm, width: mapWidth, height: mapHeight, scale: scale), x: gx + Double(k) * (thumb + 2), y: ry, w: thumb, h: th, smooth: true)
            }
        }
    }
}
