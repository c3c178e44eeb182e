import Analysis
import Diffusion
import Foundation
import Imaging
import Models
import Probes
@testable import Reports
import Tensors
import Testing
import TestSupport

/// `pareidolia report` over traces of different prompts: a comparison, built from real traces of
/// the tiny fixture model (euler, 4 steps, 64×64, guidance 50 so that its random weights let the
/// prompt show), read back from the files it writes.
@Suite("Comparison report", .serialized)
struct ComparisonReportTests {
    typealias Scratch = ReportBuilderTests.Scratch
    static let witch = "a witch and her black cat", dancing = "a witch and her white cat dancing"

    /// A trace as `generate --trace` writes it (with `separation`, as `generate --separate` does);
    /// `hash` is the model hash run.json records.
    static func trace(_ model: StableDiffusionModel, at dir: String, prompt: String, seed: UInt64, width: Int = 64,
                      hash: String = "0000000000", separation: Separation? = nil) throws -> String {
        var settings = GenerationSettings(prompt: prompt)
        (settings.seed, settings.steps, settings.sampler, settings.guidance) = (seed, 4, .euler, 50)
        (settings.width, settings.height) = (width, 64)
        settings.separation = separation
        let recorder = try TraceRecorder(directory: dir, unet: model.unet, engineVersion: "test",
                                         extra: ["model": ["path": Fixtures.path("tiny-sd"), "hash": hash, "summary": "tiny-sd"]])
        let out = try TextToImagePipeline(model: model).generate(settings, observer: recorder)
        try recorder.writeImage(try RGBImage(tensor: out.image), text: [])
        if let e = recorder.lastError { throw e }
        return dir
    }

    static func tinySD() throws -> StableDiffusionModel {
        try BLAS.load()
        return try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
    }

    /// The "part from evaluation k; … evaluation m" numbers of a summary line.
    static func km(_ line: String) -> (k: Int, m: Int)? {
        let ns = line as NSString
        guard let re = try? NSRegularExpression(pattern: "part from evaluation (\\d+); .*?evaluation (\\d+)"),
              let hit = re.firstMatch(in: line, range: NSRange(location: 0, length: ns.length)),
              let k = Int(ns.substring(with: hit.range(at: 1))), let m = Int(ns.substring(with: hit.range(at: 2))) else { return nil }
        return (k, m)
    }

    @Test("two prompts, one seed: the word diff, each word's maps, the runs in step, where they part")
    func twoPromptsOneSeed() throws {
        let s = try Scratch("compare1")
        defer { s.remove() }
        let model = try Self.tinySD()
        let a = try Self.trace(model, at: s.path("a"), prompt: Self.witch, seed: 5)
        let b = try Self.trace(model, at: s.path("b"), prompt: Self.dancing, seed: 5)
        var options = ReportOptions()
        options.previews = .full
        let summary = try ReportBuilder.build(traces: [a, b], output: s.path("report"), options: options)
        let files = ReportBuilderTests.filesUnder(s.path("report"))
        #expect(summary.files == files)

        // Not a sweep of one prompt: the terminal lines, the diff on the page, the grid frames.
        #expect(summary.lines.first == "comparison of 2 prompts × 1 seed (5)")
        #expect(summary.lines.contains("prompt 2 against 1: a witch and her [-black-] {+white+} cat {+dancing+}"), "\(summary.lines)")
        let part = try #require(summary.lines.first { $0.hasPrefix("Prompt 2 against 1, seed 5:") })
        let (k, m) = try #require(Self.km(part), "no k and m in: \(part)")
        #expect(1 <= k && k <= m && m <= 4, "\(part)")
        #expect(!files.contains { $0.hasPrefix("contact-sheet") || $0.hasPrefix("overlap") }, "a sweep's files in a comparison: \(files)")
        let html = try String(contentsOfFile: s.path("report/index.html"), encoding: .utf8)
        #expect(html.contains("<del>black</del> <ins>white</ins> cat <ins>dancing</ins>"))
        #expect(html.contains(HTMLPage.escape(part)))

        // Shared words have a map in both runs; added ones in prompt 2's only; removed in prompt 1's only.
        for (i, word) in ["a", "witch", "and", "her"].enumerated() {
            for run in ["prompt1-seed5", "prompt2-seed5"] { #expect(files.contains(String(format: "heatmaps/%02d-%@/%@.png", i, word, run)), "\(word) in \(run)") }
        }
        #expect(files.filter { $0.hasPrefix("heatmaps/04-black/") } == ["heatmaps/04-black/prompt1-seed5.png"])
        #expect(files.filter { $0.hasPrefix("heatmaps/05-white/") } == ["heatmaps/05-white/prompt2-seed5.png"])
        #expect(files.filter { $0.hasPrefix("heatmaps/06-cat/") }.count == 2)
        #expect(files.filter { $0.hasPrefix("heatmaps/07-dancing/") } == ["heatmaps/07-dancing/prompt2-seed5.png"])

        // The animation: a frame per evaluation with both prompts' rows, the GIF of those frames.
        let trace = try ReportTrace(directory: a)
        #expect(files.filter { $0.hasPrefix("frames/") }.count == trace.evaluations)
        let frame = try readPNG(s.path("report/frames/000.png"))
        let gif = try GIFReadBack.read(s.path("report/denoising.gif"))
        #expect(gif.frameCount == trace.evaluations && gif.width == frame.width && gif.height == frame.height)
        _ = try ReportBuilder.build(traces: [a], output: s.path("single"), options: options)
        let single = try readPNG(s.path("single/frames/000.png"))
        // One seed: the two prompts' runs side by side, a column each.
        #expect(frame.width > 2 * 256, "the comparison frame (\(frame.width) px wide) holds a 256-px column per prompt")
        #expect(frame.width > single.width)

        try ReportBuilderTests.expectLinksResolve(s.path("report"))
        // Prompts, images, denoising, heat maps (8 words, a row each, 4 rows a page), where they part (two charts).
        let pages = try ReportBuilderTests.pdfPages(s.path("report/report.pdf"))
        #expect(pages.header && pages.objects == 6 && pages.count == 6, "\(pages)")
    }

    @Test("two prompts × two seeds: a column per seed, each seed's runs compared")
    func twoPromptsTwoSeeds() throws {
        let s = try Scratch("compare2")
        defer { s.remove() }
        let model = try Self.tinySD()
        // Given seed-major, as a user might list them: the prompts still make the rows.
        var folders: [String] = []
        for seed: UInt64 in [5, 9] {
            for (p, prompt) in [Self.witch, Self.dancing].enumerated() {
                folders.append(try Self.trace(model, at: s.path("p\(p + 1)/\(seed)"), prompt: prompt, seed: seed))
            }
        }
        let summary = try ReportBuilder.build(traces: folders, output: s.path("report"), options: ReportBuilderTests.cheap())
        #expect(summary.traces == 4 && summary.lines.first == "comparison of 2 prompts × 2 seeds (5, 9)")
        for seed in [5, 9] {
            let line = try #require(summary.lines.first { $0.hasPrefix("Prompt 2 against 1, seed \(seed):") }, "\(summary.lines)")
            let (k, m) = try #require(Self.km(line), "\(line)")
            #expect(k <= m)
        }
        let files = ReportBuilderTests.filesUnder(s.path("report"))
        for run in ["prompt1-seed5", "prompt1-seed9", "prompt2-seed5", "prompt2-seed9"] {
            #expect(files.contains("heatmaps/01-witch/\(run).png"), "witch in \(run)")
        }
        #expect(files.contains("divergence-settle-1.png") && files.contains("divergence-settle-2.png"))
        // Two columns of pictures (ComparisonGrid: 10 px, then 256 + 10 a column for two columns).
        let images = try readPNG(s.path("report/images.png"))
        #expect(images.width >= 2 * 266 + 10)
        try ReportBuilderTests.expectLinksResolve(s.path("report"))
        // Prompts, images, denoising, heat maps (8 words, 4 rows a page: 2), where they part (three charts: 2).
        #expect(try ReportBuilderTests.pdfPages(s.path("report/report.pdf")).objects == 7)
    }

    @Test("three prompts, each aligned with the first; --words picks from any of them")
    func threePrompts() throws {
        let s = try Scratch("compare3")
        defer { s.remove() }
        let w1 = ["a", "red", "circle"], w2 = ["a", "red", "circle", "and", "a", "square"], w3 = ["a", "blue", "circle"]
        let folders = try [w1, w2, w3].enumerated().map { i, w in
            try ReportBuilderTests.writeTrace(at: s.path("p\(i)"), seed: 1, words: w, prompt: w.joined(separator: " "), spots: [:])
        }
        let cmp = try Comparison(traces: folders.map { try ReportTrace(directory: $0) })
        #expect(cmp.diffs[1].wordDiff == "a red circle {+and a square+}" && cmp.diffs[2].wordDiff == "a [-red-] {+blue+} circle")
        let aligned = cmp.alignedWords.map { "\($0.label): \($0.kind)" }
        #expect(aligned == ["a: shared", "red: not in prompt 3", "blue: added in prompt 3", "circle: shared",
                            "and: added in prompt 2", "a: added in prompt 2", "square: added in prompt 2"], "\(aligned)")
        var options = ReportBuilderTests.cheap()
        options.words = ["square", "Circle"]
        let summary = try ReportBuilder.build(traces: folders, output: s.path("report"), options: options)
        let maps = summary.files.filter { $0.hasPrefix("heatmaps/") }
        #expect(maps == ["heatmaps/00-circle/prompt1-seed1.png", "heatmaps/00-circle/prompt2-seed1.png", "heatmaps/00-circle/prompt3-seed1.png",
                         "heatmaps/01-square/prompt2-seed1.png"], "\(maps)")
        // The synthetic runs share x̂₀ whatever the prompt: they never part, and say so.
        #expect(summary.lines.filter { $0.contains("never part") }.count == 2, "\(summary.lines)")
        options.words = ["triangle"]
        let error = try #require(throws: ReportError.self) { try ReportBuilder.build(traces: folders, output: s.path("r2"), options: options) }
        #expect(error.description.contains("--words triangle") && error.description.contains("square"))
    }

    @Test("two traces of one prompt and seed: zero distance, and they never part")
    func twinsNeverPart() throws {
        let s = try Scratch("twins")
        defer { s.remove() }
        let model = try Self.tinySD()
        let a = try ReportTrace(directory: Self.trace(model, at: s.path("a"), prompt: Self.witch, seed: 5))
        let b = try ReportTrace(directory: Self.trace(model, at: s.path("b"), prompt: Self.witch, seed: 5))
        let frames = try [a, b].map { try DenoisingFrames(trace: $0, mode: .cheap, vae: nil) }
        let d = try RunDivergence(x0: a.x0, b.x0, picturesA: frames[0].x0.map(\.pixels), picturesB: frames[1].x0.map(\.pixels))
        #expect(d.evaluations == 4 && d.latent.allSatisfy { $0 == 0 } && d.pictures.allSatisfy { $0 == 0 })
        #expect(d.partsAt == nil && d.sentence.contains("never part"))
        // One prompt is a sweep, as before: no comparison lines.
        let c = try Self.trace(model, at: s.path("c"), prompt: Self.witch, seed: 6)
        let summary = try ReportBuilder.build(traces: [a.directory, c], output: s.path("report"), options: ReportBuilderTests.cheap())
        #expect(summary.lines.isEmpty && summary.files.contains("contact-sheet-6.png"))
    }

    @Test("a comparison needs one model and one size: one line naming both trace folders")
    func mismatchedModelOrSize() throws {
        let s = try Scratch("mismatch")
        defer { s.remove() }
        let model = try Self.tinySD()
        let a = try Self.trace(model, at: s.path("a"), prompt: Self.witch, seed: 5)
        let wide = try Self.trace(model, at: s.path("wide"), prompt: Self.dancing, seed: 5, width: 128)
        let other = try Self.trace(model, at: s.path("other"), prompt: Self.dancing, seed: 5, hash: "1111111111")
        for (b, what) in [(wide, "128×64"), (other, "1111111111")] {
            let error = try #require(throws: ReportError.self) {
                try ReportBuilder.build(traces: [a, b], output: s.path("report"), options: ReportBuilderTests.cheap())
            }
            #expect(error.description.contains(a) && error.description.contains(b) && error.description.contains(what), "\(error)")
            #expect(!error.description.contains("\n"))
            #expect(!FileManager.default.fileExists(atPath: s.path("report")))
        }
    }

    @Test("CLIP measured: each run's image against every prompt's phrases")
    func clipMatrix() throws {
        let s = try Scratch("compareclip")
        defer { s.remove() }
        try BLAS.load()
        // The demo model and its own CLIP, where the phrases mean something.
        let modelPath = try DefaultModel.modelPath()
        let sd = try StableDiffusionModel.load(modelPath, vaeEncoder: false)
        let scorer = try CLIPScorer(folder: DefaultModel.clipPath())
        var folders: [String] = []
        for (i, prompt) in ["a red circle on the left", "a red circle on the left, a blue square on the right"].enumerated() {
            var settings = GenerationSettings(prompt: prompt)
            (settings.seed, settings.steps, settings.sampler, settings.width, settings.height) = (7, 4, .euler, 128, 128)
            let dir = s.path("p\(i + 1)")
            let recorder = try TraceRecorder(directory: dir, unet: sd.unet, engineVersion: "test",
                                             extra: ["model": ["path": modelPath, "hash": "", "summary": ""]])
            let output = try TextToImagePipeline(model: sd).generate(settings, observer: recorder)
            try recorder.writeImage(try RGBImage(tensor: output.image), text: [])
            try ClipSimilarity(trace: ReportTrace(directory: dir), scorer: scorer, vae: sd.vae, every: 4).write(into: dir, clipModel: DefaultModel.clipPath())
            folders.append(dir)
        }
        let traces = try folders.map { try ReportTrace(directory: $0) }
        let clip = try #require(try ComparisonClip(Comparison(traces: traces), pictures: traces.map(\.image)))
        #expect(clip.phrases == ["a red circle on the left", "a red circle on the left, a blue square on the right", "a blue square on the right"])
        #expect(clip.owners == [[0, 1], [1], [1]] && clip.runs == [0, 1])
        // A run against its own phrases is what `pareidolia clip` stored (Euler ends on the last x̂₀).
        for (r, folder) in folders.enumerated() {
            let stored = try #require(StoredClip(directory: folder))
            for (l, label) in stored.labels.enumerated() where stored.kinds[l] != "negative" {
                let row = try #require(clip.phrases.firstIndex(of: label))
                #expect(abs(clip.cosines[row][r] - stored.similarity.last![l]) < 1e-4, "\(label), run \(r + 1)")
            }
        }
        let summary = try ReportBuilder.build(traces: folders, output: s.path("report"), options: ReportBuilderTests.cheap())
        #expect(summary.files.contains("clip-matrix.png") && summary.lines.contains { $0.hasPrefix("CLIP, seed 7:") }, "\(summary.lines)")
        let html = try String(contentsOfFile: s.path("report/index.html"), encoding: .utf8)
        #expect(html.contains("href=\"#clip\"") && html.contains("id=\"clip\""))
        try ReportBuilderTests.expectLinksResolve(s.path("report"))
    }
}

/// A run whose prompt edits: the report says where the conditioning changed and each frame which
/// text it saw.
@Suite("Report of a run with prompt editing", .serialized)
struct PromptEditingReportTests {
    @Test("the change is named on the page and marked on its frame")
    func marked() throws {
        let s = try ReportBuilderTests.Scratch("editing")
        defer { s.remove() }
        let model = try ComparisonReportTests.tinySD()
        let trace = try ComparisonReportTests.trace(model, at: s.path("t"), prompt: "a [witch:robot:2] dancing", seed: 3)
        let plain = try ComparisonReportTests.trace(model, at: s.path("p"), prompt: "a witch dancing", seed: 3)
        let t = try ReportTrace(directory: trace)
        #expect(t.conditioning.map(\.from) == [0, 3])  // [2, 'a witch dancing'], [4, 'a robot dancing']: calls 0–2, then 3
        #expect(t.conditioning(at: 3)?.changed == true && t.conditioning(at: 2)?.changed == false)
        #expect(try ReportTrace(directory: plain).conditioning.isEmpty)
        var options = ReportOptions()
        options.previews = .cheap
        _ = try ReportBuilder.build(traces: [trace], output: s.path("r"), options: options)
        _ = try ReportBuilder.build(traces: [plain], output: s.path("rp"), options: options)
        let html = try String(contentsOfFile: s.path("r/index.html"), encoding: .utf8)
        #expect(html.contains("changed during the run") && html.contains("from evaluation 4, “a robot dancing”"))
        // The frames carry a second line with the text (taller than a plain run's).
        #expect(try readPNG(s.path("r/frames/003.png")).height > readPNG(s.path("rp/frames/003.png")).height)
    }
}
