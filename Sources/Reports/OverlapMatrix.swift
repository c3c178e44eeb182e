import Analysis
import Foundation

/// For each pair of words: Pearson correlation (lower left) and IoU of their τ-regions (upper
/// right) of their summed DAAM maps, in one labelled matrix; high values in both say two words
/// landed on one region.
public struct OverlapMatrix: Figure {
    public let labels: [String]
    /// pearson[i][j], iou[i][j]
    public let pearson: [[Double]], iou: [[Double]]
    public let threshold: Float
    /// Both triangles hold one symmetric measure (a cosine matrix), drawn blue–white–red.
    public var symmetric = false
    public var title = "Where words overlap"
    public var footnote: String?
    /// The grid's width, but never narrower than the title (about 9 px a character at the heading
    /// size) or than 440 px, where the footnote fits in its three lines.
    public var width: Double { max(Self.labelWidth + Double(labels.count) * cell + 40, 9 * Double(title.count), 440) }
    public var height: Double { 36 + topLabels + Double(labels.count) * cell + 56 }
    var cell: Double { labels.count > 12 ? 34 : 46 }
    static let labelWidth = 150.0
    /// Room for the column labels turned 60°: as tall as the longest (at most 16 characters,
    /// about 7 px each at the small size) stands, so short words leave no empty band.
    var topLabels: Double { 24 + 7 * 0.87 * Double(min(16, labels.map(\.count).max() ?? 0)) }

    /// From each word's summed map (any common size).
    public init(labels: [String], maps: [[Float]], threshold: Float = 0.4) {
        self.labels = labels
        self.threshold = threshold
        let n = maps.count
        var p = [[Double]](repeating: [Double](repeating: 1, count: n), count: n), u = p
        for i in 0..<n {
            for j in 0..<n where j != i {
                let o = MapOverlap(maps[i], maps[j], threshold: threshold)
                p[i][j] = o.pearson
                u[i][j] = o.iou
            }
        }
        (pearson, iou) = (p, u)
    }

    /// A cosine matrix (−1…1), e.g. between embedding vectors.
    public init(labels: [String], cosine: [[Float]], title: String, footnote: String) {
        self.labels = labels
        threshold = 0
        pearson = cosine.map { $0.map(Double.init) }
        iou = pearson
        symmetric = true
        self.title = title
        self.footnote = footnote
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text(title, x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        let gx = x + Self.labelWidth, gy = y + 36 + topLabels
        for (i, label) in labels.enumerated() {
            // Row labels, right-aligned and cut to fit; column labels turned 60°.
            let s = c.measure(label, font: .small, maxWidth: Self.labelWidth - 10, oneLine: true)
            c.text(label, x: gx - 8 - s.width, y: gy + Double(i) * cell + (cell - s.height) / 2, font: .small, maxWidth: Self.labelWidth - 10, oneLine: true)
            let short = label.count > 16 ? String(label.prefix(15)) + "…" : label
            c.rotatedText(short, x: gx + Double(i) * cell + cell / 2 - 4, y: gy - 6, angle: Double.pi / 3, font: .small)
        }
        for i in labels.indices {
            for j in labels.indices {
                let cx = gx + Double(j) * cell, cy = gy + Double(i) * cell
                if i == j {
                    c.fill(x: cx, y: cy, w: cell, h: cell, .panel)
                    continue
                }
                let v = i > j ? pearson[i][j] : iou[i][j]
                let colour = i > j || symmetric ? Self.diverging(v) : Self.sequential(v)
                c.fill(x: cx, y: cy, w: cell, h: cell, colour)
                let dark = (0.299 * colour.r + 0.587 * colour.g + 0.114 * colour.b) < 0.55
                c.text(String(format: "%.2f", v), x: cx + cell / 2, y: cy + cell / 2 - 7, font: Font(size: cell > 40 ? 11 : 9),
                       colour: dark ? .white : .ink, align: .centre)
            }
        }
        let n = Double(labels.count)
        c.strokeRect(x: gx, y: gy, w: n * cell, h: n * cell, .rule)
        c.text(footnote ?? ("lower left: Pearson correlation of the two maps (−1…1) · upper right: IoU of their regions above τ = \(String(format: "%.1f", threshold)) of each map's range (0…1); both high → one region"),
               x: x, y: gy + n * cell + 10, font: .small, colour: .muted, maxWidth: width - 10)
    }

    /// Blue (−1) – white (0) – red (+1).
    static func diverging(_ v: Double) -> Colour {
        let t = max(-1, min(1, v))
        let (a, b) = t < 0 ? (Colour(hex: 0x2166AC), -t) : (Colour(hex: 0xB2182B), t)
        return Colour(1 + (a.r - 1) * b, 1 + (a.g - 1) * b, 1 + (a.b - 1) * b)
    }

    /// White (0) – deep purple (1).
    static func sequential(_ v: Double) -> Colour {
        let t = max(0, min(1, v)), a = Colour(hex: 0x54278F)
        return Colour(1 + (a.r - 1) * t, 1 + (a.g - 1) * t, 1 + (a.b - 1) * t)
    }
}
