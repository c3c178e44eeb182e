import ArgumentParser
import Diffusion
import Foundation
import Imaging
import Models
import Probes
import Tensors

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Text to image, reproducing diffusers for the same checkpoint, prompt, seed and sampler.")

    @Option(name: .long, help: "A diffusers folder or a single-file SD 1.x checkpoint (.safetensors, .ckpt).")
    var model: String

    @Option(name: .long, help: "For a single-file checkpoint whose architecture is not SD 1.5's: a diffusers folder whose unet/, vae/ and text_encoder/ config.json files describe it.")
    var config: String?

    @Option(name: .long, help: "The prompt (A1111 syntax: (word), [word], (word:1.3), BREAK).")
    var prompt: String

    @Option(name: .long, help: "Negative prompt.")
    var negative = ""

    @Option(name: .long, help: "Seed (default: drawn at random and printed).")
    var seed: UInt64?

    @Option(name: .long, help: "Sampler steps.")
    var steps = 20

    @Option(name: .long, help: "Classifier-free guidance scale (1 or less: no unconditional pass).")
    var guidance: Float = 7.5

    @Option(name: .long, help: "Sampler: \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var sampler = "pndm"

    @Option(name: .long, help: "Image width (a multiple of 8).")
    var width = 512

    @Option(name: .long, help: "Image height (a multiple of 8).")
    var height = 512

    @Option(name: .long, help: "Noise source: cpu (torch CPU generator, diffusers) or philox (torch CUDA generator, A1111's default).")
    var rng = "cpu"

    @Option(name: .long, help: "CLIP skip as A1111 counts it (1 = last layer).")
    var clipSkip = 1

    @Option(name: .long, parsing: .singleValue, help: "Textual-inversion file (PATH or word=PATH); repeatable.")
    var embedding: [String] = []

    @Option(name: .long, help: "Output PNG.")
    var output: String

    @Option(name: .long, help: "Record the run into this folder (run.json, latents.safetensors).")
    var trace: String?

    func run() throws {
        let samplerKind: SamplerKind
        do { samplerKind = try SamplerKind(parsing: sampler) } catch { throw CLIError("--sampler: \(error)") }
        guard let rngKind = RNGKind(rawValue: rng) else { throw CLIError("--rng \(rng): expected cpu or philox") }
        guard output.lowercased().hasSuffix(".png") else { throw CLIError("--output \(output): expected a .png file name") }
        let outputDir = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard FileManager.default.isWritableFile(atPath: outputDir.isEmpty ? "." : outputDir) else {
            throw CLIError("--output \(output): the folder \(outputDir) does not exist or is not writable")
        }
        var settings = GenerationSettings(prompt: prompt)
        settings.negativePrompt = negative
        settings.seed = seed ?? UInt64.random(in: 0..<(1 << 32))
        settings.steps = steps
        settings.guidance = guidance
        settings.sampler = samplerKind
        settings.width = width
        settings.height = height
        settings.rng = rngKind
        settings.clipSkip = clipSkip
        do { try settings.validate() } catch { throw CLIError("\(error)") }
        if seed == nil { print("seed: \(settings.seed)") }

        try BLAS.load()
        let loaded: StableDiffusionModel
        do {
            let configs = try config.map { try StableDiffusionModel.Configs(diffusersFolder: $0) }
            loaded = try StableDiffusionModel.load(model, configs: configs, vaeEncoder: false)
        } catch { throw CLIError("\(error)") }
        guard (1...loaded.textEncoder.config.layers).contains(clipSkip) else {
            throw CLIError("--clip-skip \(clipSkip): expected 1…\(loaded.textEncoder.config.layers)")
        }
        let embeddings: [PromptEmbedding]
        do {
            embeddings = try embedding.map { try EmbeddingLoader.load($0, tokenizer: loaded.tokenizer, width: loaded.textEncoder.config.hiddenSize) }
        } catch { throw CLIError("\(error)") }

        let recorder: TraceRecorder?
        do { recorder = try trace.map { try TraceRecorder(directory: $0, engineVersion: Version.engine) } } catch { throw CLIError("\(error)") }
        let progress = ProgressBar(label: "generate")
        let observer = Observers([recorder as GenerationObserver?, progress].compactMap { $0 })

        let pipeline = TextToImagePipeline(model: loaded)
        let result: TextToImagePipeline.Output
        do { result = try pipeline.generate(settings, embeddings: embeddings, observer: observer) } catch { throw CLIError("\(error)") }
        progress.finish()

        let modelName = URL(fileURLWithPath: model).deletingPathExtension().lastPathComponent
        let info = Infotext.make(settings: settings, modelName: modelName, modelHash: ModelHash.shortHash(of: model))
        let image = try RGBImage(tensor: result.image)
        do { try PNGFile.write(image, to: output, text: [("parameters", info)]) } catch { throw CLIError("\(error)") }
        if let recorder {
            recorder.set("tokens", TokenRows.rows(result.prompt) { loaded.tokenizer.decode($0).text })
            recorder.set("conditional_batch_index", settings.guidance > 1 ? 1 : 0)
            try recorder.flush()
            if let e = recorder.lastError { throw CLIError("--trace: \(e)") }
        }
        print("wrote \(output)")
    }
}
