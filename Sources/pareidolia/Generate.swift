import ArgumentParser
import Diffusion
import Foundation
import Imaging
import Models
import Probes
import Reports
import Tensors

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Text to image, reproducing diffusers for the same checkpoint, prompt, seed and sampler.")

    @Option(name: .long, help: "A diffusers folder or a single-file SD 1.x checkpoint (.safetensors, .ckpt). Default: the embedded Shapes-world model (Assets/demo-model).")
    var model: String?

    @Option(name: .long, help: "For a single-file checkpoint whose architecture is not SD 1.5's: a diffusers folder whose unet/, vae/ and text_encoder/ config.json files describe it.")
    var config: String?

    @Option(name: .long, help: "The prompt (A1111 syntax: (word), [word], (word:1.3), BREAK).")
    var prompt: String

    @Option(name: .long, help: "Negative prompt.")
    var negative = ""

    @Option(name: .long, help: "Seed (default: drawn at random and printed).")
    var seed: UInt64?

    @Option(name: .long, help: "Several seeds, comma-separated: one image and one trace each (e.g. 1887838105,4069519546).")
    var seeds: String?

    @Option(name: .long, help: "Draw this many random seeds (one image and trace each).")
    var seedCount: Int?

    @Option(name: .long, help: "Sampler steps.")
    var steps = 20

    @Option(name: .long, help: "Classifier-free guidance scale (1 or less: no unconditional pass).")
    var guidance: Float = 7.5

    @Option(name: .long, help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var sampler = "pndm"

    @Option(name: .long, help: "Image width (a multiple of 8; default: the model's own, UNet sample_size × 8).")
    var width: Int?

    @Option(name: .long, help: "Image height (a multiple of 8; default: the model's own, UNet sample_size × 8).")
    var height: Int?

    @Option(name: .long, help: "Noise source: cpu (torch CPU generator, diffusers) or philox (torch CUDA generator, A1111's default).")
    var rng = "cpu"

    @Option(name: .long, help: "CLIP skip as A1111 counts it (1 = last layer).")
    var clipSkip = 1

    @Option(name: .long, parsing: .singleValue, help: "Textual-inversion file (PATH or word=PATH; with the default model also a name from Assets/demo-embeddings: alex, cora, koko, alexcora); repeatable.")
    var embedding: [String] = []

    @Option(name: .long, help: "Output PNG.")
    var output: String

    @Option(name: .long, help: "Record the run into this folder (docs/TRACE.md): run.json, latents, x0, attention maps, previews.")
    var trace: String?

    @Option(name: .long, help: "Attention maps in the trace: off, aggregate (the DAAM sum, default) or layers (also each layer's).")
    var traceAttention = "aggregate"

    @Flag(name: .long, help: "Also record the conditional and unconditional noise predictions.")
    var traceEps = false

    @Option(name: .long, help: "After the run, measure the CLIP similarity of x̂₀ with the prompt and its phrases into the trace (needs --trace), with this Hugging Face CLIPModel folder; as `pareidolia clip`.")
    var clipModel: String?

    @Option(name: .long, help: "With --clip-model: measure every K-th evaluation (the last is always measured).")
    var clipEvery = 1

    @Option(name: .long, help: "With --clip-model: extra phrases, separated by ';'.")
    var clipPhrases: String?

    @Option(name: .long, help: "How weights are held: fp32, fp16 or bf16 (16 bits: half the memory; sums stay fp32).")
    var precision = "fp32"

    @Option(name: .long, help: "Kernels: winograd (default: Winograd 3×3 convolutions, as close to diffusers as the plain path), none (the plain im2col path), bf16 (fast mode, AVX512-BF16 only: not diffusers' numbers) or all (what this CPU supports).")
    var fast = FastMath.default.description

    func run() throws {
        let samplerKind: SamplerKind
        do { samplerKind = try SamplerKind(parsing: sampler) } catch { throw CLIError("--sampler: \(error)") }
        guard let rngKind = RNGKind(rawValue: rng) else { throw CLIError("--rng \(rng): expected cpu or philox") }
        guard let weightPrecision = Precision(rawValue: precision) else {
            throw CLIError("--precision \(precision): expected fp32, fp16 or bf16")
        }
        let fastMath: FastMath
        do { fastMath = try FastMath(parsing: fast) } catch { throw CLIError("--fast \(error)") }
        guard output.lowercased().hasSuffix(".png") else { throw CLIError("--output \(output): expected a .png file name") }
        let outputDir = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard FileManager.default.isWritableFile(atPath: outputDir.isEmpty ? "." : outputDir) else {
            throw CLIError("--output \(output): the folder \(outputDir) does not exist or is not writable")
        }
        var settings = GenerationSettings(prompt: prompt)
        settings.negativePrompt = negative
        settings.steps = steps
        settings.guidance = guidance
        settings.sampler = samplerKind
        // A size not given is the model's own, known once it is loaded; check the rest now.
        settings.width = width ?? 8
        settings.height = height ?? 8
        settings.rng = rngKind
        settings.clipSkip = clipSkip
        do { try settings.validate() } catch { throw CLIError("\(error)") }
        var options = TraceOptions()
        guard let attentionMode = TraceOptions.Attention(rawValue: traceAttention) else {
            throw CLIError("--trace-attention \(traceAttention): expected off, aggregate or layers")
        }
        options.attention = attentionMode
        options.eps = traceEps
        if clipModel != nil && trace == nil { throw CLIError("--clip-model: give --trace DIR too (the similarity is stored in the trace)") }
        guard clipEvery >= 1 else { throw CLIError("--clip-every \(clipEvery): expected 1 or more") }
        let seedList = try chosenSeeds()
        if seed == nil && seeds == nil { print("seed\(seedList.count == 1 ? "" : "s"): \(seedList.map(String.init).joined(separator: ", "))") }

        try BLAS.load()
        let model = try modelPath(self.model)
        let loaded: StableDiffusionModel
        do {
            let configs = try config.map { try StableDiffusionModel.Configs(diffusersFolder: $0) }
            loaded = try StableDiffusionModel.load(model, configs: configs, vaeEncoder: false, precision: weightPrecision, fast: fastMath)
        } catch { throw CLIError("\(error)") }
        // diffusers' default size: the UNet's sample_size in latent pixels.
        let width = self.width ?? loaded.unet.config.sampleSize * 8
        let height = self.height ?? loaded.unet.config.sampleSize * 8
        settings.width = width
        settings.height = height
        do { try settings.validate() } catch { throw CLIError("\(error)") }
        let embedding = try embeddingFiles(embedding, defaultModel: self.model == nil)
        guard (1...loaded.textEncoder.config.layers).contains(clipSkip) else {
            throw CLIError("--clip-skip \(clipSkip): expected 1…\(loaded.textEncoder.config.layers)")
        }
        let embeddings: [PromptEmbedding]
        do {
            embeddings = try embedding.map { try EmbeddingLoader.load($0, tokenizer: loaded.tokenizer, width: loaded.textEncoder.config.hiddenSize) }
        } catch { throw CLIError("\(error)") }
        // All embeddings at once, as the run applies them (a longer trigger can take a shorter one's place).
        let unused = Set(PromptChunker.unusedTriggers(embeddings, prompt: prompt, negative: negative, tokenizer: loaded.tokenizer))
        for (spec, e) in zip(embedding, embeddings) where unused.contains(e.trigger) {
            FileHandle.standardError.write(Data("warning: --embedding \(spec): its trigger '\(e.trigger)' appears nowhere in the prompt or the negative prompt, so it changes nothing\n".utf8))
        }
        // Checked before the run, so a bad CLIP folder stops it before any work; loaded after it, so
        // the CLIP's weights do not add to the generation's peak memory.
        if let clipModel {
            do { try CLIPScorer.check(folder: clipModel) } catch { throw CLIError("--clip-model \(clipModel): \(error)") }
        }
        var scorer: CLIPScorer?
        let modelName = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let modelHash = ModelHash.shortHash(of: model)
        let pipeline = TextToImagePipeline(model: loaded)

        for s in seedList {
            settings.seed = s
            let many = seedList.count > 1
            let imagePath = many ? Self.suffixed(output, "-\(s)") : output
            let recorder: TraceRecorder?
            do {
                recorder = try trace.map {
                    try TraceRecorder(directory: many ? URL(fileURLWithPath: $0).appendingPathComponent("\(s)").path : $0,
                                      unet: loaded.unet, options: options, engineVersion: Version.engine,
                                      extra: ["model": ["path": URL(fileURLWithPath: model).standardizedFileURL.path, "hash": modelHash ?? "", "summary": loaded.summary],
                                              "embeddings": zip(embedding, embeddings).map { spec, e in
                                                  ["trigger": e.trigger, "vectors": e.vectors.count,
                                                   "file": URL(fileURLWithPath: spec.split(separator: "=", maxSplits: 1).last.map(String.init) ?? spec).standardizedFileURL.path] as [String: Any]
                                              },
                                              "arithmetic": ["precision": weightPrecision.rawValue, "fast": fastMath.description]])
                }
                if let recorder {
                    let chunks = max(1, (loaded.tokenizer.tokenize(prompt).count + 74) / 75)
                    try recorder.checkFreeSpace(needed: TraceRecorder.estimatedBytes(
                        options: options, evaluations: samplerKind.evaluations(steps: steps),
                        latentHeight: height / 8, latentWidth: width / 8, tokens: 77 * chunks, crossAttentionLayers: 16))
                }
            } catch { throw CLIError("\(error)") }
            let progress = ProgressBar(label: many ? "seed \(s)" : "generate")
            let observer = Observers([recorder as GenerationObserver?, progress].compactMap { $0 })
            let result: TextToImagePipeline.Output
            Interrupt.install()
            do {
                result = try pipeline.generate(settings, embeddings: embeddings, observer: observer, shouldStop: { Interrupt.requested })
            } catch {
                progress.finish()
                let kept = recorder.map { " (the trace in \($0.directory.path) holds the evaluations done)" } ?? ""
                if Interrupt.requested { FileHandle.standardError.write("pareidolia: \(error)\(kept)\n".data(using: .utf8)!); Foundation.exit(130) }
                throw CLIError("\(error)")
            }
            progress.finish()

            let info = Infotext.make(settings: settings, modelName: modelName, modelHash: modelHash)
            let image = try RGBImage(tensor: result.image)
            do { try PNGFile.write(image, to: imagePath, text: [("parameters", info)]) } catch { throw CLIError("\(error)") }
            if let recorder {
                do { try recorder.writeImage(image, text: [("parameters", info)]) } catch { throw CLIError("--trace: \(error)") }
                if let e = recorder.lastError { throw CLIError("--trace: \(e)") }
            }
            print("wrote \(imagePath)" + (recorder.map { " and the trace in \($0.directory.path)" } ?? ""))
            if let clipModel, let recorder {
                let clip: CLIPScorer
                do { clip = try scorer ?? CLIPScorer(folder: clipModel) } catch { throw CLIError("--clip-model \(clipModel): \(error)") }
                scorer = clip  // one load for every seed
                try measureClip(clip, clipModel, trace: recorder.directory.path, vae: loaded.vae)
            }
        }
    }

    /// `pareidolia clip` on the trace just written, with the run's own VAE.
    func measureClip(_ scorer: CLIPScorer, _ clipModel: String, trace: String, vae: AutoencoderKL) throws {
        let extra = ClipSimilarity.listedPhrases(clipPhrases)
        let bar = ProgressBar(label: "clip")
        do {
            let s = try ClipSimilarity(trace: ReportTrace(directory: trace), scorer: scorer, vae: vae, every: clipEvery, extra: extra) {
                bar.tick(label: "clip", done: $0, total: $1)
            }
            try s.write(into: trace, clipModel: URL(fileURLWithPath: clipModel).standardizedFileURL.path)
            let final = zip(s.labels, s.similarity.last ?? []).map { String(format: "%.3f %@", $0.1, $0.0) }.joined(separator: "; ")
            print("CLIP similarity, \(s.evaluations.count) measurements (\(String(format: "%.2f", s.secondsPerMeasurement)) s each), final: \(final)")
        } catch { throw CLIError("--clip-model: \(error)") }
    }

    func chosenSeeds() throws -> [UInt64] {
        if let seeds {
            let list = seeds.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let parsed = list.compactMap(UInt64.init)
            guard !list.isEmpty, parsed.count == list.count else { throw CLIError("--seeds \(seeds): expected comma-separated whole numbers") }
            return parsed
        }
        if let seedCount {
            guard (1...1000).contains(seedCount) else { throw CLIError("--seed-count \(seedCount): expected 1…1000") }
            return (0..<seedCount).map { _ in UInt64.random(in: 0..<(1 << 32)) }
        }
        return [seed ?? UInt64.random(in: 0..<(1 << 32))]
    }

    /// `out.png` → `out-SUFFIX.png`.
    static func suffixed(_ path: String, _ suffix: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingPathExtension().path + suffix + "." + url.pathExtension
    }
}

/// Ctrl-C ends the run between two evaluations, so every file written so far stays whole; a
/// second Ctrl-C quits at once.
enum Interrupt {
    nonisolated(unsafe) static var requested = false

    static func install() {
        signal(SIGINT) { _ in
            if Interrupt.requested { _exit(130) }
            Interrupt.requested = true
        }
    }
}
