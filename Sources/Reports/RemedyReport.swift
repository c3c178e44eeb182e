import Analysis
import Foundation
import Imaging

/// The merge remedy's before/after report, what `pareidolia remedy` writes to OUT/report: the
/// plain runs and the remedied ones as one comparison (a row per run kind — before, each remedy
/// stage — a column per seed), led by the answer (how many seeds end with the two subjects apart,
/// before and after, and the channel that carried the merge), then the images, the regions, both
/// subjects' maps and overlap, and the comparison's heat maps, animation and divergence.
public enum RemedyReport {
    public struct Request {
        /// The plain runs (one per seed) and the runs made with the remedy (any stage: run.json's
        /// `remedy` says which), of the same prompt.
        public var before: [String]
        public var remedied: [String]
        /// The two subjects, A and B.
        public var subjects: [String]
        /// MergeRemedy.Counts' sentence and channel; nil: the sentence counted here, no channel.
        public var sentence: String?
        public var channel: String?
        /// MergeRemedy.Counts' advice: the stage to run instead where the full remedy parted fewer seeds.
        public var advice: String?
        /// How each seed's regions were found ("halves", "auto (blobs of 'person')").
        public var regionSources: [UInt64: String] = [:]
        public var options = ReportOptions()
        public var output: String

        public init(before: [String], remedied: [String], subjects: [String], output: String) {
            (self.before, self.remedied, self.subjects, self.output) = (before, remedied, subjects, output)
        }
    }

    /// Writes the report into `request.output` (atomically, as ReportBuilder does); the summary's
    /// line counts the seeds apart per run kind, by the merge rule (MergeTimeline).
    public static func build(_ request: Request, progress: ReportBuilder.Progress = { _, _, _ in }) throws -> ReportSummary {
        guard request.subjects.count == 2 else { throw ReportError("remedy report: expected two subjects, A,B (got \(request.subjects.joined(separator: ",")))") }
        guard !request.before.isEmpty, !request.remedied.isEmpty else { throw ReportError("remedy report: needs the plain runs and the remedied ones") }
        let before = try request.before.map { try ReportTrace(directory: $0) }
        let remedied = try request.remedied.map { try ReportTrace(directory: $0) }
        if let t = before.first(where: { $0.remedy != nil }) { throw ReportError("\(t.directory)/run.json: made with the remedy; expected a plain run as 'before'") }
        if let t = remedied.first(where: { $0.remedy == nil }) { throw ReportError("\(t.directory)/run.json: no remedy; expected a run of pareidolia remedy") }
        let cmp = try Comparison(traces: before + remedied)
        guard Set(cmp.prompts).count == 1 else { throw ReportError("\(remedied[0].directory): its prompt differs from \(before[0].directory)'s; a remedy report covers one prompt") }
        let (a, b) = (request.subjects[0], request.subjects[1])
        // Each run's overlap of the two, as `pareidolia merge` and MergeRemedy count it.
        let timelines = try cmp.traces.map { t -> MergeTimeline in
            guard let maps = t.wordMaps else { throw ReportError("\(t.directory): traced with --trace-attention off; no maps of \(a) and \(b)") }
            guard let ia = maps.index(of: a), let ib = maps.index(of: b) else {
                throw ReportError("\(t.directory): the prompt has no word '\(maps.index(of: a) == nil ? a : b)'")
            }
            return MergeTimeline(a: maps.maps[ia], b: maps.maps[ib])
        }
        var options = request.options
        options.words = request.subjects
        return try ReportBuilder.write(cmp.traces, output: request.output, options: options, progress: progress) { frames, dir in
            try draw(cmp, timelines: timelines, request: request, frames: frames, options: options, into: dir)
        }
    }

    /// The seeds apart per row, in words: "alex and cora end on separate regions in 1 of 4 seeds
    /// before, 4 of 4 after (text encoding alone: 2; + cross-attention: 3)".
    static func counted(_ cmp: Comparison, _ timelines: [MergeTimeline], subjects: [String]) -> String {
        let runs = cmp.cells.map { $0.compactMap { $0 } }
        let apart = runs.map { $0.filter { timelines[$0].mergedFrom == nil }.count }
        let last = cmp.prompts.count - 1
        var s = "\(subjects[0]) and \(subjects[1]) end on separate regions in \(apart[0]) of \(runs[0].count) seeds before, \(apart[last]) of \(runs[last].count) after"
        let middle = (1..<max(1, last)).map { "\(cmp.stages[$0] == "text" ? "text encoding alone" : cmp.stages[$0] == "cross" ? "+ cross-attention" : cmp.rowLabel($0)): \(apart[$0])" }
        if !middle.isEmpty { s += " (\(middle.joined(separator: "; ")))" }
        return s
    }

    /// Two decimals, "0.00" rather than "-0.00".
    static func fixed(_ v: Double) -> String {
        let s = String(format: "%.2f", v)
        return s == "-0.00" ? "0.00" : s
    }

    /// A row's colour in the overlap charts: before black, the stages in turn, the remedy green.
    static func colour(_ stage: String?) -> Int { ["text": 5, "cross": 4, "full": 2][stage ?? ""] ?? 7 }

    static func draw(_ cmp: Comparison, timelines: [MergeTimeline], request: Request, frames: [DenoisingFrames], options: ReportOptions,
                     into dir: URL) throws -> (files: [String], lines: [String]) {
        var files: [String] = []
        func path(_ name: String) -> String { ReportBuilder.reportPath(name, in: dir, files: &files) }
        let (a, b) = (request.subjects[0], request.subjects[1])
        let prompt = cmp.prompts[0], last = cmp.prompts.count - 1
        let pdf = try PDFDocument(path: dir.appendingPathComponent("report.pdf").path, title: "Pareidolia — the merge remedy on \(a) and \(b)")
        files.append("report.pdf")
        var page = HTMLPage(title: "Pareidolia — the merge remedy on \(a) and \(b)")
        page.style = ReportBuilder.comparisonStyle + """

            .answer { background:var(--panel); padding:10px 14px; border-radius:6px; font-size:1.05rem; }
            .apart { color:#1a7f37; } .merged { color:#cf222e; font-weight:bold; }
            .charts { display:grid; grid-template-columns:repeat(auto-fill, minmax(420px, 1fr)); gap:12px; }
            """
        page.raw("""
        <header><h1>The merge remedy on \(HTMLPage.escape(a)) and \(HTMLPage.escape(b))</h1>
        <p class="note">prompt: \(HTMLPage.escape(prompt))</p>
        <nav><a href="#summary">answer</a><a href="#images">images</a><a href="#regions">regions</a><a href="#subjects">\(HTMLPage.escape(a)) and \(HTMLPage.escape(b))</a><a href="#overlap">overlap</a><a href="#heatmaps">heat maps</a><a href="#denoising">denoising</a><a href="#divergence">where they part</a><a href="#prompts">runs</a><a href="report.pdf">PDF</a></nav></header>
        """)

        // The answer: the counts, the channel, every run's verdict.
        let counts = counted(cmp, timelines, subjects: request.subjects)
        let sentence = request.sentence ?? counts + "."
        let heads = cmp.prompts.indices.map { cmp.rowLabel($0) }
        let table = cmp.cells[0].indices.map { c -> (seed: UInt64, cells: [RemedySummary.Verdict?]) in
            let seed = cmp.cells.lazy.compactMap { $0[c] }.first.map { cmp.traces[$0].seed } ?? 0
            return (seed, cmp.prompts.indices.map { p in
                cmp.cells[p][c].map { i in
                    let t = timelines[i]
                    return .init(verdict: t.mergedFrom.map { "merged from \($0 + 1)" } ?? "apart",
                                 numbers: "IoU \(fixed(t.overlaps.last?.iou ?? 0)), r \(fixed(t.overlaps.last?.pearson ?? 0))", merged: t.mergedFrom != nil)
                }
            })
        }
        var summary = RemedySummary(title: "The merge remedy on \(a) and \(b)", prompt: prompt, sentence: sentence, channel: request.channel,
                                    columns: cmp.prompts.indices.map { cmp.rowLabel($0, short: true) }, table: table)
        summary.advice = request.advice
        try pdf.page(width: summary.width + 60, height: summary.height + 60) { try summary.draw($0, x: 30, y: 30) }
        var html = "<p class=\"answer\">\(HTMLPage.escape(sentence))"
        if let channel = request.channel { html += "<br><b>The channel that carried the merge, by the ablation — \(HTMLPage.escape(channel)).</b>" }
        if let advice = request.advice { html += "<br>\(HTMLPage.escape(summary.adviceText(advice)))" }
        html += "</p>"
        if cmp.prompts.count == 2 { html += "<p class=\"note\">Run pareidolia remedy with --ablate to tell which channel (text encoder, cross-attention, self-attention) carried the merge.</p>" }
        html += "<table><tr><th>seed</th>" + heads.map { "<th>\(HTMLPage.escape($0))</th>" }.joined() + "</tr>" + table.map { row in
            "<tr><td>\(row.seed)</td>" + row.cells.map { cell in
                cell.map { "<td class=\"\($0.merged ? "merged" : "apart")\">\(HTMLPage.escape("\($0.verdict) · \($0.numbers)"))</td>" } ?? "<td></td>"
            }.joined() + "</tr>"
        }.joined() + "</table>"
        page.section("summary", "Do \(a) and \(b) end apart?",
                     note: "The merge rule of pareidolia merge: two subjects share one region when, from some evaluation to the last, the IoU of their maps (each above 0.4 of its range) and their correlation r are both at least 0.5. The maps of a remedied run are the probe's unmasked attention, which the remedy's masks do not dictate.",
                     html)

        let pictures = ReportBuilder.comparisonPictures(cmp, frames: frames, options: options)
        try ReportBuilder.comparisonImages(cmp, pictures: pictures, frames: frames, title: "The images, before and with the remedy", page: &page, pdf: pdf, path: path)

        // The regions, over the remedied images.
        let regions = RemedyRegions(subjects: request.subjects, cells: cmp.cells[last].compactMap { i in
            i.flatMap { i in (pictures[i] ?? frames[i].x0.last).map { image in
                let t = cmp.traces[i]
                return RemedyRegions.Cell(seed: t.seed, image: image, boxes: t.remedy?.boxes ?? [], source: request.regionSources[t.seed])
            } }
        }, panel: ReportBuilder.comparisonPanel(cmp))
        try regions.writePNG(to: path("regions.png"))
        try pdf.page(width: regions.width + 60, height: regions.height + 60) { try regions.draw($0, x: 30, y: 30) }
        page.section("regions", "The regions", note: "Each subject's box (normalised x0, y0, x1, y1 from run.json's remedy) drawn over the image the remedy made: in cross-attention a subject's words reach only the pixels of its box, and in self-attention the boxes' pixels do not look at each other.",
                     HTMLPage.figure("regions.png", alt: "the remedy's regions drawn over each seed's remedied image"))

        // Both subjects' maps in every run, and their overlap at every evaluation.
        let grid = try pairGrid(cmp, timelines: timelines, subjects: request.subjects, pictures: pictures, frames: frames, options: options)
        try grid.writePNG(to: path("subjects.png"))
        try pdf.page(width: grid.width + 60, height: grid.height + 60) { try grid.draw($0, x: 30, y: 30) }
        page.section("subjects", "\(a) and \(b), side by side", note: "Each subject's DAAM map (its cross-attention summed over all evaluations and layers) over the run's final image, a row per run kind, a column per seed.",
                     HTMLPage.figure("subjects.png", alt: "\(a)'s and \(b)'s maps in every run, before and with the remedy"))
        let (seeds, charts) = overlapCharts(cmp, timelines: timelines, subjects: request.subjects)
        var chartHTML = "<div class=\"charts\">"
        for (k, chart) in charts.enumerated() {
            // Named by seed, or by column where a seed is in more than one.
            let name = Set(seeds).count == seeds.count ? "overlap-\(seeds[k]).png" : "overlap-\(k + 1).png"
            try chart.writePNG(to: path(name))
            chartHTML += HTMLPage.figure(name, alt: "IoU of \(a) and \(b) at every evaluation, a line per run kind")
        }
        page.section("overlap", "Their overlap at every evaluation",
                     note: "IoU of the two subjects' maps (each above 0.4 of its range) at each evaluation, a line per run kind. The merge rule needs IoU and correlation (r) both at least 0.5 from some evaluation to the end: a run whose IoU ends above the cut is apart when its r is below 0.5 (the legend gives r then).",
                     chartHTML + "</div>")
        for start in stride(from: 0, to: charts.count, by: 4) {
            let four = Array(charts[start..<min(charts.count, start + 4)])
            try pdf.page(width: 2 * four[0].width + 90, height: Double((four.count + 1) / 2) * (four[0].height + 20) + 80) { c in
                c.text("The overlap of \(a) and \(b) at every evaluation", x: 30, y: 24, font: .heading)
                for (k, chart) in four.enumerated() { try chart.draw(c, x: 30 + Double(k % 2) * (chart.width + 30), y: 60 + Double(k / 2) * (chart.height + 20)) }
            }
        }

        try ReportBuilder.comparisonHeatMaps(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        try ReportBuilder.comparisonDenoising(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        // Where the remedy's run leaves the plain one (the partial stages would repeat it).
        let lines = try ReportBuilder.comparisonDivergence(cmp, frames: frames, options: options, pairs: cmp.pairs.filter { $0.prompt == last },
                                                           page: &page, pdf: pdf, path: path)
        try ReportBuilder.comparisonPrompts(cmp, page: &page, pdf: pdf)
        try ReportBuilder.finish(page: page, pdf: pdf, dir: dir)
        files.append("index.html")
        return (files, [counts] + lines)
    }

    /// Every run's two maps over its final image, with the last evaluation's IoU and verdict.
    static func pairGrid(_ cmp: Comparison, timelines: [MergeTimeline], subjects: [String], pictures: [RGBImage?],
                         frames: [DenoisingFrames], options: ReportOptions) throws -> RemedyPairGrid {
        let colourMap = options.colourMap
        let rows = cmp.prompts.indices.map { p in
            RemedyPairGrid.Row(label: cmp.rowLabel(p), cells: cmp.cells[p].map { i in
                i.flatMap { i -> RemedyPairGrid.Cell? in
                    let t = cmp.traces[i]
                    guard let base = pictures[i] ?? frames[i].x0.last, let maps = t.wordMaps,
                          let ia = maps.index(of: subjects[0]), let ib = maps.index(of: subjects[1]) else { return nil }
                    let heats = HeatMaps.wordHeatMaps(maps, imageWidth: t.width, imageHeight: t.height, normalisation: .perWord)
                    let overlays = [ia, ib].map { HeatMaps.blend(image: base, heat: heats[$0], colourMap: colourMap, strength: ReportBuilder.overlayStrength) }
                    return .init(seed: t.seed, a: overlays[0], b: overlays[1], iou: timelines[i].overlaps.last?.iou ?? 0, mergedFrom: timelines[i].mergedFrom)
                }
            })
        }
        let side = min(160, max(90, ((1040 / Double(cmp.cells[0].count) - 24) / 2).rounded(.down)))
        return RemedyPairGrid(subjects: subjects, rows: rows, side: side, scale: { colourMap($0) })
    }

    /// Per column (seed): the IoU of the two subjects at every evaluation, a line per run kind;
    /// and the columns' seeds.
    static func overlapCharts(_ cmp: Comparison, timelines: [MergeTimeline], subjects: [String]) -> (seeds: [UInt64], charts: [LineChart]) {
        let seeds = cmp.cells[0].indices.map { c in cmp.cells.lazy.compactMap { $0[c] }.first.map { cmp.traces[$0].seed } ?? 0 }
        return (seeds, cmp.cells[0].indices.map { c in
            let runs = cmp.prompts.indices.compactMap { p in cmp.cells[p][c].map { (p, $0) } }
            let n = runs.map { timelines[$0.1].overlaps.count }.max() ?? 0
            let xs = (0..<n).map { Double($0 + 1) }
            var series = runs.map { p, i in
                let t = timelines[i]
                // Apart with IoU over the cut: the correlation kept them apart; say so.
                let pearson = (t.overlaps.last?.iou ?? 0) >= 0.5 ? " (r \(fixed(t.overlaps.last?.pearson ?? 0)))" : ""
                let label = cmp.rowLabel(p, short: true) + (t.mergedFrom.map { ": merged from \($0 + 1)" } ?? ": apart" + pearson)
                return LineChart.Series(label: label, values: t.overlaps.map(\.iou), colour: colour(cmp.stages[p]))
            }
            series.append(.init(label: "IoU 0.5: the merge rule's cut", values: xs.map { _ in 0.5 }, dashed: true, colour: 3))
            var chart = LineChart(title: "Seed \(seeds[c]): \(subjects[0]) and \(subjects[1]) overlap", xTitle: "evaluation", yTitle: "IoU", xs: xs, series: series)
            chart.yRange = 0...1
            (chart.width, chart.height, chart.legendWidth) = (520, 260, 170)
            return chart
        })
    }
}
