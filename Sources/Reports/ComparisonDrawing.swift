import Analysis
import Foundation
import Imaging

extension ReportBuilder {
    /// The report of traces of different prompts: the prompts aligned word by word, the images and
    /// the animation in a grid (a row per prompt, a column per seed), each word's heat map in every
    /// run, where the runs part, and CLIP's view when measured. Returns the files and the lines
    /// the terminal summary adds.
    static func drawComparison(_ cmp: Comparison, frames: [DenoisingFrames], options: ReportOptions,
                               into dir: URL) throws -> (files: [String], lines: [String]) {
        var files: [String] = []
        func path(_ name: String) -> String {
            files.append(name)
            let url = dir.appendingPathComponent(name)
            try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            return url.path
        }
        let first = cmp.traces[0]
        let smooth = options.previews == .full
        let columns = cmp.cells[0].count
        let panel = max(160, min(256, (960 / Double(columns)).rounded(.down)))
        let pdf = try PDFDocument(path: dir.appendingPathComponent("report.pdf").path, title: "Pareidolia comparison — \(first.prompt)")
        files.append("report.pdf")
        var page = HTMLPage(title: "Pareidolia — comparison of \(cmp.prompts.count) prompts")
        page.style = "ins { background:#dafbe1; color:#1a7f37; text-decoration:none; font-weight:bold; } del { background:#ffebe9; color:#cf222e; } .diff { font-size:1.05rem; margin:.3em 0; } .diff b { color:var(--muted); margin-right:.6em; } h3 .kind { color:var(--muted); font-weight:normal; font-size:.9rem; }"
        let hasAttention = cmp.traces.allSatisfy { $0.wordMaps != nil }
        let pictures = cmp.traces.indices.map { cmp.traces[$0].image ?? (smooth ? frames[$0].x0.last : nil) }
        var clip: ComparisonClip?, clipError: String?
        do { clip = try ComparisonClip(cmp, pictures: pictures) } catch { clipError = "\(error)" }
        let hasClip = clip != nil || clipError != nil
        page.raw("""
        <header><h1>Comparison of \(cmp.prompts.count) prompts</h1>
        <nav><a href="#prompts">prompts</a><a href="#images">images</a><a href="#denoising">denoising</a><a href="#heatmaps">heat maps</a><a href="#divergence">where they part</a>\(hasClip ? "<a href=\"#clip\">CLIP</a>" : "")<a href="report.pdf">PDF</a></nav></header>
        """)
        var lines = ["comparison of \(cmp.shape)"]
        for p in cmp.prompts.indices.dropFirst() {
            let d = cmp.diffs[p]
            lines.append("prompt \(p + 1) against 1: " + (d.isEmpty ? "the same words (the prompts differ in emphasis, spacing or case)" : d.wordDiff))
        }

        // The prompts, aligned.
        // The page shows the diff as text (searchable, copyable); the PDF as chips.
        let facts = comparisonFacts(cmp)
        let card = PromptDiffCard(prompts: cmp.prompts.indices.map { cmp.diffWords($0) }, rows: facts)
        try pdf.page(width: card.width + 60, height: card.height + 60) { try card.draw($0, x: 30, y: 30) }
        var promptsHTML = cmp.prompts.indices.map { p in
            "<p class=\"diff\"><b>\(p + 1)</b>" + htmlDiff(cmp.diffWords(p)) + "</p>"
        }.joined()
        promptsHTML += "<table>" + facts.map { "<tr><th>\(HTMLPage.escape($0.0))</th><td>\(HTMLPage.escape($0.1))</td></tr>" }.joined() + "</table>"
        promptsHTML += "<table><tr><th>prompt</th><th>seed</th><th>trace</th><th class=\"num\">evaluations</th></tr>" + cmp.traces.indices.map { i in
            let t = cmp.traces[i]
            return "<tr><td>\((cmp.prompts.firstIndex(of: t.prompt) ?? 0) + 1)</td><td>\(t.seed)</td><td>\(HTMLPage.escape(t.directory))</td><td class=\"num\">\(t.evaluations)</td></tr>"
        }.joined() + "</table>"
        page.section("prompts", "The prompts, word by word",
                     note: "Words as the traces' word maps label them, each later prompt aligned with prompt 1 like a text diff (a longest common subsequence of the words): green words were added, red struck ones removed.",
                     promptsHTML)

        // The final images, and the animation with every run in step.
        func row(_ p: Int, _ picture: (Int) -> RGBImage?, dark: Bool) -> ComparisonGrid.Row {
            ComparisonGrid.Row(markup: diffMarkup(cmp.diffWords(p), dark: dark), cells: cmp.cells[p].map { i in
                i.flatMap { i in picture(i).map { ComparisonGrid.Cell(caption: "seed \(cmp.traces[i].seed)", image: $0) } }
            })
        }
        let images = ComparisonGrid(title: "The images", rows: cmp.prompts.indices.map { p in
            row(p, { pictures[$0] ?? frames[$0].x0.last }, dark: false)
        }, panel: panel, smooth: true, dark: false)
        try images.writePNG(to: path("images.png"))
        try pdf.page(width: images.width + 60, height: images.height + 60) { try images.draw($0, x: 30, y: 30) }
        page.section("images", "The images", note: "A row per prompt, a column per seed: each run's final image.",
                     HTMLPage.figure("images.png", alt: "the final images, a row per prompt and a column per seed"))

        let evaluations = cmp.traces.map(\.evaluations).min() ?? 0
        var gifFrames: [GIFFrame] = [], framePaths: [String] = [], frameLabels: [String] = []
        for e in 0..<evaluations {
            let label = evaluationLabel(first, e)
            let fig = ComparisonGrid(title: "x̂₀ · " + label, rows: cmp.prompts.indices.map { p in row(p, { frames[$0].x0[e] }, dark: true) },
                                     panel: panel, smooth: smooth, dark: true)
            let img = try fig.render()
            let name = String(format: "frames/%03d.png", e)
            try PNGFile.write(img, to: path(name))
            framePaths.append(name); frameLabels.append(label)
            gifFrames.append(GIFFrame(img, delayCentiseconds: e == evaluations - 1 ? lastFrameDelay : frameDelay))
            if e == evaluations / 2 {
                // The PDF shows half way (the end is the images' page): where the runs have parted.
                try pdf.page(width: fig.width + 60, height: fig.height + 100) { c in
                    c.text("Denoising, every run in step — half way", x: 30, y: 24, font: .heading)
                    c.text("every evaluation: denoising.gif", x: 30, y: 48, font: .small, colour: .muted)
                    try fig.draw(c, x: 30, y: 70)
                }
            }
        }
        try GIFWriter.write(gifFrames, to: path("denoising.gif"))
        page.section("denoising", "How the noise became each picture, in step",
                     note: "x̂₀, the sampler's estimate of the finished image at each evaluation (\(smooth ? "decoded with the run's VAE" : "A1111's cheap latent map")), for every run at the same evaluation. Drag the slider to scrub.",
                     HTMLPage.scrubber(frames: framePaths, labels: frameLabels, gif: "denoising.gif"))

        if hasAttention {
            try comparisonHeatMaps(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        } else {
            page.section("heatmaps", "Heat maps", note: "Some of these runs were traced with --trace-attention off: no attention maps to compare.", "")
        }
        lines += try comparisonDivergence(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        if let clipError {
            page.section("clip", "Does each image keep what the other prompts asked for?", note: "CLIP was measured, but the images could not be scored against each other: \(clipError)", "")
        } else if let clip {
            let matrix = ClipMatrix(clip: clip, runPrompts: clip.runs.map { cmp.prompts.firstIndex(of: cmp.traces[$0].prompt) ?? 0 })
            try matrix.writePNG(to: path("clip-matrix.png"))
            try pdf.page(width: matrix.width + 60, height: matrix.height + 60) { try matrix.draw($0, x: 30, y: 30) }
            page.section("clip", "Does each image keep what the other prompts asked for?",
                         note: "CLIP similarity (the CLIP the traces were measured with) of each run's final image with every prompt's phrases: read a row across to see which images show a phrase; an outlined cell is a run scored on its own prompt's phrase.",
                         HTMLPage.figure("clip-matrix.png", alt: "CLIP cosine of every run's final image with every prompt's phrases"))
            lines += clipLines(cmp, clip)
        }
        try finish(page: page, pdf: pdf, dir: dir)
        files.append("index.html")
        return (files, lines)
    }

    /// What the runs share (or do not): seeds, negative prompts, sampler, size, model.
    static func comparisonFacts(_ cmp: Comparison) -> [(String, String)] {
        func distinct(_ f: (ReportTrace) -> String) -> String {
            var seen: [String] = []
            for t in cmp.traces where !seen.contains(f(t)) { seen.append(f(t)) }
            return seen.joined(separator: " / ")
        }
        let t = cmp.traces[0]
        return [
            ("runs", cmp.shape),
            ("negative prompt", distinct { $0.negativePrompt.isEmpty ? "(none)" : $0.negativePrompt }),
            ("sampler", distinct { "\($0.sampler), \($0.steps) steps (\($0.evaluations) UNet evaluations), guidance \(RunCard.number($0.guidance))" }),
            ("size", "\(t.width) × \(t.height) (latent \(t.latentWidth) × \(t.latentHeight))"),
            ("model", "\(URL(fileURLWithPath: t.modelPath).lastPathComponent) [\(t.modelHash)] — \(t.modelSummary)"),
        ]
    }

    /// A prompt's words as HTML, changes marked with <ins> and <del>.
    static func htmlDiff(_ words: [(text: String, change: Comparison.Change)]) -> String {
        Comparison.pieces(words).map { piece in
            let text = HTMLPage.escape(piece.text)
            return (piece.space ? " " : "") + (piece.change == .added ? "<ins>\(text)</ins>" : piece.change == .removed ? "<del>\(text)</del>" : text)
        }.joined()
    }
}
