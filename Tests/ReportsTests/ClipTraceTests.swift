import Checkpoints
import Diffusion
import Foundation
import Imaging
import Models
import Probes
import Tensors
import TestSupport
import Testing
@testable import Reports

/// `pareidolia clip` on a real trace: the embedded demo model (4 Euler steps, 128 px) measured
/// with its own CLIP.
@Suite("CLIP similarity of a trace")
struct ClipTraceTests {
    static let prompt = "a red circle to the left of a blue square, striped background"

    @Test func measuresEveryKthEvaluationAndTheLastMatchesTheImage() throws {
        try BLAS.load()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pd-clip-trace-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let modelPath = try DefaultModel.modelPath()
        let sd = try StableDiffusionModel.load(modelPath, vaeEncoder: false)
        var settings = GenerationSettings(prompt: Self.prompt)
        settings.negativePrompt = "dotted background"
        (settings.seed, settings.steps, settings.sampler, settings.width, settings.height) = (7, 4, .euler, 128, 128)
        let recorder = try TraceRecorder(directory: root.path, unet: sd.unet, engineVersion: "test",
                                         extra: ["model": ["path": modelPath, "hash": "", "summary": ""]])
        let output = try TextToImagePipeline(model: sd).generate(settings, observer: recorder)
        try recorder.writeImage(try RGBImage(tensor: output.image), text: [])

        let scorer = try CLIPScorer(folder: DefaultModel.clipPath())
        let trace = try ReportTrace(directory: root.path)
        let s = try ClipSimilarity(trace: trace, scorer: scorer, vae: sd.vae, every: 3, extra: ["a green star"])
        #expect(s.labels == [Self.prompt, "a red circle to the left of a blue square", "striped background", "dotted background", "a green star"])
        #expect(s.kinds == ["prompt", "phrase", "phrase", "negative", "extra"])
        #expect(s.evaluations == [2, 3])  // every 3rd, and always the last
        #expect(s.decode == .full && s.decodedWidth == 128 && s.decodedHeight == 128)

        // Euler's last step lands on that evaluation's x̂₀, so the last row is the run's own image's.
        let png = try readPNG(root.appendingPathComponent("image.png").path)
        let direct = cosineSimilarities(try scorer.imageEmbedding(rgb: png.pixels, width: png.width, height: png.height),
                                        try scorer.textEmbeddings(s.labels))[0]
        let last = try #require(s.similarity.last)
        // Measured equal; the bound leaves room for a level flipped by the last step's rounding.
        for (l, (a, b)) in zip(s.labels, zip(last, direct)) { #expect(abs(a - b) < 1e-4, "\(l): trace \(a), image \(b)") }
        // The earlier row is a different picture: its similarities differ.
        #expect(zip(s.similarity[0], last).contains { abs($0 - $1) > 1e-3 })

        // Stored in the trace, and read back by the report.
        try s.write(into: root.path, clipModel: "demo-clip")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("clip.json"))) as? [String: Any]
        #expect(json?["labels"] as? [String] == s.labels && json?["evaluations"] as? [Int] == [2, 3])
        #expect(json?["decode"] as? String == "full" && json?["decoded_size"] as? [Int] == [128, 128])
        let stored = try SafeTensorsFile(path: root.appendingPathComponent("clip.safetensors").path).tensor("similarity")  // [K, L]
        #expect(stored.shape == [2, 5] && stored.pointer[5 + 4] == last[4])
        var options = ReportOptions()
        options.previews = .cheap
        let report = root.appendingPathComponent("report")
        _ = try ReportBuilder.build(traces: [root.path], output: report.path, options: options)
        let html = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(html.contains("Which parts of the prompt the picture kept") && html.contains("a green star"))
        #expect(FileManager.default.fileExists(atPath: report.appendingPathComponent("clip.png").path))

        // A clip.json from another measurement than clip.safetensors (a write stopped between the
        // two) is not drawn as if it described these numbers.
        var other = try #require(json)
        other["measurement"] = "another"
        try JSONSerialization.data(withJSONObject: other).write(to: root.appendingPathComponent("clip.json"))
        _ = try ReportBuilder.build(traces: [root.path], output: report.path, options: options)
        let rebuilt = try String(contentsOf: report.appendingPathComponent("index.html"), encoding: .utf8)
        #expect(!rebuilt.contains("Which parts of the prompt the picture kept"))
    }

    @Test func reducedDecodeShrinksOnlyLargerLatents() {
        #expect(ClipSimilarity.latentSize(height: 64, width: 64, clipSize: 224, decode: .reduced) == (28, 28))
        #expect(ClipSimilarity.latentSize(height: 64, width: 96, clipSize: 224, decode: .reduced) == (28, 42))
        #expect(ClipSimilarity.latentSize(height: 96, width: 64, clipSize: 224, decode: .reduced) == (42, 28))
        #expect(ClipSimilarity.latentSize(height: 64, width: 64, clipSize: 224, decode: .full) == (64, 64))
        #expect(ClipSimilarity.latentSize(height: 16, width: 16, clipSize: 128, decode: .reduced) == (16, 16))
        #expect(ClipSimilarity.latentSize(height: 24, width: 24, clipSize: 224, decode: .reduced) == (24, 24))
    }

    /// The embedded demo CLIP scoring two demo-model PNGs, preprocessing included, against
    /// transformers' CLIPModel on the same files (demo-clip/scores.json): `pareidolia clip --image`.
    @Test(arguments: ["square.png", "wide.png"])
    func imageScoresMatchTransformers(_ name: String) throws {
        try BLAS.load()
        let scores = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("demo-clip/scores.json")))) as? [String: Any]
        let expected = try #require(scores?[name] as? [String: Any])
        let cosines = try #require(expected["cosines"] as? [String: Double])
        let scorer = try CLIPScorer(folder: DefaultModel.clipPath())
        let png = try readPNG(Fixtures.path("demo-clip/\(name)"))
        let phrases = cosines.keys.sorted()
        let (got, norm) = try scorer.score(rgb: png.pixels, width: png.width, height: png.height, phrases: phrases)
        for (p, c) in zip(phrases, got) { #expect(abs(Double(c) - cosines[p]!) < 1e-4, "\(name), \(p): \(c) vs \(cosines[p]!)") }
        let expectedNorm = try #require(expected["image_embedding_norm"] as? Double)
        #expect(abs(norm - expectedNorm) < 1e-4 * expectedNorm, "\(name): norm \(norm) vs \(expectedNorm)")
    }
}
