import Analysis
import Checkpoints
import Foundation
import Testing
import TestSupport
import Diffusion
import Models
import Probes
@testable import Workbench

/// `pareidolia remedy` as a library call: re-runs traces with their own settings and the remedy,
/// lays out the runs, counts before and after.
@Suite("From a merge diagnosis to its remedy", .serialized)
struct MergeRemedyTests {
    @Test("re-runs each trace's own settings with the remedy and its ablation, and counts")
    func remedy() throws {
        let dir = try GenerationRunTests.folder("remedy")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        var settings = GenerationRunTests.settings()
        settings.sampler = .euler
        var request = GenerationRun.Request(prompts: ["photo of a witch and a robot dancing"], seeds: [7, 8], settings: settings,
                                            output: dir.appendingPathComponent("before.png").path, modelPath: Fixtures.path("tiny-sd"))
        request.trace = dir.appendingPathComponent("before").path
        try GenerationRun(model: model, request: request).run()
        let traces = try RunIndex.read(folder: request.trace!)!.traceFolders(in: request.trace!)

        var r = MergeRemedy.Request(traces: traces, subjects: ["witch", "robot"], output: dir.appendingPathComponent("remedy").path)
        r.ablate = true
        let remedy = try MergeRemedy(r)
        let (outcomes, counts) = try remedy.run()
        #expect(outcomes.map(\.seed) == [7, 8])
        #expect(outcomes[0].runs.keys.sorted() == [.text, .cross, .full])
        #expect(counts.seeds == 2 && counts.apartAfter.count == 3)
        #expect(counts.sentence.contains("of 2 seeds before"))

        // The remedied run is the same as generate --separate with the trace's settings.
        let after = try RecordedRun(folder: outcomes[1].runs[.full]!)
        #expect(after.settings.seed == 8 && after.settings.prompt == "photo of a witch and a robot dancing")
        var direct = settings
        direct.prompt = after.settings.prompt
        direct.seed = 8
        direct.separation = Separation(subjects: ["witch", "robot"])
        let expected = try TextToImagePipeline(model: model).generate(direct)
        let traced = try SafeTensorsFile(path: outcomes[1].runs[.full]! + "/latents.safetensors").tensor("latents")  // [E+1, 4, h, w]
        let last = Array(UnsafeBufferPointer(start: traced.pointer + traced.count - expected.latent.count, count: expected.latent.count))
        #expect(last == Array(UnsafeBufferPointer(start: expected.latent.pointer, count: expected.latent.count)))
        let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outcomes[1].runs[.full]! + "/run.json"))) as! [String: Any]
        #expect((run["remedy"] as? [String: Any])?["stage"] as? String == "full")
        #expect((run["remedy"] as? [String: Any])?["subjects"] as? [String] == ["witch", "robot"])
        // runs.json lists every run the remedy made.
        #expect(try RunIndex.read(folder: r.output)?.runs.count == 6)

        // The before/after report, as pareidolia remedy writes it at the end: the counts' sentence
        // and channel on top, and the same counts made from the traces by the report.
        let summary = try remedy.report(outcomes, counts: counts)
        #expect(summary.directory == r.output + "/report")
        let html = try String(contentsOfFile: summary.directory + "/index.html", encoding: .utf8)
        #expect(html.contains(counts.sentence) && html.contains(counts.channel!), "the answer is missing from the page")
        let line = try #require(summary.lines.first)
        #expect(line.hasPrefix("witch and robot end on separate regions in \(counts.apartBefore) of 2 seeds before, \(counts.apartAfter[.full]!) of 2 after"), "\(line)")
        #expect(line.contains("text encoding alone: \(counts.apartAfter[.text]!); + cross-attention: \(counts.apartAfter[.cross]!)"), "\(line)")
        #expect(summary.files.contains("regions.png") && summary.files.contains("heatmaps/00-witch/full-seed8.png"), "\(summary.files)")
    }

    @Test("the ablation's best stage: most seeds apart, fewest channels among equals; advice only where full parts fewer")
    func bestStage() {
        let verdict = MergeVerdict(a: "alex", b: "cora", timelines: [], inputCosine: nil, contextualCosine: nil, context: nil)
        func counts(_ text: Int, _ cross: Int, _ full: Int) -> MergeRemedy.Counts {
            MergeRemedy.Counts(seeds: 4, apartBefore: 2, apartAfter: [.text: text, .cross: cross, .full: full], before: verdict, after: verdict)
        }
        // The demo's look-alikes: cross-attention parts all four, self-attention too costs one.
        #expect(counts(2, 4, 3).bestStage == .cross)
        #expect(counts(2, 4, 3).advice == "closing the text encoder and cross-attention parts more seeds (4 of 4) than the full remedy (3): run this model's remedy with --separate-stage cross")
        #expect(counts(3, 2, 1).bestStage == .text && counts(3, 2, 1).advice?.hasSuffix("--separate-stage text") == true)
        // A tie goes to the fewer channels, but the full remedy is not advised against for a tie.
        #expect(counts(2, 4, 4).bestStage == .cross && counts(2, 4, 4).advice == nil)
        #expect(counts(1, 2, 4).bestStage == .full && counts(1, 2, 4).advice == nil)
        // Without the ablation there is nothing to compare.
        let plain = MergeRemedy.Counts(seeds: 4, apartBefore: 2, apartAfter: [.full: 3], before: verdict, after: verdict)
        #expect(plain.bestStage == nil && plain.advice == nil)
    }

    @Test("a pair the prompt lacks, or a bad box, fails before any run")
    func refusals() throws {
        let dir = try GenerationRunTests.folder("remedy-bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        var request = GenerationRun.Request(prompts: ["a witch and a robot"], seeds: [1], settings: GenerationRunTests.settings(),
                                            output: dir.appendingPathComponent("b.png").path, modelPath: Fixtures.path("tiny-sd"))
        request.trace = dir.appendingPathComponent("b").path
        try GenerationRun(model: model, request: request).run()
        let out = dir.appendingPathComponent("r").path
        #expect(throws: MergeRemedy.Failure.self) { try MergeRemedy(.init(traces: [request.trace!], subjects: ["witch", "dragon"], output: out)) }
        var bad = MergeRemedy.Request(traces: [request.trace!], subjects: ["witch", "robot"], output: out)
        bad.regions = .boxes([[0, 0, 0.5, 1], [0.6, 0, 0.2, 1]])
        #expect(throws: MergeRemedy.Failure.self) { try MergeRemedy(bad) }
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}

/// `generate --separate A,B --regions auto`: each run's boxes come from its own class-word run.
@Suite("Automatic regions in a run", .serialized)
struct AutoRegionsRunTests {
    @Test("the class-word run is made beside the trace and its regions recorded")
    func auto() throws {
        let dir = try GenerationRunTests.folder("auto")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        var s = GenerationRunTests.settings()
        s.separation = Separation(subjects: ["witch", "robot"])
        var r = GenerationRun.Request(prompts: ["a witch and a robot dancing"], seeds: [5, 6], settings: s,
                                      output: dir.appendingPathComponent("o.png").path, modelPath: Fixtures.path("tiny-sd"))
        r.trace = dir.appendingPathComponent("t").path
        r.autoRegions = .init()
        let results = try GenerationRun(model: model, request: r).run()
        for item in results.map(\.item) {
            let trace = try #require(item.trace)
            #expect(FileManager.default.fileExists(atPath: trace + "-classes/run.json"))
            let run = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: trace + "/run.json"))) as! [String: Any]
            let source = try #require(run["remedy_regions"] as? String)
            #expect(source.hasPrefix("auto (") || source.hasPrefix("halves (the map"))
            let boxes = try #require((run["remedy"] as? [String: Any])?["boxes"] as? [[Double]])
            #expect(boxes.count == 2 && boxes.allSatisfy { $0.count == 4 && $0[0] < $0[2] && $0[1] < $0[3] })
        }
    }
}
