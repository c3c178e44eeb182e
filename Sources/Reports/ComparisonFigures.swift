import Analysis
import Foundation
import Imaging

/// A compared prompt as Pango markup: added words bold green, removed ones struck red.
func diffMarkup(_ words: [(text: String, change: Comparison.Change)], dark: Bool) -> String {
    Comparison.pieces(words).map { piece in
        let text = HTMLPage.escape(piece.text)
        let marked: String
        switch piece.change {
        case .same: marked = text
        case .added: marked = "<span foreground=\"\(dark ? "#56D364" : "#1A7F37")\" weight=\"bold\">\(text)</span>"
        case .removed: marked = "<span foreground=\"\(dark ? "#FF7B72" : "#CF222E")\" strikethrough=\"true\">\(text)</span>"
        }
        return (piece.space ? " " : "") + marked
    }.joined()
}

/// Runs side by side: a row per prompt or remedy stage (its label and words above it, changes
/// against the first row marked), a column per seed. Dark, it is a frame of the comparison's
/// animation; light, the final images.
struct ComparisonGrid: Figure {
    struct Cell { let caption: String; let image: RGBImage }
    struct Row {
        /// "1", or what the row ran ("before", "remedy: + cross-attention").
        let label: String
        let markup: String
        let cells: [Cell?]
    }

    let title: String
    let rows: [Row]
    /// Side of one picture, in pixels.
    let panel: Double
    let smooth: Bool
    let dark: Bool
    /// A GIF frame is its own dark panel to the edge.
    var margin: Double { dark ? 0 : 12 }
    static let pad = 10.0, header = 36.0, rowTitle = 36.0, caption = 18.0

    var columns: Int { rows.map(\.cells.count).max() ?? 1 }
    var aspect: Double {
        let img = rows.lazy.flatMap(\.cells).compactMap { $0?.image }.first
        return Double(img?.height ?? 1) / Double(max(1, img?.width ?? 1))
    }
    /// One seed: the rows side by side (a column each, its words above it), so that prompts that
    /// differ in one phrase are compared at a glance instead of down a tall page.
    var sideBySide: Bool { columns == 1 && rows.count > 1 }
    static let columnTitle = 70.0
    var width: Double {
        sideBySide ? max(380, Self.pad + Double(rows.count) * (panel + Self.pad)) : max(380, Self.pad + Double(columns) * (panel + Self.pad))
    }
    var height: Double {
        sideBySide ? Self.header + Self.columnTitle + Self.caption + panel * aspect + 2 * Self.pad
            : Self.header + Double(rows.count) * (Self.rowTitle + Self.caption + panel * aspect + Self.pad) + Self.pad
    }

    func draw(_ c: Canvas, x: Double, y: Double) throws {
        let ink = dark ? Colour(hex: 0xF0F3F6) : Colour.ink, dim = dark ? Colour(hex: 0x9DA7B3) : Colour.muted
        if dark { c.fill(x: x, y: y, w: width, h: height, Colour(hex: 0x161B22)) }
        c.text(title, x: x + Self.pad, y: y + 8, font: Font(size: 15, bold: true), colour: ink, maxWidth: width - 2 * Self.pad, oneLine: true)
        let ph = panel * aspect
        if sideBySide {
            for (k, row) in rows.enumerated() {
                let cx = x + Self.pad + Double(k) * (panel + Self.pad), top = y + Self.header
                c.text("<b>\(HTMLPage.escape(row.label))</b>  " + row.markup, x: cx, y: top, font: Font(size: 12), colour: ink,
                       maxWidth: panel, maxLines: 4, markup: true)
                guard let cell = row.cells.first ?? nil else { continue }
                c.text(cell.caption, x: cx, y: top + Self.columnTitle, font: .small, colour: dim, maxWidth: panel, oneLine: true)
                c.image(cell.image, x: cx, y: top + Self.columnTitle + Self.caption, w: panel, h: ph, smooth: smooth)
            }
            return
        }
        var ry = y + Self.header
        for row in rows {
            c.text("<b>\(HTMLPage.escape(row.label))</b>  " + row.markup, x: x + Self.pad, y: ry, font: Font(size: 12.5), colour: ink,
                   maxWidth: width - 2 * Self.pad, maxLines: 2, markup: true)
            let top = ry + Self.rowTitle
            for (k, cell) in row.cells.enumerated() {
                let cx = x + Self.pad + Double(k) * (panel + Self.pad)
                guard let cell else {
                    c.fill(x: cx, y: top + Self.caption, w: panel, h: ph, dark ? Colour(hex: 0x21262D) : .panel)
                    c.text("no run", x: cx + panel / 2, y: top + Self.caption + ph / 2 - 8, font: .small, colour: dim, align: .centre)
                    continue
                }
                c.text(cell.caption, x: cx, y: top, font: .small, colour: dim, maxWidth: panel, oneLine: true)
                c.image(cell.image, x: cx, y: top + Self.caption, w: panel, h: ph, smooth: smooth)
            }
            ry = top + Self.caption + ph + Self.pad
        }
    }
}

/// The compared prompts as chips, each later one against the first (green: added; red, struck:
/// removed) — or, for a row of the same words, what else differs (the remedy) — and what the
/// runs share: seeds, sampler, size, model.
struct PromptDiffCard: Figure {
    let prompts: [[(text: String, change: Comparison.Change)]]
    /// Each row's label ("prompt 2", "remedy: full"), and a sentence shown instead of its chips.
    let labels: [String]
    let notes: [String?]
    let rows: [(String, String)]
    var width: Double = 760
    var title = "Comparison"
    static let chipFont = Font(size: 12), lineHeight = 30.0
    /// Wide enough for the longest label.
    let labelWidth: Double
    /// Each prompt's chips, (x, line), and the height it takes (its chips' lines, or its note).
    private let layouts: [(positions: [(Double, Int)], height: Double)]

    init(prompts: [[(text: String, change: Comparison.Change)]], labels: [String], notes: [String?], rows: [(String, String)]) {
        (self.prompts, self.labels, self.notes, self.rows) = (prompts, labels, notes, rows)
        let measure = try? Canvas.image(width: 1, height: 1)
        let labelWidth = max(84, (labels.map { measure?.measure($0, font: Font(size: 12, bold: true)).width ?? Double($0.count) * 7.5 }.max() ?? 0) + 16)
        self.labelWidth = labelWidth
        let room = 760 - labelWidth
        layouts = zip(prompts, notes).map { words, note in
            if let note {
                return ([], max(Self.lineHeight, (measure?.measure(note, font: Self.chipFont, maxWidth: room, maxLines: 3).height ?? 16) + 10))
            }
            var x = 0.0, line = 0, positions: [(Double, Int)] = []
            for w in words {
                let cw = (measure?.measure(Self.chipMarkup(w), font: Self.chipFont, markup: true).width ?? Double(w.text.count) * 7.6) + 12
                if x > 0 && x + cw > room { line += 1; x = 0 }
                positions.append((x, line))
                x += cw + 6
            }
            return (positions, Double(line + 1) * Self.lineHeight)
        }
    }

    var height: Double { 62 + layouts.reduce(0) { $0 + $1.height + 10 } + Double(rows.count) * 24 + 16 }

    static func chipMarkup(_ w: (text: String, change: Comparison.Change)) -> String {
        let t = HTMLPage.escape(w.text)
        switch w.change {
        case .same: return t
        case .added: return "<b>\(t)</b>"
        case .removed: return "<s>\(t)</s>"
        }
    }

    func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text(title, x: x, y: y, font: .title)
        c.text("each row's words as the model got them, against the first row's — green: added; red, struck through: removed",
               x: x, y: y + 32, font: .small, colour: .muted, maxWidth: width, oneLine: true)
        var top = y + 58
        for (p, words) in prompts.enumerated() {
            c.text(labels[p], x: x, y: top + 4, font: Font(size: 12, bold: true), colour: .muted)
            if let note = notes[p] {
                c.text(note, x: x + labelWidth, y: top + 4, font: Self.chipFont, colour: .muted, maxWidth: width - labelWidth, maxLines: 3)
            }
            for (w, pos) in zip(words, layouts[p].positions) {
                let markup = Self.chipMarkup(w), size = c.measure(markup, font: Self.chipFont, markup: true)
                let fill = w.change == .added ? Colour(hex: 0xDAFBE1) : w.change == .removed ? Colour(hex: 0xFFEBE9) : Colour.panel
                let cx = x + labelWidth + pos.0, cy = top + Double(pos.1) * Self.lineHeight
                c.roundedRect(x: cx, y: cy, w: size.width + 12, h: 24, radius: 5, fill: fill)
                c.text(markup, x: cx + 6, y: cy + 12 - size.height / 2, font: Self.chipFont,
                       colour: w.change == .added ? Colour(hex: 0x1A7F37) : w.change == .removed ? Colour(hex: 0xCF222E) : .ink, markup: true)
            }
            top += layouts[p].height + 10
        }
        var ry = top + 6
        for (k, v) in rows {
            c.text(k, x: x, y: ry, font: Font(size: 12, bold: true), colour: .muted)
            c.text(v, x: x + 140, y: ry, font: Font(size: 12), maxWidth: width - 140, oneLine: true)
            ry += 24
        }
    }
}
