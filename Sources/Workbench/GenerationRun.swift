import Diffusion
import Foundation
import Imaging
import Models
import Probes
import Reports
import Tensors

/// Text to image for several prompts × seeds with one loaded model: each pair gives a PNG with
/// A1111's infotext and, when asked, a trace and its CLIP similarity. What `pareidolia generate`
/// runs, and what a notebook, a server or a remedy would call.
///
///     let run = try GenerationRun(model: loaded, request: request)   // checks everything first
///     for w in run.warnings { print(w) }
///     let results = try run.run()
public final class GenerationRun {
    /// What to make. `settings.prompt` and `settings.seed` are ignored: `prompts` × `seeds` are run.
    public struct Request {
        public var prompts: [String]
        public var seeds: [UInt64]
        public var settings: GenerationSettings
        /// The PNG path; with several runs each gets a suffix (see `RunNaming`).
        public var output: String
        /// A trace folder; with several runs each gets a sub-folder, listed in its runs.json.
        public var trace: String?
        public var traceOptions = TraceOptions()
        /// Textual-inversion files (`PATH` or `word=PATH`), as `EmbeddingLoader` reads them.
        public var embeddingFiles: [String] = []
        /// After each traced run, CLIP similarity of its x̂₀ into the trace (`ClipSimilarity`).
        public var clip: ClipRequest?
        /// Where the model came from (infotext, run.json): a path, as given.
        public var modelPath: String
        /// With `settings.separation`: find its boxes per run from a same-seed run of the class
        /// words (`AutoRegions`; nil words: each embedding's nearest vocabulary word).
        public var autoRegions: AutoRegionsRequest?
        /// How the weights are held and which kernels run (recorded in run.json).
        public var precision: Precision = .fp32
        public var fast: FastMath = .default

        public init(prompts: [String], seeds: [UInt64], settings: GenerationSettings, output: String, modelPath: String) {
            self.prompts = prompts
            self.seeds = seeds
            self.settings = settings
            self.output = output
            self.modelPath = modelPath
        }
    }

    public struct AutoRegionsRequest: Sendable {
        public var classes: [String]?
        public init(classes: [String]? = nil) { self.classes = classes }
    }

    public struct ClipRequest {
        /// A Hugging Face `CLIPModel` folder.
        public var folder: String
        /// Measure every K-th evaluation (the last always).
        public var every = 1
        public var phrases: [String] = []
        public init(folder: String, every: Int = 1, phrases: [String] = []) {
            self.folder = folder
            self.every = every
            self.phrases = phrases
        }
    }

    /// One prompt × seed and where its files go.
    public struct Item: Sendable {
        public let promptIndex: Int
        public let prompt: String
        public let seed: UInt64
        public let image: String
        public let trace: String?
    }

    public struct Result {
        public let item: Item
        public let infotext: String
        /// Set when the request asked for CLIP and the run was traced.
        public let clip: ClipSimilarity?
    }

    /// A failure, naming the flag or file; `item` is the run it stopped in, if any.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public let item: Item?
        /// Stopped by `shouldStop` (Ctrl-C): the trace holds the evaluations done.
        public let interrupted: Bool
    }

    public let model: StableDiffusionModel
    public let request: Request
    public let items: [Item]
    public let embeddings: [PromptEmbedding]
    /// Things given but unused, for the caller to show (library code does not print).
    public let warnings: [String]
    /// The folder holding runs.json (the trace root) when there is more than one run.
    public var indexFolder: String? { items.count > 1 ? request.trace : nil }

    private let pipeline: TextToImagePipeline
    private var scorer: CLIPScorer?

    /// Checks the request against the model (sizes, clip skip, embeddings, the CLIP folder) and
    /// lays out every output path, before any work.
    public init(model: StableDiffusionModel, request: Request) throws {
        func fail(_ s: String) -> Failure { Failure(description: s, item: nil, interrupted: false) }
        guard !request.prompts.isEmpty else { throw fail("--prompt: give at least one prompt") }
        guard !request.seeds.isEmpty else { throw fail("--seed: give at least one seed") }
        guard request.output.lowercased().hasSuffix(".png") else { throw fail("--output \(request.output): expected a .png file name") }
        do { try request.settings.validate() } catch { throw fail("\(error)") }
        guard (1...model.textEncoder.config.layers).contains(request.settings.clipSkip) else {
            throw fail("--clip-skip \(request.settings.clipSkip): expected 1…\(model.textEncoder.config.layers)")
        }
        if let clip = request.clip {
            guard request.trace != nil else { throw fail("--clip-model: give --trace DIR too (the similarity is stored in the trace)") }
            guard clip.every >= 1 else { throw fail("--clip-every \(clip.every): expected 1 or more") }
            // Checked now, so a bad folder stops the run before any work; loaded after the first
            // run, so the CLIP's weights do not add to the generation's peak memory.
            do { try CLIPScorer.check(folder: clip.folder) } catch { throw fail("--clip-model \(clip.folder): \(error)") }
        }
        let embeddings: [PromptEmbedding]
        do {
            embeddings = try request.embeddingFiles.map {
                try EmbeddingLoader.load($0, tokenizer: model.tokenizer, width: model.textEncoder.config.hiddenSize)
            }
        } catch { throw fail("\(error)") }
        // All embeddings at once, as a run applies them (a longer trigger can take a shorter one's place).
        var unused = Set(embeddings.map(\.trigger))
        for p in request.prompts {
            unused.formIntersection(PromptChunker.unusedTriggers(embeddings, prompt: p, negative: request.settings.negativePrompt, tokenizer: model.tokenizer))
        }
        let prompts = request.prompts.count == 1 ? "the prompt" : "any prompt"
        warnings = zip(request.embeddingFiles, embeddings).filter { unused.contains($0.1.trigger) }.map { spec, e in
            "--embedding \(spec): its trigger '\(e.trigger)' appears nowhere in \(prompts) or the negative prompt, so it changes nothing"
        }
        self.model = model
        self.request = request
        self.embeddings = embeddings
        self.items = RunNaming.items(prompts: request.prompts, seeds: request.seeds, output: request.output, trace: request.trace)
        self.pipeline = TextToImagePipeline(model: model)
        if let root = indexFolder {
            // A second command into the same folder must not leave an index naming the first's runs.
            guard !FileManager.default.fileExists(atPath: URL(fileURLWithPath: root).appendingPathComponent("run.json").path) else {
                throw fail("--trace \(root): holds a single run's trace; give an empty or new folder for several runs")
            }
        }
    }

    /// Runs every item in order (prompt-major: every seed of the first prompt, then the next).
    /// `observers` gives each run's extra observers (a progress bar); `finished` is called after
    /// each run; `clipProgress` while CLIP measures. runs.json is rewritten after each run, so a
    /// run stopped midway leaves an index of what was done.
    @discardableResult
    public func run(observers: (Item) -> [GenerationObserver] = { _ in [] },
                    shouldStop: () -> Bool = { false },
                    clipProgress: @escaping (Int, Int) -> Void = { _, _ in },
                    finished: (Result) throws -> Void = { _ in }) throws -> [Result] {
        var results: [Result] = []
        var done: [Item] = []
        for item in items {
            let result = try run(item, observers: observers(item), shouldStop: shouldStop, clipProgress: clipProgress)
            results.append(result)
            done.append(item)
            if let root = indexFolder {
                do { try RunNaming.index(of: done, root: root).write(folder: root) } catch {
                    throw Failure(description: "--trace \(root): \(error)", item: item, interrupted: false)
                }
            }
            try finished(result)
        }
        return results
    }

    private func run(_ item: Item, observers: [GenerationObserver], shouldStop: () -> Bool,
                     clipProgress: @escaping (Int, Int) -> Void) throws -> Result {
        func fail(_ s: String, interrupted: Bool = false) -> Failure { Failure(description: s, item: item, interrupted: interrupted) }
        var settings = request.settings
        settings.prompt = item.prompt
        settings.seed = item.seed
        var regionSource: String?
        if let auto = request.autoRegions, let sep = settings.separation {
            // The class-word run goes beside the run's trace (or into a temporary folder).
            let temporary = item.trace == nil ? FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-classes-\(getpid())").path : nil
            defer { if let temporary { try? FileManager.default.removeItem(atPath: temporary) } }
            do {
                let found = try AutoRegions.find(model: model, modelPath: request.modelPath, settings: settings, subjects: sep.subjects,
                                                 classes: auto.classes, embeddingFiles: request.embeddingFiles,
                                                 trace: temporary ?? item.trace! + "-classes", shouldStop: shouldStop)
                settings.separation?.boxes = found.boxes
                regionSource = found.source
            } catch { throw fail("--regions auto: \(error)") }
        }
        let recorder: TraceRecorder?
        do {
            recorder = try item.trace.map {
                try TraceRecorder(directory: $0, unet: model.unet, options: request.traceOptions, engineVersion: Version.engine, extra: runRecord)
            }
            if let recorder {
                let chunks = max(1, (model.tokenizer.tokenize(item.prompt).count + 74) / 75)
                try recorder.checkFreeSpace(needed: TraceRecorder.estimatedBytes(
                    options: request.traceOptions, evaluations: settings.samplerChoice.evaluations(steps: settings.steps),
                    latentHeight: settings.height / 8, latentWidth: settings.width / 8, tokens: 77 * chunks,
                    crossAttentionLayers: model.unet.config.crossAttentionLayerCount))
            }
        } catch { throw fail("\(error)") }
        if let regionSource { recorder?.set("remedy_regions", regionSource) }
        let observer = Observers([recorder as GenerationObserver?].compactMap { $0 } + observers)
        let output: TextToImagePipeline.Output
        do {
            output = try pipeline.generate(settings, embeddings: embeddings, observer: observer, shouldStop: shouldStop)
        } catch {
            let kept = recorder.map { " (the trace in \($0.directory.path) holds the evaluations done)" } ?? ""
            throw fail("\(error)\(kept)", interrupted: shouldStop())
        }
        let info = Infotext.make(settings: settings, modelName: modelName, modelHash: modelHash, embeddings: embeddingHashes)
        do {
            let image = try RGBImage(tensor: output.image)
            try PNGFile.write(image, to: item.image, text: [("parameters", info)])
            if let recorder {
                try recorder.writeImage(image, text: [("parameters", info)])
                if let e = recorder.lastError { throw e }
            }
        } catch { throw fail("\(error)") }
        var similarity: ClipSimilarity?
        if let clip = request.clip, let trace = item.trace {
            do {
                let scorer = try self.scorer ?? CLIPScorer(folder: clip.folder)
                self.scorer = scorer  // one load for every run
                let s = try ClipSimilarity(trace: ReportTrace(directory: trace), scorer: scorer, vae: model.vae,
                                           every: clip.every, extra: clip.phrases, progress: clipProgress)
                try s.write(into: trace, clipModel: URL(fileURLWithPath: clip.folder).standardizedFileURL.path)
                similarity = s
            } catch { throw fail("--clip-model \(clip.folder): \(error)") }
        }
        return Result(item: item, infotext: info, clip: similarity)
    }

    private lazy var modelName = URL(fileURLWithPath: request.modelPath).deletingPathExtension().lastPathComponent
    private lazy var modelHash = ModelHash.shortHash(of: request.modelPath)
    /// A1111's `TI hashes`: each embedding's trigger and its file's short hash.
    private lazy var embeddingHashes: [(trigger: String, hash: String)] = zip(request.embeddingFiles, embeddings).compactMap { spec, e in
        ModelHash.embeddingHash(of: spec.split(separator: "=", maxSplits: 1).last.map(String.init) ?? spec).map { (e.trigger, $0) }
    }

    /// run.json's record of the model, embeddings and arithmetic (the same for every run).
    private lazy var runRecord: [String: Any] = [
        "model": ["path": URL(fileURLWithPath: request.modelPath).standardizedFileURL.path, "hash": modelHash ?? "", "summary": model.summary],
        "embeddings": zip(request.embeddingFiles, embeddings).map { spec, e in
            ["trigger": e.trigger, "vectors": e.vectors.count,
             "file": URL(fileURLWithPath: spec.split(separator: "=", maxSplits: 1).last.map(String.init) ?? spec).standardizedFileURL.path] as [String: Any]
        },
        "arithmetic": ["precision": request.precision.rawValue, "fast": request.fast.description],
    ]
}
