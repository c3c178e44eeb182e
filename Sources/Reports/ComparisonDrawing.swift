import Analysis
import Foundation
import Imaging

extension ReportBuilder {
    /// The report of traces of different prompts (or of a prompt with and without the merge
    /// remedy): the rows aligned word by word, the images and the animation in a grid (a row per
    /// prompt or remedy stage, a column per seed), each word's heat map in every run, where the
    /// runs part, and CLIP's view when measured. Returns the files and the lines the terminal
    /// summary adds. The remedy report (RemedyReport) draws the same sections in its own order.
    static func drawComparison(_ cmp: Comparison, frames: [DenoisingFrames], options: ReportOptions,
                               into dir: URL) throws -> (files: [String], lines: [String]) {
        var files: [String] = []
        func path(_ name: String) -> String { reportPath(name, in: dir, files: &files) }
        let first = cmp.traces[0]
        let pdf = try PDFDocument(path: dir.appendingPathComponent("report.pdf").path, title: "Pareidolia comparison — \(first.prompt)")
        files.append("report.pdf")
        let what = cmp.hasRemedy ? "\(first.prompt) with and without the merge remedy" : "\(cmp.prompts.count) prompts"
        var page = HTMLPage(title: "Pareidolia — comparison of \(what)")
        page.style = comparisonStyle
        let pictures = comparisonPictures(cmp, frames: frames, options: options)
        var clip: ComparisonClip?, clipError: String?
        do { clip = try ComparisonClip(cmp, pictures: pictures) } catch { clipError = "\(error)" }
        let hasClip = clip != nil || clipError != nil
        page.raw("""
        <header><h1>Comparison of \(HTMLPage.escape(what))</h1>
        <nav><a href="#prompts">prompts</a><a href="#images">images</a><a href="#denoising">denoising</a><a href="#heatmaps">heat maps</a><a href="#divergence">where they part</a>\(hasClip ? "<a href=\"#clip\">CLIP</a>" : "")<a href="report.pdf">PDF</a></nav></header>
        """)
        var lines = ["comparison of \(cmp.shape)"]
        for p in cmp.prompts.indices.dropFirst() { lines.append("\(cmp.against(p)): \(cmp.difference(p))") }

        try comparisonPrompts(cmp, page: &page, pdf: pdf)
        try comparisonImages(cmp, pictures: pictures, frames: frames, page: &page, pdf: pdf, path: path)
        try comparisonDenoising(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        if cmp.traces.allSatisfy({ $0.wordMaps != nil }) {
            try comparisonHeatMaps(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        } else {
            page.section("heatmaps", "Heat maps", note: "Some of these runs were traced with --trace-attention off: no attention maps to compare.", "")
        }
        lines += try comparisonDivergence(cmp, frames: frames, options: options, page: &page, pdf: pdf, path: path)
        if let clipError {
            page.section("clip", "Does each image keep what the other prompts asked for?", note: "CLIP was measured, but the images could not be scored against each other: \(clipError)", "")
        } else if let clip {
            let matrix = ClipMatrix(clip: clip, runPrompts: clip.runs.map { cmp.row(of: $0) })
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

    /// The page's own rules: the word diff's marks, a word's kind beside its heading, a row's label.
    static let comparisonStyle = """
        ins { background:#dafbe1; color:#1a7f37; text-decoration:none; font-weight:bold; } del { background:#ffebe9; color:#cf222e; }
        .diff { font-size:1.05rem; margin:.3em 0; } .diff b { color:var(--muted); margin-right:.6em; } .diff .same { color:var(--muted); font-style:italic; }
        h3 .kind, .diff .kind { color:var(--muted); font-weight:normal; font-size:.9rem; }
        .rowlabel { color:var(--muted); font-weight:bold; font-size:.9rem; margin:.5em 0 .2em; }
        """

    /// A file of the report: its path in `dir` (folders made), listed in `files`.
    static func reportPath(_ name: String, in dir: URL, files: inout [String]) -> String {
        files.append(name)
        let url = dir.appendingPathComponent(name)
        try? FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        return url.path
    }

    /// Each run's final picture: its image, else (decoded previews) its last x̂₀.
    static func comparisonPictures(_ cmp: Comparison, frames: [DenoisingFrames], options: ReportOptions) -> [RGBImage?] {
        cmp.traces.indices.map { cmp.traces[$0].image ?? (options.previews == .full ? frames[$0].x0.last : nil) }
    }

    /// Side of a grid's picture: a 960-px row of columns, 160–256 px each.
    static func comparisonPanel(_ cmp: Comparison) -> Double { max(160, min(256, (960 / Double(cmp.cells[0].count)).rounded(.down))) }

    /// Row p of a picture grid: its label, its words (changes against row 0 marked; "the same
    /// words" where only the remedy differs), a picture per column.
    static func comparisonRow(_ cmp: Comparison, _ p: Int, dark: Bool, _ picture: (Int) -> RGBImage?) -> ComparisonGrid.Row {
        let words = p > 0 && cmp.diffs[p].isEmpty && cmp.stages[p] != cmp.stages[0]
            ? "<span foreground=\"\(dark ? "#9DA7B3" : "#59636E")\" style=\"italic\">the same words</span>" : diffMarkup(cmp.diffWords(p), dark: dark)
        return ComparisonGrid.Row(label: cmp.hasRemedy ? cmp.rowLabel(p) : "\(p + 1)", markup: words, cells: cmp.cells[p].map { i in
            i.flatMap { i in picture(i).map { ComparisonGrid.Cell(caption: "seed \(cmp.traces[i].seed)", image: $0) } }
        })
    }

    /// The rows' words aligned (text on the page, chips in the PDF), what the runs share, the runs.
    static func comparisonPrompts(_ cmp: Comparison, page: inout HTMLPage, pdf: PDFDocument) throws {
        let facts = comparisonFacts(cmp)
        let same = cmp.prompts.indices.map { p in p > 0 && cmp.diffs[p].isEmpty ? cmp.difference(p) : nil }
        var card = PromptDiffCard(prompts: cmp.prompts.indices.map { cmp.diffWords($0) }, labels: cmp.prompts.indices.map { cmp.rowLabel($0, short: true) },
                                  notes: same, rows: facts)
        if cmp.hasRemedy { card.title = "The runs: prompts and remedies" }
        try pdf.page(width: card.width + 60, height: card.height + 60) { try card.draw($0, x: 30, y: 30) }
        var html = cmp.prompts.indices.map { p in
            let remedy = cmp.remedyNote(p).map { " <span class=\"kind\">— \(HTMLPage.escape($0))</span>" } ?? ""
            let words = same[p].map { "<span class=\"same\">\(HTMLPage.escape($0))</span>" } ?? htmlDiff(cmp.diffWords(p)) + remedy
            return "<p class=\"diff\"><b>\(HTMLPage.escape(cmp.hasRemedy ? cmp.rowLabel(p) : String(p + 1)))</b>" + words + "</p>"
        }.joined()
        html += "<table>" + facts.map { "<tr><th>\(HTMLPage.escape($0.0))</th><td>\(HTMLPage.escape($0.1))</td></tr>" }.joined() + "</table>"
        html += "<table><tr><th>\(cmp.hasRemedy ? "row" : "prompt")</th><th>seed</th><th>trace</th><th class=\"num\">evaluations</th></tr>" + cmp.traces.indices.map { i in
            let t = cmp.traces[i], p = cmp.row(of: i)
            return "<tr><td>\(HTMLPage.escape(cmp.hasRemedy ? cmp.rowLabel(p) : String(p + 1)))</td><td>\(t.seed)</td><td>\(HTMLPage.escape(t.directory))</td><td class=\"num\">\(t.evaluations)</td></tr>"
        }.joined() + "</table>"
        page.section("prompts", cmp.hasRemedy ? "The runs: prompts and remedies" : "The prompts, word by word",
                     note: "Words as the traces' word maps label them, each later row aligned with the first like a text diff (a longest common subsequence of the words): green words were added, red struck ones removed.",
                     html)
    }

    /// The final images: a row per prompt (or remedy stage), a column per seed.
    static func comparisonImages(_ cmp: Comparison, pictures: [RGBImage?], frames: [DenoisingFrames], title: String = "The images",
                                 page: inout HTMLPage, pdf: PDFDocument, path: (String) -> String) throws {
        let images = ComparisonGrid(title: title, rows: cmp.prompts.indices.map { p in
            comparisonRow(cmp, p, dark: false) { pictures[$0] ?? frames[$0].x0.last }
        }, panel: comparisonPanel(cmp), smooth: true, dark: false)
        try images.writePNG(to: path("images.png"))
        try pdf.page(width: images.width + 60, height: images.height + 60) { try images.draw($0, x: 30, y: 30) }
        let kind = cmp.hasRemedy ? "run kind (before, each remedy stage)" : "prompt"
        let layout = images.sideBySide ? "One seed: a column per \(kind), side by side" : "A row per \(kind), a column per seed"
        page.section("images", title, note: "\(layout): each run's final image.",
                     HTMLPage.figure("images.png", alt: "the final images, " + layout.lowercased()))
    }

    /// The animation with every run in step (frames, the GIF, a slider); the PDF shows half way.
    static func comparisonDenoising(_ cmp: Comparison, frames: [DenoisingFrames], options: ReportOptions,
                                    page: inout HTMLPage, pdf: PDFDocument, path: (String) -> String) throws {
        let smooth = options.previews == .full, panel = comparisonPanel(cmp)
        let evaluations = cmp.traces.map(\.evaluations).min() ?? 0
        var gifFrames: [GIFFrame] = [], framePaths: [String] = [], frameLabels: [String] = []
        for e in 0..<evaluations {
            let label = evaluationLabel(cmp.traces[0], e)
            let fig = ComparisonGrid(title: "x̂₀ · " + label, rows: cmp.prompts.indices.map { p in comparisonRow(cmp, p, dark: true) { frames[$0].x0[e] } },
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
