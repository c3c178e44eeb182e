import Foundation
import Imaging

/// The two subjects' colours in every remedy figure (boxes, names).
let subjectColours = [Colour.series[0], Colour.series[1]]

/// The two subjects of a merge, where each one's attention went: a row per run kind (before, each
/// remedy stage), a column per seed; in each cell both subjects' DAAM maps over the final image
/// side by side, with the last evaluation's IoU and the merge rule's verdict under them.
struct RemedyPairGrid: Figure {
    struct Cell {
        let seed: UInt64
        let a: RGBImage, b: RGBImage
        let iou: Double
        /// The merge rule: the evaluation (0-based) from which they share one region; nil: apart.
        let mergedFrom: Int?
    }
    struct Row { let label: String; let cells: [Cell?] }

    let subjects: [String]
    let rows: [Row]
    /// Side of one map, in pixels.
    let side: Double
    let scale: ColourScale
    static let pad = 10.0, gap = 4.0, header = 50.0, rowTitle = 24.0, names = 16.0, caption = 18.0

    var columns: Int { rows.map(\.cells.count).max() ?? 1 }
    var cellWidth: Double { 2 * side + Self.gap }
    var aspect: Double {
        let img = rows.lazy.flatMap(\.cells).compactMap { $0?.a }.first
        return Double(img?.height ?? 1) / Double(max(1, img?.width ?? 1))
    }
    var width: Double { max(560, Self.pad + Double(columns) * (cellWidth + 2 * Self.pad)) }
    var rowHeight: Double { Self.rowTitle + Self.names + side * aspect + Self.caption + Self.pad }
    var height: Double { Self.header + Double(rows.count) * rowHeight }

    func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text("Where \(subjects[0]) and \(subjects[1]) went, before and with the remedy", x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        // Colour bar legend, then what the numbers are.
        let bar = colourised((0..<64).map { Float($0) / 63 }, width: 64, height: 1, scale: scale)
        c.text("low", x: x, y: y + 24, font: .small, colour: .muted)
        c.image(bar, x: x + 26, y: y + 27, w: 60, h: 10)
        c.text("high attention · per map, its whole range; under each pair: the last evaluation's IoU (maps above 0.4 of their range)",
               x: x + 92, y: y + 24, font: .small, colour: .muted, maxWidth: width - 92, oneLine: true)
        let ph = side * aspect
        var ry = y + Self.header
        for row in rows {
            c.text(row.label, x: x, y: ry + 2, font: Font(size: 13, bold: true), maxWidth: width, oneLine: true)
            let top = ry + Self.rowTitle
            for (k, cell) in row.cells.enumerated() {
                let cx = x + Double(k) * (cellWidth + 2 * Self.pad)
                guard let cell else {
                    c.fill(x: cx, y: top + Self.names, w: cellWidth, h: ph, .panel)
                    c.text("no run", x: cx + cellWidth / 2, y: top + Self.names + ph / 2 - 8, font: .small, colour: .muted, align: .centre)
                    continue
                }
                for (s, image) in [cell.a, cell.b].enumerated() {
                    let mx = cx + Double(s) * (side + Self.gap)
                    c.text(subjects[s], x: mx, y: top, font: Font(size: 11, bold: true), colour: subjectColours[s], maxWidth: side, oneLine: true)
                    c.image(image, x: mx, y: top + Self.names, w: side, h: ph, smooth: true)
                }
                let verdict = cell.mergedFrom.map { "merged from \($0 + 1)" } ?? "apart"
                c.text("seed \(cell.seed) · IoU \(String(format: "%.2f", cell.iou)) · \(verdict)", x: cx, y: top + Self.names + ph + 2,
                       font: Font(size: 11, bold: cell.mergedFrom != nil), colour: cell.mergedFrom == nil ? Colour(hex: 0x1A7F37) : Colour(hex: 0xCF222E),
                       maxWidth: cellWidth, oneLine: true)
            }
            ry += rowHeight
        }
    }
}

/// The regions the remedy confined each subject to, drawn over the image it made: a picture per
/// seed, a box per subject (normalised x0, y0, x1, y1; top-left origin).
struct RemedyRegions: Figure {
    struct Cell {
        let seed: UInt64
        let image: RGBImage
        let boxes: [[Double]]
        /// How the boxes were found ("halves", "auto (blobs of 'person')"), when known.
        let source: String?
    }
    let subjects: [String]
    let cells: [Cell]
    let panel: Double
    static let pad = 10.0, header = 50.0, caption = 18.0

    var aspect: Double { Double(cells.first?.image.height ?? 1) / Double(max(1, cells.first?.image.width ?? 1)) }
    var width: Double { max(560, Self.pad + Double(cells.count) * (panel + 2 * Self.pad)) }
    var height: Double { Self.header + Self.caption + panel * aspect + 2 * Self.caption + Self.pad }

    func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text("The regions each subject was held to, over the remedied image", x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        var lx = x
        for (s, name) in subjects.enumerated() {
            c.fill(x: lx, y: y + 28, w: 12, h: 12, subjectColours[s])
            lx += 18 + c.text(name, x: lx + 16, y: y + 25, font: .small).width + 14
        }
        let ph = panel * aspect
        for (k, cell) in cells.enumerated() {
            let cx = x + Double(k) * (panel + 2 * Self.pad), top = y + Self.header
            c.text("seed \(cell.seed)", x: cx, y: top, font: .small, colour: .muted, maxWidth: panel, oneLine: true)
            c.image(cell.image, x: cx, y: top + Self.caption, w: panel, h: ph, smooth: true)
            for (s, box) in cell.boxes.enumerated() where box.count == 4 {
                // Inset by half a line, so boxes that share an edge (halves) both show.
                let colour = subjectColours[s % 2], inset = 2.0
                let bx = cx + box[0] * panel + inset, by = top + Self.caption + box[1] * ph + inset
                let bw = (box[2] - box[0]) * panel - 2 * inset, bh = (box[3] - box[1]) * ph - 2 * inset
                c.strokeRect(x: bx, y: by, w: bw, h: bh, colour, lineWidth: 3)
                let name = s < subjects.count ? subjects[s] : "\(s + 1)"
                let size = c.measure(name, font: Font(size: 10, bold: true))
                c.roundedRect(x: bx + 2, y: by + 2, w: min(size.width + 8, bw - 4), h: size.height + 2, radius: 3, fill: colour)
                c.text(name, x: bx + 6, y: by + 3, font: Font(size: 10, bold: true), colour: .white, maxWidth: bw - 12, oneLine: true)
            }
            if let source = cell.source {
                c.text("regions: \(source)", x: cx, y: top + Self.caption + ph + 3, font: .small, colour: .muted, maxWidth: panel, maxLines: 2)
            }
        }
    }
}

/// The remedy's answer on one page: the count sentence, the channel, and a table of every run's
/// verdict (a row per seed, a column per run kind).
struct RemedySummary: Figure {
    let title: String
    let prompt: String
    let sentence: String
    let channel: String?
    /// Which stage to run instead where the full remedy parted fewer seeds (MergeRemedy.Counts.advice).
    var advice: String? = nil
    /// Column heads (run kinds) and, per seed, each run's verdict.
    let columns: [String]
    let table: [(seed: UInt64, cells: [Verdict?])]
    var width: Double = 760
    static let seedWidth = 90.0, rowHeight = 40.0

    /// "merged from 4" over "IoU 0.55, r 0.54".
    struct Verdict { let verdict: String, numbers: String, merged: Bool }

    /// The answer's box: the sentence and the channel as they wrap.
    var boxHeight: Double {
        let m = try? Canvas.image(width: 1, height: 1)
        let sentenceHeight = m?.measure(sentence, font: Font(size: 13), maxWidth: width - 20, maxLines: 3).height ?? 48
        let channelHeight = channel.map { m?.measure(channelText($0), font: Font(size: 13, bold: true), maxWidth: width - 20, maxLines: 2).height ?? 34 } ?? 0
        let adviceHeight = advice.map { m?.measure(adviceText($0), font: Font(size: 13), maxWidth: width - 20, maxLines: 2).height ?? 34 } ?? 0
        return 8 + sentenceHeight + (channel == nil ? 0 : 6 + channelHeight) + (advice == nil ? 0 : 6 + adviceHeight) + 10
    }

    func channelText(_ channel: String) -> String { "The channel that carried the merge, by the ablation — \(channel)." }
    func adviceText(_ advice: String) -> String { "For this model: \(advice)." }
    var height: Double { 64 + boxHeight + 24 + 26 + Double(table.count) * Self.rowHeight }

    func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text(title, x: x, y: y, font: .title, maxWidth: width, oneLine: true)
        c.text("prompt: \(prompt)", x: x, y: y + 30, font: Font(size: 12), colour: .muted, maxWidth: width, oneLine: true)
        let top = y + 56
        c.roundedRect(x: x, y: top, w: width, h: boxHeight, radius: 6, fill: .panel)
        let h = c.text(sentence, x: x + 10, y: top + 8, font: Font(size: 13), maxWidth: width - 20, maxLines: 3).height
        var ay = top + 14 + h
        if let channel {
            ay += c.text(channelText(channel), x: x + 10, y: ay, font: Font(size: 13, bold: true),
                         maxWidth: width - 20, maxLines: 2).height + 6
        }
        if let advice { c.text(adviceText(advice), x: x + 10, y: ay, font: Font(size: 13), maxWidth: width - 20, maxLines: 2) }
        var ty = top + boxHeight + 24
        let cw = (width - Self.seedWidth) / Double(max(1, columns.count))
        c.text("seed", x: x, y: ty, font: Font(size: 11, bold: true), colour: .muted)
        for (k, head) in columns.enumerated() {
            c.text(head, x: x + Self.seedWidth + Double(k) * cw, y: ty, font: Font(size: 11, bold: true), colour: .muted, maxWidth: cw - 8, oneLine: true)
        }
        ty += 22
        c.line(x, ty - 3, x + width, ty - 3, .rule)
        for row in table {
            c.text(String(row.seed), x: x, y: ty, font: Font(size: 12))
            for (k, cell) in row.cells.enumerated() {
                guard let cell else { continue }
                let cx = x + Self.seedWidth + Double(k) * cw
                c.text(cell.verdict, x: cx, y: ty, font: Font(size: 12, bold: cell.merged),
                       colour: cell.merged ? Colour(hex: 0xCF222E) : Colour(hex: 0x1A7F37), maxWidth: cw - 8, oneLine: true)
                c.text(cell.numbers, x: cx, y: ty + 16, font: .small, colour: .muted, maxWidth: cw - 8, oneLine: true)
            }
            ty += Self.rowHeight
        }
    }
}
