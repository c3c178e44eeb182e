import Analysis
import Foundation

extension ReportBuilder {
    /// Each word of the comparison with its heat map in every run that has it: a shared word side
    /// by side across the prompts, an added or removed one in the runs whose prompt holds it.
    static func comparisonHeatMaps(_ cmp: Comparison, frames: [DenoisingFrames], options: ReportOptions,
                                   page: inout HTMLPage, pdf: PDFDocument, path: (String) -> String) throws {
        var words = cmp.alignedWords
        if let wanted = options.words {
            let lower = Set(wanted.map { $0.lowercased() })
            for w in wanted where !words.contains(where: { $0.label.lowercased() == w.lowercased() }) {
                throw ReportError("--words \(w): not a word of any compared prompt; their words are \(Set(cmp.words.joined()).sorted().joined(separator: ", "))")
            }
            words = words.filter { lower.contains($0.label.lowercased()) }
        }
        let colourMap = options.colourMap
        let scale: ColourScale = { colourMap($0) }
        // Per run: every word's heat map, and its mean share of the attention over the evaluations.
        let heats = cmp.traces.map { HeatMaps.wordHeatMaps($0.wordMaps!, imageWidth: $0.width, imageHeight: $0.height, normalisation: options.normalisation) }
        let shares = cmp.traces.map { t in HeatMaps.attentionShares(t.wordMaps!).map { $0.reduce(0, +) / Double(max(1, $0.count)) } }
        var blocks: [String] = [], labels: [String] = [], pdfRows: [[HeatMapFigure]] = []
        for (k, word) in words.enumerated() {
            // Added words are marked +, words some prompt lacks −, in the picker and on each map.
            let label = (word.kind.hasPrefix("added") ? "+ " : word.kind == "shared" ? "" : "− ") + word.label
            var block = "<h3>\(HTMLPage.escape(word.label)) <span class=\"kind\">\(word.kind)</span></h3>"
            // Several seeds: a grid per row, under its label; else one grid.
            let perRow = cmp.cells[0].count > 1
            if !perRow { block += "<div class=\"grid\">" }
            var pdfRow: [[HeatMapFigure]] = []
            for p in cmp.prompts.indices {
                guard let wi = word.index[p] else { continue }
                if perRow { block += "<p class=\"rowlabel\">\(HTMLPage.escape(cmp.rowLabel(p)))</p><div class=\"grid\">" }
                pdfRow.append([])
                for case let i? in cmp.cells[p] {
                    let t = cmp.traces[i]
                    guard let base = t.image ?? frames[i].x0.last else { continue }
                    let overlay = HeatMaps.blend(image: base, heat: heats[i][wi], colourMap: colourMap, strength: overlayStrength)
                    let note = "\(cmp.runLabel(i)) · \(String(format: "%.0f", shares[i][wi] * 100))%"
                    let weight = t.weight(ofWordAt: t.wordMaps!.words[wi].positions)
                    let fig = HeatMapFigure(label: label, weight: weight, overlay: overlay, scale: scale, panel: min(256, Double(t.width) * 2), note: note)
                    let name = String(format: "heatmaps/%02d-%@/%@.png", k, fileSafe(word.label), cmp.runName(i))
                    try fig.writePNG(to: path(name))
                    // Smaller in the PDF, where a word's maps make one row.
                    pdfRow[pdfRow.count - 1].append(HeatMapFigure(label: label, weight: weight, overlay: overlay, scale: scale, panel: min(160, Double(t.width) * 2), note: note))
                    block += HTMLPage.figure(name, alt: "heat map of \(word.label), \(note) of the attention")
                }
                if perRow { block += "</div>" }
            }
            blocks.append(block + (perRow ? "" : "</div>"))
            // In the PDF a word's maps make one row, or a row per prompt (or remedy stage) when
            // they are more than fit across.
            let all = pdfRow.flatMap { $0 }
            if let f = all.first, all.count > Int(pdfWordRowWidth / (f.width + 16)) { pdfRows += pdfRow } else { pdfRows.append(all) }
            labels.append(label)
        }
        let norm = options.normalisation == .perWord ? "min–max normalised per word and run (compare shapes, not strengths; the percentage under each map is the word's share of the attention, averaged over the evaluations)"
            : "normalised over all the words of each run together (the percentage under each map is the word's share of the attention, averaged over the evaluations)"
        page.section("heatmaps", "Which word went where, in each run",
                     note: "DAAM: each word's cross-attention summed over all evaluations and layers, upsampled to the image, \(norm). A shared word is shown in every run; an added word in the runs of the prompt that added it; a removed one (−) where it still was.",
                     HTMLPage.picker(words: labels, blocks: blocks))
        try pdfWordRows(pdf, title: "Which word went where, in each run", rows: pdfRows)
    }

    /// The width of a PDF row of heat maps, unless its maps need more (up to 1100).
    static let pdfWordRowWidth = 760.0

    /// Heat maps a word to a row (wrapped when the runs are more than fit across), as many rows
    /// as fit on a page.
    static func pdfWordRows(_ pdf: PDFDocument, title: String, rows: [[HeatMapFigure]]) throws {
        guard let f0 = rows.first(where: { !$0.isEmpty })?.first else { return }
        // Wider pages for longer rows (a remedy stage's seeds), so a row stays one line.
        let width = min(1100, max(pdfWordRowWidth, Double(rows.map(\.count).max() ?? 1) * (f0.width + 16)))
        let cols = max(1, Int(width / (f0.width + 16))), line = f0.height + 16
        func height(_ row: [HeatMapFigure]) -> Double { Double((row.count + cols - 1) / cols) * line + 8 }
        var pages: [[[HeatMapFigure]]] = [[]], used = 0.0
        for row in rows where !row.isEmpty {
            if used + height(row) > 900, !pages[pages.count - 1].isEmpty { pages.append([]); used = 0 }
            pages[pages.count - 1].append(row)
            used += height(row)
        }
        for page in pages {
            try pdf.page(width: width + 60, height: 80 + page.reduce(0) { $0 + height($1) }) { c in
                c.text(title, x: 30, y: 24, font: .heading, maxWidth: width, oneLine: true)
                var y = 60.0
                for row in page {
                    for (k, f) in row.enumerated() { try f.draw(c, x: 30 + Double(k % cols) * (f0.width + 16), y: y + Double(k / cols) * line) }
                    y += height(row)
                }
            }
        }
    }

    /// Where each later prompt's run parts from the first prompt's of the same column: the
    /// distances per evaluation in two charts, and the sentence for each pair. Returns the
    /// sentences for the terminal.
    static func comparisonDivergence(_ cmp: Comparison, frames: [DenoisingFrames], options: ReportOptions, pairs: [Comparison.Pair]? = nil,
                                     page: inout HTMLPage, pdf: PDFDocument, path: (String) -> String) throws -> [String] {
        let pairs = pairs ?? cmp.pairs
        let pictures = options.previews == .full ? "the decoded x̂₀" : "the cheap latent maps of x̂₀"
        guard !pairs.isEmpty else {
            page.section("divergence", "Where the runs part", note: "No later row has a run in the same column as \(cmp.rowLabel(0))'s, so no pair to compare.", "")
            return []
        }
        var sentences: [String] = [], latent: [LineChart.Series] = [], partsAt: [(k: Int, pair: Int)] = []
        var charts: [LineChart] = []
        for (n, pair) in pairs.enumerated() {
            let (a, b) = (cmp.traces[pair.base], cmp.traces[pair.other])
            let d = try RunDivergence(x0: a.x0, b.x0, picturesA: frames[pair.base].x0.map(\.pixels), picturesB: frames[pair.other].x0.map(\.pixels))
            let who = cmp.against(pair.prompt)
            let seed = a.seed == b.seed ? "seed \(a.seed)" : "seeds \(a.seed) and \(b.seed)"
            let name = pairs.count == 1 ? who : "\(who), \(seed)"
            sentences.append("\(who.prefix(1).uppercased() + who.dropFirst()), \(seed): \(d.sentence.prefix(1).lowercased() + d.sentence.dropFirst())")
            latent.append(LineChart.Series(label: name, values: d.latent, colour: n))
            if let k = d.partsAt { partsAt.append((k, n)) }
            // Per pair: the runs' distance, each run's remaining change, and the level m waits for.
            let xs = (0..<d.evaluations).map { Double($0 + 1) }
            var chart = LineChart(title: "When the layout settles — \(name)", xTitle: "evaluation", yTitle: "RMS pixel difference (0–1)", xs: xs, series: [
                LineChart.Series(label: "distance between the runs", values: d.pictures, colour: n),
                // Colours the latent chart's pairs (0, 1, …) do not use before its fifth.
                LineChart.Series(label: "\(cmp.rowLabel(0, short: true))'s run: distance to its last picture", values: d.remainingA, colour: 5),
                LineChart.Series(label: "\(cmp.rowLabel(pair.prompt, short: true))'s run: distance to its last picture", values: d.remainingB, colour: 4),
                LineChart.Series(label: "\(RunDivergence.percent(RunDivergence.settleFraction)) of the last distance between the runs", values: xs.map { _ in d.settleLevel }, dashed: true, colour: 7),
            ])
            if let m = d.settledBy { chart.markers = [LineChart.Marker(x: Double(m + 1), label: "m")] }
            charts.append(chart)
        }
        let xs = (0..<(latent.map(\.values.count).max() ?? 0)).map { Double($0 + 1) }
        latent.append(LineChart.Series(label: "τ = \(String(format: "%.2f", RunDivergence.partThreshold)): the runs part above it",
                                       values: xs.map { _ in RunDivergence.partThreshold }, dashed: true, colour: 7))
        var latentChart = LineChart(title: "How far apart the runs' x̂₀ are, in latent space", xTitle: "evaluation",
                                    yTitle: "RMS of the difference / RMS of x̂₀", xs: xs, series: latent)
        // One "k" marker per evaluation where runs part: in the pair's colour, grey where several part at once.
        for k in Array(Set(partsAt.map(\.k))).sorted() {
            let pairs = partsAt.filter { $0.k == k }.map(\.pair)
            latentChart.markers.append(LineChart.Marker(x: Double(k + 1), label: "k", colour: pairs.count == 1 ? pairs[0] : nil))
        }
        charts.insert(latentChart, at: 0)
        var chartHTML = ""
        for (i, chart) in charts.enumerated() {
            let name = i == 0 ? "divergence-latent.png" : "divergence-settle\(pairs.count == 1 ? "" : "-\(i)").png"
            try chart.writePNG(to: path(name))
            chartHTML += HTMLPage.figure(name, alt: i == 0 ? "distance between the runs' x̂₀ in latent space at every evaluation"
                                            : "distance between the runs' pictures and each run's distance to its last picture at every evaluation")
        }
        let definitions = RunDivergence.definitions(pictures: pictures)
        let schedules = Set(cmp.traces.map { "\($0.sampler) \($0.timesteps)" }).count > 1
            ? " The runs' samplers or schedules differ: evaluations are compared by their number, not by noise level." : ""
        // The PDF: the sentences and definitions, then the charts two to a page.
        for start in stride(from: 0, to: charts.count, by: 2) {
            let pair = charts[start..<min(charts.count, start + 2)]
            let head = start == 0 ? 60 + 22 * Double(sentences.count) + 80 : 40.0
            try pdf.page(width: 820, height: head + pair.reduce(0) { $0 + $1.height + 10 } + 40) { c in
                var y = 24.0
                if start == 0 {
                    c.text("Where the runs part", x: 30, y: y, font: .heading)
                    y += 30
                    for s in sentences { y += c.text(s, x: 30, y: y, font: .body, maxWidth: 760).height + 4 }
                    y += c.text(definitions + schedules, x: 30, y: y + 4, font: .small, colour: .muted, maxWidth: 760).height + 16
                }
                for chart in pair { try chart.draw(c, x: 30, y: y); y += chart.height + 10 }
            }
        }
        page.section("divergence", "Where the runs part", note: definitions + schedules,
                     "<ul>" + sentences.map { "<li>\(HTMLPage.escape($0))</li>" }.joined() + "</ul>" + chartHTML)
        return sentences
    }

    /// For the terminal: per pair, prompt 1's phrases on the later prompt's image against on its own.
    static func clipLines(_ cmp: Comparison, _ clip: ComparisonClip) -> [String] {
        let firstPhrases = clip.phrases.indices.filter { clip.owners[$0].contains(0) }
        return cmp.pairs.compactMap { pair in
            guard let ra = clip.runs.firstIndex(of: pair.base), let rb = clip.runs.firstIndex(of: pair.other), !firstPhrases.isEmpty else { return nil }
            func mean(_ r: Int) -> Double { firstPhrases.reduce(0.0) { $0 + Double(clip.cosines[$1][r]) } / Double(firstPhrases.count) }
            return String(format: "CLIP, seed %@: prompt 1's phrases score %.3f on prompt %d's image, %.3f on prompt 1's own (mean cosine)",
                          String(cmp.traces[pair.other].seed), mean(rb), pair.prompt + 1, mean(ra))
        }
    }
}
