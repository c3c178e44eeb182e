import Foundation
import Testing
import TestSupport
import Diffusion
import Imaging
import Models
import Probes
import Tensors
@testable import Workbench

/// A run of prompts × seeds is the same as one run each, loads the model once, and lays its files
/// out so that a report can take them as a whole.
@Suite("A run of prompts × seeds", .serialized)
struct GenerationRunTests {
    static let prompts = ["a red circle", "a red circle and a blue square"]
    static let seeds: [UInt64] = [7, 1887838105]

    static func settings() -> GenerationSettings {
        var s = GenerationSettings(prompt: "")
        s.steps = 3
        s.sampler = .euler_a  // draws noise at every step: the seed's generator must be fresh per run
        s.width = 64
        s.height = 64
        s.guidance = 7.5
        return s
    }

    static func folder(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-run-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func bytes(_ path: String) throws -> Data {
        try #require(FileManager.default.contents(atPath: path), "\(path) missing")
    }

    @Test("two prompts × two seeds give the same bits as four single runs")
    func sameAsSingleRuns() throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        let dir = try Self.folder("grid")
        defer { try? FileManager.default.removeItem(at: dir) }
        var request = GenerationRun.Request(prompts: Self.prompts, seeds: Self.seeds, settings: Self.settings(),
                                            output: dir.appendingPathComponent("out.png").path, modelPath: Fixtures.path("tiny-sd"))
        request.trace = dir.appendingPathComponent("traces").path
        let run = try GenerationRun(model: model, request: request)
        var finished: [String] = []
        let results = try run.run(finished: { finished.append($0.item.image) })
        #expect(results.count == 4)
        #expect(finished == results.map(\.item.image))

        // Named so a person can tell which is which.
        #expect(results.map { URL(fileURLWithPath: $0.item.image).lastPathComponent } == [
            "out-p1-a-red-circle-7.png", "out-p1-a-red-circle-1887838105.png",
            "out-p2-and-a-blue-square-7.png", "out-p2-and-a-blue-square-1887838105.png"])
        #expect(results[3].item.trace == dir.appendingPathComponent("traces/p2-and-a-blue-square/1887838105").path)

        for (i, r) in results.enumerated() {
            var single = request
            single.prompts = [r.item.prompt]
            single.seeds = [r.item.seed]
            single.output = dir.appendingPathComponent("single\(i).png").path
            single.trace = dir.appendingPathComponent("single\(i)").path
            let alone = try GenerationRun(model: model, request: single)
            #expect(alone.items.count == 1 && alone.indexFolder == nil)
            #expect(alone.items[0].image == single.output && alone.items[0].trace == single.trace)
            try alone.run()
            #expect(try Self.bytes(r.item.image) == Self.bytes(single.output), "image of \(r.item.prompt) / \(r.item.seed)")
            for file in ["latents.safetensors", "attention.safetensors", "image.png"] {
                #expect(try Self.bytes(r.item.trace! + "/" + file) == Self.bytes(single.trace! + "/" + file), "\(file) of run \(i)")
            }
        }
        // The four runs are not one image four times.
        #expect(try Self.bytes(results[0].item.image) != Self.bytes(results[1].item.image))
        #expect(try Self.bytes(results[0].item.image) != Self.bytes(results[2].item.image))

        // runs.json lists them, relative to the trace root; the report's reader expands it.
        let index = try #require(try RunIndex.read(folder: request.trace!))
        #expect(index.runs.map(\.seed) == [7, 1887838105, 7, 1887838105])
        #expect(index.runs.map(\.promptIndex) == [0, 0, 1, 1])
        #expect(index.runs[2].trace == "p2-and-a-blue-square/7")
        #expect(index.runs[2].image == "../out-p2-and-a-blue-square-7.png")
        #expect(index.traceFolders(in: request.trace!) == results.map { $0.item.trace! })
    }

    @Test("a bad request fails before any work, naming the flag")
    func badRequests() throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        let dir = try Self.folder("bad")
        defer { try? FileManager.default.removeItem(at: dir) }
        func failure(_ edit: (inout GenerationRun.Request) -> Void) -> String {
            var r = GenerationRun.Request(prompts: ["a cat"], seeds: [1], settings: Self.settings(),
                                          output: dir.appendingPathComponent("x.png").path, modelPath: Fixtures.path("tiny-sd"))
            edit(&r)
            do { _ = try GenerationRun(model: model, request: r); return "" } catch { return "\(error)" }
        }
        #expect(failure { $0.prompts = [] }.hasPrefix("--prompt"))
        #expect(failure { $0.output = "x.jpg" }.hasPrefix("--output x.jpg"))
        #expect(failure { $0.settings.clipSkip = 99 }.hasPrefix("--clip-skip 99"))
        #expect(failure { $0.clip = .init(folder: dir.path) }.hasPrefix("--clip-model"))
        #expect(failure { $0.embeddingFiles = [dir.appendingPathComponent("missing.pt").path] }.contains("missing.pt"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("x.png").path))

        // A folder holding one run's trace is not silently turned into an index of several.
        let traced = dir.appendingPathComponent("t").path
        try FileManager.default.createDirectory(atPath: traced, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: traced + "/run.json"))
        #expect(failure { $0.seeds = [1, 2]; $0.trace = traced }.contains("single run"))
    }

    @Test("file names: prompt slugs and suffixes")
    func naming() {
        #expect(RunNaming.slug("photo of a witch and a robot dancing, contact improvisation") == "photo-of-a-witch-and-a-robot-dancing")
        #expect(RunNaming.slug("(masterpiece:1.3), [ugly] <alex>") == "masterpiece-ugly-alex")
        #expect(RunNaming.slug("魔女とロボット") == "prompt")
        #expect(RunNaming.slug("Supercalifragilisticexpialidocious-and-more-and-more-and-more") == "supercalifragilisticexpialidocious-and")
        // The story's prompts: each named by what it adds to the words they share.
        #expect(RunNaming.slugs(["photo of a witch and a robot dancing, contact improvisation",
                                 "photo of a witch and a robot dancing, contact improvisation, the robot mirrors her gesture",
                                 "photo of a witch and a robot dancing, contact improvisation, the robot's eyes are wide"])
            == ["photo-of-a-witch-and-a-robot-dancing", "the-robot-mirrors-her-gesture", "the-robot-s-eyes-are-wide"])
        #expect(RunNaming.slugs(["a cat", "a dog"]) == ["cat", "dog"])
        #expect(RunNaming.slugs(["same", "same"]) == ["same", "same"])
        #expect(RunNaming.suffixed("out/image.png", "-p1-a-7") == "out/image-p1-a-7.png")
        #expect(RunNaming.relative("/a/b/out.png", to: "/a/b/traces") == "../out.png")
        #expect(RunNaming.relative("/a/b/traces/p1/7", to: "/a/b/traces") == "p1/7")
        let items = RunNaming.items(prompts: ["a b"], seeds: [1, 2], output: "o.png", trace: "t")
        #expect(items.map(\.image) == ["o-1.png", "o-2.png"])
        #expect(items.map(\.trace) == ["t/1", "t/2"])
    }

    @Test("the trace's layer count comes from the model: 16 in SD 1.5")
    func layerCount() throws {
        #expect(UNetConfig.sd15.crossAttentionLayerCount == 16)
        let tiny = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        var c = tiny.unet.config
        c.layersPerBlock = 2
        #expect(c.crossAttentionLayerCount == c.downBlockTypes.filter { $0.hasPrefix("CrossAttn") }.count * 2 + 1
            + c.upBlockTypes.filter { $0.hasPrefix("CrossAttn") }.count * 3)
    }
}

/// The reader of runs.json refuses what would point outside its folder.
@Suite("runs.json")
struct RunIndexTests {
    @Test("round trip and refusals")
    func roundTrip() throws {
        let dir = try GenerationRunTests.folder("index")
        defer { try? FileManager.default.removeItem(at: dir) }
        let index = RunIndex(runs: [.init(prompt: "a", promptIndex: 0, seed: 3754952516, trace: "p1-a", image: "../a.png")])
        try index.write(folder: dir.path)
        #expect(try RunIndex.read(folder: dir.path) == index)
        #expect(try RunIndex.read(folder: dir.appendingPathComponent("none").path) == nil)
        for bad in [#"{"format": "x", "runs": []}"#, #"[1]"#,
                    #"{"format": "pareidolia-runs", "runs": [{"prompt": "a", "seed": 1, "trace": "../elsewhere"}]}"#,
                    #"{"format": "pareidolia-runs", "runs": [{"prompt": "a", "seed": 1, "trace": "/etc"}]}"#,
                    #"{"format": "pareidolia-runs", "runs": [{"prompt": "a", "trace": "x"}]}"#] {
            try Data(bad.utf8).write(to: dir.appendingPathComponent(RunIndex.fileName))
            #expect(throws: RunIndex.IndexError.self) { try RunIndex.read(folder: dir.path) }
        }
    }
}

/// A PNG written by a run and re-run from its own infotext gives the same image, bit for bit.
@Suite("Re-running a PNG from its infotext", .serialized)
struct InfotextRoundTripTests {
    static let model = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)

    static let choices: [SamplerChoice] = SamplerKind.allCases.map { .diffusers($0) } + [
        .a1111(A1111Sampling(sampler: .eulerAncestral, ensd: 31337)), .a1111(A1111Sampling(sampler: .dpmpp2m)),
        .a1111(A1111Sampling(sampler: .heun, schedule: .exponential)), .a1111(A1111Sampling(sampler: .dpm2Ancestral, schedule: .uniform)),
        .a1111(A1111Sampling(sampler: .ddim)), .a1111(A1111Sampling(sampler: .plms)), .a1111(A1111Sampling(sampler: .unipc)),
        .a1111(A1111Sampling(sampler: .dpmpp2mSDE, schedule: .karras)),
        .a1111(A1111Sampling(sampler: .unipc, unipc: { var o = UniPCOptions(); o.order = 2; o.variant = .bh2; o.skipType = .logSNR; return o }())),
    ]

    @Test("same bytes, every sampler", arguments: choices)
    func sameImage(_ choice: SamplerChoice) throws {
        let model = try #require(Self.model)
        let dir = try GenerationRunTests.folder("infotext-\(choice)".filter { $0.isLetter || $0.isNumber || $0 == "-" })
        defer { try? FileManager.default.removeItem(at: dir) }
        var s = GenerationRunTests.settings()
        s.samplerChoice = choice
        s.negativePrompt = "blurry"
        s.rng = choice.drawsNoise ? .philox : .cpu
        s.clipSkip = 2
        let first = dir.appendingPathComponent("first.png").path
        try GenerationRun(model: model, request: .init(prompts: ["a witch, (robot:1.2)"], seeds: [99], settings: s,
                                                       output: first, modelPath: Fixtures.path("tiny-sd"))).run()
        let text = try #require(try PNGFile.readText(first).first { $0.key == "parameters" }?.value)
        let recipe = try Infotext.recipe(Infotext.parse(text), base: GenerationSettings(prompt: ""))
        var settings = recipe.settings
        settings.samplerChoice = try recipe.sampler(override: nil)  // with the ENSD the infotext names
        let again = dir.appendingPathComponent("again.png").path
        try GenerationRun(model: model, request: .init(prompts: [settings.prompt], seeds: [settings.seed],
                                                       settings: settings, output: again, modelPath: Fixtures.path("tiny-sd"))).run()
        switch (settings.samplerChoice, choice) {
        case let (.a1111(a), .a1111(b)): #expect(a.sampler == b.sampler && a.resolvedSchedule == b.resolvedSchedule && a.ensd == b.ensd && a.unipc == b.unipc)
        default: #expect(settings.samplerChoice == choice)
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: first)) == Data(contentsOf: URL(fileURLWithPath: again)))
        #expect(recipe.modelWarning(modelHash: ModelHash.shortHash(of: Fixtures.path("tiny-sd"))) == nil)
    }
}
