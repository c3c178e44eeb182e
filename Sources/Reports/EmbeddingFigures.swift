import Analysis
import Imaging
import Foundation

/// Each embedding vector's nearest vocabulary tokens: a table of label, norm (and its percentile
/// in the vocabulary), and the top tokens with their cosines.
public struct NeighbourTable: Figure {
    public let rows: [EmbeddingStudy.Vector]
    public let vocabularySize: Int
    public var width: Double = 860
    public var height: Double { 64 + Double(rows.count) * 24 + 10 }
    static let labelWidth = 150.0, normWidth = 110.0

    public init(study: EmbeddingStudy) {
        rows = study.vectors
        vocabularySize = study.vocabularySize
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text("Nearest vocabulary tokens of each embedding vector", x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        c.text("cosine in the text encoder's token-embedding table (\(vocabularySize) tokens); norm percentile: the share of vocabulary rows with a smaller norm",
               x: x, y: y + 24, font: .small, colour: .muted, maxWidth: width, oneLine: true)
        let top = y + 50
        for (i, r) in rows.enumerated() {
            let ry = top + Double(i) * 24
            if i % 2 == 0 { c.fill(x: x, y: ry - 2, w: width, h: 24, .panel) }
            c.text(r.label, x: x + 6, y: ry + 2, font: Font(size: 12, bold: true), maxWidth: Self.labelWidth - 10, oneLine: true)
            c.text(String(format: "%.3f (%.0f%%)", r.norm, r.normPercentile * 100), x: x + Self.labelWidth, y: ry + 2, font: Font(size: 12), colour: .muted)
            let list = r.nearest.map { "\($0.text.isEmpty ? "·" : $0.text) \(String(format: "%.2f", $0.cosine))" }.joined(separator: "   ")
            c.text(list, x: x + Self.labelWidth + Self.normWidth, y: ry + 2, font: Font(size: 12),
                   maxWidth: width - Self.labelWidth - Self.normWidth - 6, oneLine: true)
        }
    }
}

/// "Do A and B merge?": the verdict in words, each seed's final image with its verdict under it,
/// the two words' overlap at every evaluation (IoU solid, Pearson dashed; one colour per seed) and
/// their cosines in and out of context. The verdict reads attention; the images show whether one
/// figure was drawn, so the two are seen side by side.
public struct MergePage: Figure {
    public let study: PairStudy
    public let seeds: [String]
    /// Each seed's final image (nil where the run stopped before it), in the order of `seeds`.
    public let images: [RGBImage?]
    public var width: Double = 760
    public var height: Double { boxHeight + 44 + imagesHeight + chart.height + 10 }
    /// The remedy to try, where the verdict is a merge.
    var remedy: String? { study.verdict.remedyCommand(traces: MergeVerdict.commandLineFolders(study.folders)) }
    var boxHeight: Double { remedy == nil ? 62 : 100 }
    static let gap = 10.0, maxSide = 170.0

    public init(study: PairStudy, seeds: [String], images: [RGBImage?] = []) {
        (self.study, self.seeds, self.images) = (study, seeds, images)
    }

    var side: Double {
        images.isEmpty ? 0 : min(Self.maxSide, (width - Self.gap * Double(images.count - 1)) / Double(images.count))
    }
    /// The heading, the images and three caption lines under them; nothing without images.
    var imagesHeight: Double { images.contains { $0 != nil } ? 20 + side + 58 : 0 }

    var chart: LineChart {
        let n = study.timelines.map(\.overlaps.count).max() ?? 0
        var series: [LineChart.Series] = []
        for (i, t) in study.timelines.enumerated() {
            let tag = seeds.count > 1 ? " · seed \(seeds[i])" : ""
            series.append(.init(label: "IoU\(tag)", values: t.overlaps.map(\.iou), colour: i))
            series.append(.init(label: "Pearson\(tag)", values: t.overlaps.map(\.pearson), dashed: true, colour: i))
        }
        var chart = LineChart(title: "Overlap of \(study.a) and \(study.b) at every evaluation", xTitle: "evaluation",
                              yTitle: "IoU (solid), Pearson (dashed)", xs: (0..<n).map { Double($0 + 1) }, series: series)
        // Pearson can fall below 0; the axis goes as low as the data, in steps of 0.2.
        let low = study.timelines.flatMap { $0.overlaps.map(\.pearson) }.min() ?? 0
        chart.yRange = min(-0.2, (low * 5).rounded(.down) / 5)...1
        chart.width = width
        return chart
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        let v = study.verdict
        c.text("Do \(study.a) and \(study.b) merge?", x: x, y: y, font: .title, maxWidth: width, oneLine: true)
        let merged = v.mergedCount > 0
        c.roundedRect(x: x, y: y + 34, w: width, h: boxHeight, radius: 6, fill: merged ? Colour(hex: 0xFDE2E1) : Colour(hex: 0xDFF5E3))
        c.text(v.sentence, x: x + 10, y: y + 40, font: Font(size: 13), maxWidth: width - 20)
        if let note = study.note { c.text(note, x: x + 10, y: y + 78, font: Font(size: 10), colour: .muted, maxWidth: width - 20, oneLine: true) }
        if let remedy {
            c.text("Try the remedy (docs/REMEDY.md): \(remedy)", x: x + 10, y: y + 96, font: Font(size: 11), maxWidth: width - 20)
        }
        var top = y + boxHeight + 44
        if imagesHeight > 0 {
            c.text("Final images, each with its verdict (the verdict reads attention maps; the image shows whether one figure was drawn)",
                   x: x, y: top - 4, font: .small, colour: .muted, maxWidth: width, oneLine: true)
            for (i, image) in images.enumerated() {
                let ix = x + Double(i) * (side + Self.gap), iy = top + 20
                if let image { c.image(image, x: ix, y: iy, w: side, h: side) } else { c.fill(x: ix, y: iy, w: side, h: side, .panel) }
                guard i < study.timelines.count else { continue }
                let t = study.timelines[i], last = t.overlaps.last
                let verdict = t.mergedFrom.map { "one region from evaluation \($0 + 1)" } ?? "apart"
                if i < seeds.count {
                    c.text("seed \(seeds[i])", x: ix, y: iy + side + 3, font: Font(size: 11, bold: true), maxWidth: side, oneLine: true)
                }
                c.text(verdict, x: ix, y: iy + side + 18, font: .small, colour: t.mergedFrom != nil ? Colour(hex: 0xB42318) : .ink, maxWidth: side, oneLine: true)
                c.text("IoU \(String(format: "%.2f", last?.iou ?? 0)) · r \(String(format: "%.2f", last?.pearson ?? 0))",
                       x: ix, y: iy + side + 33, font: .small, colour: .muted, maxWidth: side, oneLine: true)
            }
            top += imagesHeight
        }
        try chart.draw(c, x: x, y: top)
    }
}
