import Analysis
import Checkpoints
import Diffusion
import Foundation
import Imaging
import Models

extension ReportBuilder {
    /// The GIF's pace: a quarter second a frame, the last one held.
    static let frameDelay = 25, lastFrameDelay = 200
    /// How much of the colour replaces the image where attention is highest (DAAM: 1, which
    /// hides the picture under the hottest spot; 0.75 keeps it readable).
    static let overlayStrength: Float = 0.75

    /// Draws every figure into `dir` and writes index.html and report.pdf; returns the files.
    static func draw(traces: [ReportTrace], frames: [DenoisingFrames], words: [Int], options: ReportOptions, into dir: URL) throws -> [String] {
        var files: [String] = []
        func path(_ name: String) -> String {
            files.append(name)
            let url = dir.appendingPathComponent(name)
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            return url.path
        }
        let first = traces[0]
        let sweep = traces.count > 1
        let smooth = options.previews == .full
        let evaluations = traces.map(\.evaluations).min() ?? 0
        // Pictures at a readable size: 512-px images shown at 256 in a sweep, 384 alone.
        let panel = Double(min(first.width, sweep ? 256 : 384)) < 192 ? 192.0 : Double(min(first.width, sweep ? 256 : 384))
        let pdf = try PDFDocument(path: dir.appendingPathComponent("report.pdf").path, title: "Pareidolia report — \(first.prompt)")
        files.append("report.pdf")
        var page = HTMLPage(title: "Pareidolia — \(first.prompt)")
        let hasAttention = !words.isEmpty && traces.allSatisfy { $0.wordMaps != nil }
        let usesEmbeddings = hasAttention && !((first.run["embeddings"] as? [Any])?.isEmpty ?? true)
        let hasClip = traces.contains { FileManager.default.fileExists(atPath: URL(fileURLWithPath: $0.directory).appendingPathComponent("clip.json").path) }
        page.raw("""
        <header><h1>\(HTMLPage.escape(first.prompt.isEmpty ? "(empty prompt)" : first.prompt))</h1>
        <nav><a href="#run">run</a><a href="#denoising">denoising</a><a href="#heatmaps">heat maps</a>\(hasClip ? "<a href=\"#clip\">CLIP</a>" : "")\(hasAttention ? "<a href=\"#time\">over time</a><a href=\"#overlap\">overlap</a>" : "")\(usesEmbeddings ? "<a href=\"#embeddings\">embeddings</a>" : "")<a href="report.pdf">PDF</a></nav></header>
        """)

        // Run card.
        var card = RunCard(traces: traces)
        try pdf.page(width: card.width + 60, height: card.height + 60) { try card.draw($0, x: 30, y: 30) }
        card.showTitle = false
        try card.writePNG(to: path("run-card.png"))
        page.section("run", "Run", HTMLPage.figure("run-card.png", alt: "run card: prompt, seed, sampler, model", cls: "card-img") + runTable(traces, card: card))

        // Denoising animation: frames, GIF, contact sheets.
        var gifFrames: [GIFFrame] = [], framePaths: [String] = [], frameLabels: [String] = []
        for e in 0..<evaluations {
            let cols = zip(traces, frames).map { DenoisingFrame.Column(title: "seed \($0.seed)", x0: $1.x0[e], xt: $1.xt[e]) }
            let label = evaluationLabel(first, e)
            var fig = DenoisingFrame(columns: cols, label: label, panel: panel, smoothX0: smooth)
            fig.subtitle = conditioningLine(first, e)
            let img = try fig.render()
            let name = String(format: "frames/%03d.png", e)
            try PNGFile.write(img, to: path(name))
            framePaths.append(name); frameLabels.append(label)
            gifFrames.append(GIFFrame(width: img.width, height: img.height, rgb: img.pixels,
                                      delayCentiseconds: e == evaluations - 1 ? lastFrameDelay : frameDelay))
            if e == evaluations - 1 {
                // Wide enough for the heading even when a small run's frame is narrower.
                try pdf.page(width: max(fig.width, 300) + 60, height: fig.height + 100) { c in
                    c.text("Denoising — the last evaluation", x: 30, y: 24, font: .heading)
                    c.text("every evaluation: denoising.gif", x: 30, y: 48, font: .small, colour: .muted)
                    try fig.draw(c, x: 30, y: 70)
                }
            }
        }
        try GIFWriter.write(gifFrames, to: path("denoising.gif"))
        var denoising = HTMLPage.scrubber(frames: framePaths, labels: frameLabels, gif: "denoising.gif")
        for (t, f) in zip(traces, frames) {
            let sheet = ContactSheet(title: "x̂₀ at every evaluation\(sweep ? " — seed \(t.seed)" : "") (\(options.previews == .full ? "VAE decode" : "cheap latent map"))",
                                     images: f.x0, labels: (0..<t.evaluations).map { evaluationLabel(t, $0, short: true) }, thumb: 120, smooth: smooth)
            let name = sweep ? "contact-sheet-\(t.seed).png" : "contact-sheet.png"
            try sheet.writePNG(to: path(name))
            try pdf.page(width: sheet.width + 60, height: sheet.height + 60) { try sheet.draw($0, x: 30, y: 30) }
            denoising += HTMLPage.figure(name, alt: "x̂₀ at every evaluation, seed \(t.seed)")
        }
        // Prompt editing, alternation, AND: where the conditioning changed (a change late in the run
        // that still moves the picture is what this shows).
        let changes = traces[0].conditioning
        if changes.count > 1 {
            denoising = "<p class=\"note\">The prompt's conditioning changed during the run (A1111's prompt editing): " + changes.map { c in
                "from evaluation \(c.from + 1), “\(HTMLPage.escape(c.prompts.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " AND ")))”"
            }.joined(separator: "; ") + ". Each frame's label says which text it saw.</p>" + denoising
        }
        page.section("denoising", "How the noise became the picture",
                     note: "x̂₀ is the sampler's estimate of the finished image at each evaluation (\(options.previews == .full ? "decoded with the run's VAE" : "A1111's cheap latent map")); x_t is the noisy latent that evaluation was given (cheap latent map, scaled to unit variance). Drag the slider to scrub.",
                     denoising)

        // Word heat maps, strips, shares, overlap.
        guard !words.isEmpty, traces.allSatisfy({ $0.wordMaps != nil }) else {
            page.section("heatmaps", "Heat maps", note: "This run was traced with --trace-attention off: no attention maps.", "")
            try finish(page: page, pdf: pdf, dir: dir)
            files.append("index.html")
            return files
        }
        let colourMap = options.colourMap
        let scale: ColourScale = { colourMap($0) }
        let norm = options.normalisation
        var blocks: [String] = [], pdfHeat: [HeatMapFigure] = []
        let labels = words.map { first.wordMaps!.words[$0].label }
        var perTraceHeat: [[WordHeatMap]] = []
        for t in traces {
            let maps = t.wordMaps!
            let all = HeatMaps.wordHeatMaps(maps, imageWidth: t.width, imageHeight: t.height, normalisation: norm)
            perTraceHeat.append(words.map { all[$0] })
        }
        for (k, w) in words.enumerated() {
            // The figure names the word; a sweep's row of seeds gets a heading of its own.
            var block = (sweep ? "<h3>\(HTMLPage.escape(labels[k]))</h3>" : "") + "<div class=\"grid\">"
            for (ti, t) in traces.enumerated() {
                let heat = perTraceHeat[ti][k]
                guard let base = t.image ?? frames[ti].x0.last else { continue }
                let overlay = HeatMaps.blend(image: base, heat: heat, colourMap: colourMap, strength: overlayStrength)
                let weight = t.weight(ofWordAt: t.wordMaps!.words[w].positions)
                let fig = HeatMapFigure(label: labels[k], weight: weight, overlay: overlay, scale: scale, panel: min(256, Double(t.width) * 2),
                                        note: sweep ? "seed \(t.seed)" : "")
                let name = String(format: "heatmaps/%@%02d-%@.png", sweep ? "\(t.seed)/" : "", k, fileSafe(labels[k]))
                try fig.writePNG(to: path(name))
                if ti == 0 || sweep { pdfHeat.append(fig) }
                block += HTMLPage.figure(name, alt: "heat map of \(labels[k])\(sweep ? ", seed \(t.seed)" : "")")
            }
            blocks.append(block + "</div>")
        }
        // Start and end tokens, apart from the words (per-word normalised).
        var special = ""
        for (ti, t) in traces.enumerated() {
            guard let maps = t.wordMaps, !maps.specialMaps.isEmpty, let base = t.image ?? frames[ti].x0.last else { continue }
            // As many evaluations as the trace holds x̂₀ for.
            let tokens = maps.specialMaps.map { ($0.label, Array($0.maps.prefix(t.x0.shape[0]))) }
            let heats = HeatMaps.wordHeatMaps(words: tokens.map { ($0.0, []) }, maps: tokens.map(\.1),
                                              latentWidth: maps.width, latentHeight: maps.height, imageWidth: t.width, imageHeight: t.height,
                                              normalisation: .perWord)
            for (k, heat) in heats.enumerated() {
                let overlay = HeatMaps.blend(image: base, heat: heat, colourMap: colourMap, strength: overlayStrength)
                let fig = HeatMapFigure(label: heat.label, weight: 1, overlay: overlay, scale: scale, panel: min(256, Double(t.width) * 2),
                                        note: sweep ? "seed \(t.seed)" : "")
                let name = "heatmaps/\(sweep ? "\(t.seed)/" : "")\(k == 0 ? "start" : "end").png"
                try fig.writePNG(to: path(name))
                special += HTMLPage.figure(name, alt: "heat map of the \(k == 0 ? "start" : "end") token\(sweep ? ", seed \(t.seed)" : "")")
            }
        }
        if !special.isEmpty { special = "<h3>start and end tokens</h3><div class=\"grid\">" + special + "</div>" }
        page.section("heatmaps", "Which word went where",
                     note: "DAAM: each word's cross-attention summed over all evaluations and layers, its sub-tokens averaged, upsampled bicubically to the image, clamped at 0 and \(norm == .perWord ? "min–max normalised per word (each map uses its whole colour range; compare shapes, not strengths)" : "normalised over all words together (strengths comparable)").",
                     HTMLPage.picker(words: labels, blocks: blocks) + special)
        try pdfGrid(pdf, title: "Which word went where (\(norm == .perWord ? "per-word" : "global") normalisation)", figures: pdfHeat)

        // Over time and overlap, per trace.
        var timeHTML = "", overlapHTML = ""
        for t in traces {
            let maps = t.wordMaps!
            let suffix = sweep ? "-\(t.seed)" : ""
            let shown = Array(0..<min(t.evaluations, maps.evaluations))
            let strips = AttentionStrips(labels: labels, maps: words.map { w in shown.map { maps.maps[w][$0] } },
                                         mapWidth: maps.width, mapHeight: maps.height,
                                         columnLabels: shown.map { String($0 + 1) }, scale: scale,
                                         thumb: shown.count > 30 ? 28 : 44)
            try strips.writePNG(to: path("attention-strips\(suffix).png"))
            let shares = HeatMaps.attentionShares(maps)
            let chart = LineChart(title: "Each word's share of the attention\(sweep ? " — seed \(t.seed)" : "")",
                                  xTitle: "evaluation", yTitle: "share of attention (content tokens)",
                                  xs: shown.map { Double($0 + 1) }, series: words.map { w in
                                      LineChart.Series(label: maps.words[w].label, values: shown.map { shares[w][$0] })
                                  })
            var c2 = chart
            c2.percent = true
            try c2.writePNG(to: path("attention-share\(suffix).png"))
            let summed = words.map { w in (0..<maps.evaluations).reduce(into: [Float](repeating: 0, count: maps.width * maps.height)) { acc, e in
                for i in acc.indices { acc[i] += maps.maps[w][e][i] }
            } }
            var matrix = OverlapMatrix(labels: labels, maps: summed)
            matrix.title = "Overlap of each pair of words' maps\(sweep ? " — seed \(t.seed)" : "")"
            try matrix.writePNG(to: path("overlap\(suffix).png"))
            timeHTML += HTMLPage.figure("attention-strips\(suffix).png", alt: "each word's map at every evaluation\(sweep ? ", seed \(t.seed)" : "")")
                + HTMLPage.figure("attention-share\(suffix).png", alt: "share of attention per word over the evaluations")
            overlapHTML += HTMLPage.figure("overlap\(suffix).png", alt: "Pearson and IoU of every pair of words' maps", caption: sweep ? "seed \(t.seed)" : nil)
            try pdf.page(width: max(strips.width, c2.width) + 60, height: strips.height + c2.height + 100) { c in
                try strips.draw(c, x: 30, y: 30)
                try c2.draw(c, x: 30, y: 60 + strips.height)
            }
            try pdf.page(width: matrix.width + 60, height: matrix.height + 60) { try matrix.draw($0, x: 30, y: 30) }
        }
        try embeddingsSection(traces: traces, options: options, page: &page, pdf: pdf, path: path)
        try clipSection(traces: traces, page: &page, pdf: pdf, path: path)
        page.section("time", "Attention over time", note: "Each row is normalised over its own evaluations, so a word whose attention fades shows it. The share is a word's attention summed over the image, over all the prompt's words (start and end tokens left out).", timeHTML)
        page.section("overlap", "Where words overlap", note: "Two subjects that land on one region (both numbers high) are the first sign of a merge; `pareidolia merge` follows a pair evaluation by evaluation.", overlapHTML)
        try finish(page: page, pdf: pdf, dir: dir)
        files.append("index.html")
        return files
    }

    /// When the run used embeddings: their nearest tokens, their cosines, and a merge page for
    /// every pair of them in the prompt.
    static func embeddingsSection(traces: [ReportTrace], options: ReportOptions, page: inout HTMLPage, pdf: PDFDocument,
                                  path: (String) -> String) throws {
        let first = traces[0]
        let recorded = PairStudy.recordedEmbeddings(first.run)
        guard !recorded.isEmpty else { return }
        let study: EmbeddingStudy
        do {
            let modelPath = try ReportBuilder.modelPath(for: first, override: options.model, otherwise: "")
            let sd = try StableDiffusionModel.load(modelPath, vaeEncoder: false, fast: [])
            let embeddings = try recorded.map { try EmbeddingLoader.load($0, tokenizer: sd.tokenizer, width: sd.textEncoder.config.hiddenSize) }
            study = try EmbeddingStudy(model: sd, embeddings: embeddings, top: 8, prompt: first.prompt, classes: [])
        } catch {
            page.section("embeddings", "Embeddings", note: "The run used \(recorded.map { $0.split(separator: "=")[0] }.joined(separator: ", ")), but they could not be studied: \(error)", "")
            return
        }
        var html = ""
        let table = NeighbourTable(study: study)
        try table.writePNG(to: path("embeddings-neighbours.png"))
        html += HTMLPage.figure("embeddings-neighbours.png", alt: "nearest vocabulary tokens of each embedding vector")
        var pdfFigures: [Figure] = [table]
        if study.vectors.count > 1 {
            let m = OverlapMatrix(labels: study.vectors.map(\.label), cosine: study.cosine, title: "Cosine between the embedding vectors",
                                  footnote: "input vectors, before the text encoder; near 1: the model is given almost the same subject twice")
            try m.writePNG(to: path("embeddings-cosine.png"))
            html += HTMLPage.figure("embeddings-cosine.png", alt: "cosine matrix of the embedding vectors")
            pdfFigures.append(m)
        }
        // A merge page for each pair of triggers the prompt uses.
        let inPrompt = study.groups.filter { g in first.wordMaps?.index(of: g) != nil }
        let seeds = traces.map { String($0.seed) }
        for i in inPrompt.indices {
            for j in inPrompt.indices where j > i {
                let pair = try PairStudy(folders: traces.map(\.directory), a: inPrompt[i], b: inPrompt[j], model: options.model)
                let fig = MergePage(study: pair, seeds: seeds, images: traces.map(\.image))
                let name = "merge-\(fileSafe(inPrompt[i]))-\(fileSafe(inPrompt[j])).png"
                try fig.writePNG(to: path(name))
                html += HTMLPage.figure(name, alt: "do \(inPrompt[i]) and \(inPrompt[j]) merge: the verdict and their overlap over time")
                pdfFigures.append(fig)
            }
        }
        for f in pdfFigures { try pdf.page(width: f.width + 60, height: f.height + 60) { try f.draw($0, x: 30, y: 30) } }
        page.section("embeddings", "Embeddings — why two subjects might merge", note: "Where the textual-inversion vectors sit, and whether their subjects' attention lands on one region.", html)
    }

    /// When `pareidolia clip` has measured the trace: each phrase's CLIP similarity over the steps,
    /// phrases that fall or never rise flagged, and the final ranking.
    static func clipSection(traces: [ReportTrace], page: inout HTMLPage, pdf: PDFDocument, path: (String) -> String) throws {
        var html = ""
        for t in traces {
            guard let stored = StoredClip(directory: t.directory) else { continue }
            let (labels, evals, kinds) = (stored.labels, stored.evaluations, stored.kinds)
            let series = labels.indices.map { l in evals.indices.map { Double(stored.similarity[$0][l]) } }
            var chart = LineChart(title: "CLIP similarity of x̂₀ with each phrase\(traces.count > 1 ? " — seed \(t.seed)" : "")",
                                  xTitle: "evaluation", yTitle: "cosine", xs: evals.map { Double($0 + 1) },
                                  series: labels.indices.map { LineChart.Series(label: Self.clipLegend(labels[$0], kind: kinds[$0]), values: series[$0], dashed: kinds[$0] == "prompt") })
            let all = series.flatMap { $0 }
            chart.yRange = ((all.min() ?? 0) - 0.05)...((all.max() ?? 1) + 0.05)
            let suffix = traces.count > 1 ? "-\(t.seed)" : ""
            try chart.writePNG(to: path("clip\(suffix).png"))
            // Lost: ends well below its best; never rose: ends no higher than it started.
            let ranked = labels.indices.sorted { (series[$0].last ?? 0) > (series[$1].last ?? 0) }.map { l -> (label: String, what: String, last: Double, flag: String) in
                let s = series[l], last = s.last ?? 0, best = s.max() ?? 0, first = s.first ?? 0
                let flag = last < best - 0.05 ? "lost on the way (best \(String(format: "%.3f", best)) at evaluation \(evals[s.firstIndex(of: best) ?? 0] + 1))"
                    : last <= first + 0.01 ? "never rose" : ""
                return (labels[l], Self.clipKindName(kinds[l]), last, flag)
            }
            let rows = ranked.map { r in
                "<tr><td>\(HTMLPage.escape(r.label))</td><td>\(r.what)</td><td class=\"num\">\(String(format: "%.3f", r.last))</td><td>\(HTMLPage.escape(r.flag))</td></tr>"
            }
            // The PDF page: the chart, then the final ranking under it.
            try pdf.page(width: chart.width + 60, height: chart.height + 80 + 18 * Double(ranked.count)) { c in
                try chart.draw(c, x: 30, y: 30)
                c.text("Final ranking", x: 40, y: chart.height + 34, font: Font(size: 13, bold: true))
                for (i, r) in ranked.enumerated() {
                    let y = chart.height + 56 + 18 * Double(i)
                    c.text(String(format: "%.3f", r.last), x: 40, y: y, font: .small)
                    c.text("\(r.label) (\(r.what))" + (r.flag.isEmpty ? "" : " — \(r.flag)"), x: 96, y: y, font: .small,
                           colour: r.flag.isEmpty ? .ink : .muted, maxWidth: chart.width - 80, oneLine: true)
                }
            }
            html += HTMLPage.figure("clip\(suffix).png", alt: "CLIP similarity per phrase over the evaluations")
                + "<table><tr><th>phrase</th><th>kind</th><th class=\"num\">final cosine</th><th></th></tr>" + rows.joined() + "</table>"
        }
        guard !html.isEmpty else { return }
        page.section("clip", "Which parts of the prompt the picture kept", note: "CLIP similarity (pareidolia clip) of x̂₀, decoded with the run's VAE, with the whole prompt (dashed) and each phrase; the table ranks them at the end.", html)
    }

    /// What a CLIP label is, from its kind in clip.json.
    static func clipKindName(_ kind: String) -> String {
        ["prompt": "whole prompt", "negative": "negative prompt", "extra": "asked"][kind] ?? "phrase"
    }

    /// A CLIP chart's legend entry: a phrase's own text; the others say what they are first.
    static func clipLegend(_ label: String, kind: String) -> String {
        kind == "phrase" ? label : kind == "prompt" ? clipKindName(kind) : "\(clipKindName(kind)): \(label)"
    }

    static func finish(page: HTMLPage, pdf: PDFDocument, dir: URL) throws {
        try pdf.finish()
        try AtomicFile.write(Data(page.render().utf8), to: dir.appendingPathComponent("index.html").path)
    }

    /// Heat maps laid out on A4-ish pages, as many as fit.
    static func pdfGrid(_ pdf: PDFDocument, title: String, figures: [HeatMapFigure]) throws {
        guard let f0 = figures.first else { return }
        let cols = max(1, Int(760 / (f0.width + 16))), rowsPerPage = max(1, Int(900 / (f0.height + 16)))
        var i = 0
        while i < figures.count {
            let chunk = Array(figures[i..<min(figures.count, i + cols * rowsPerPage)])
            let rows = (chunk.count + cols - 1) / cols
            try pdf.page(width: 820, height: 90 + Double(rows) * (f0.height + 16)) { c in
                c.text(title, x: 30, y: 24, font: .heading, maxWidth: 760, oneLine: true)
                for (k, f) in chunk.enumerated() {
                    try f.draw(c, x: 30 + Double(k % cols) * (f0.width + 16), y: 60 + Double(k / cols) * (f0.height + 16))
                }
            }
            i += chunk.count
        }
    }

    /// A file-name-safe form of a word.
    static func fileSafe(_ s: String) -> String {
        let kept = s.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) ? Character($0) : "_" }
        let out = String(kept.prefix(32))
        return out.isEmpty ? "word" : out
    }

    /// The run card's facts as text (searchable, copyable): the prompt, then the card's own rows.
    static func runTable(_ traces: [ReportTrace], card: RunCard) -> String {
        let rows = [("prompt", traces[0].prompt)] + card.rows
        // Shown instead of the card's picture on narrow screens, where its text would be too small.
        return "<dl class=\"card-text\">" + rows.map { "<dt>\(HTMLPage.escape($0.0))</dt><dd>\(HTMLPage.escape($0.1))</dd>" }.joined() + "</dl>"
    }
}
