import ArgumentParser
import Diffusion
import Foundation
import Imaging
import Models
import Probes
import Reports
import Tensors
import Workbench

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Text to image, reproducing diffusers for the same checkpoint, prompt, seed and sampler.")

    @Option(name: .long, help: "A diffusers folder or a single-file SD 1.x checkpoint (.safetensors, .ckpt). Default: the embedded Shapes-world model (Assets/demo-model).")
    var model: String?

    @Option(name: .long, help: "For a single-file checkpoint whose architecture is not SD 1.5's: a diffusers folder whose unet/, vae/ and text_encoder/ config.json files describe it.")
    var config: String?

    @Option(name: .long, help: "The prompt (A1111 syntax: (word), [word], (word:1.3), BREAK); repeat it to compare prompts: each prompt × seed gets its own image and trace.")
    var prompt: [String] = []

    @Option(name: .long, help: "A text file of prompts, one a line (blank lines and lines starting with # skipped), after any --prompt.")
    var promptsFile: String?

    @Option(name: .long, help: "Re-run an image from its recipe: a PNG with A1111's `parameters` text (A1111's or Pareidolia's), or a text file of the same. Flags given here win over it.")
    var infotext: String?

    @Option(name: .long, help: "Negative prompt.")
    var negative: String?

    @Option(name: .long, help: "Seed (default: drawn at random and printed).")
    var seed: UInt64?

    @Option(name: .long, help: "Several seeds, comma-separated: one image and one trace each (e.g. 1887838105,4069519546).")
    var seeds: String?

    @Option(name: .long, help: "Draw this many random seeds (one image and trace each).")
    var seedCount: Int?

    @Option(name: .long, help: "Sampler steps (default 20).")
    var steps: Int?

    @Option(name: .long, help: "Classifier-free guidance scale (1 or less: no unconditional pass; default 7.5).")
    var guidance: Float?

    @Option(name: .long, help: "Sampler: diffusers' \(SamplerKind.allCases.map(\.rawValue).joined(separator: ", ")) (default pndm), or A1111's \(A1111Sampler.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")) (k-diffusion as A1111 runs it, with --schedule; DDIM, PLMS and UniPC are A1111's own timestep samplers).")
    var sampler: String?

    @Option(name: .long, help: "With one of A1111's samplers: its schedule type — automatic (default: the sampler's own), uniform, karras, exponential, polyexponential, sgm_uniform, simple, normal.")
    var schedule: String?

    @Option(name: .long, help: "With one of A1111's samplers: its eta noise seed delta (the generator reseeded with seed + ENSD after the initial noise).")
    var ensd: UInt64?

    @Option(name: .long, help: "Image width (a multiple of 8; default: the model's own, UNet sample_size × 8).")
    var width: Int?

    @Option(name: .long, help: "Image height (a multiple of 8; default: the model's own, UNet sample_size × 8).")
    var height: Int?

    @Option(name: .long, help: "Noise source: cpu (torch CPU generator, diffusers; default) or philox (torch CUDA generator, A1111's default).")
    var rng: String?

    @Option(name: .long, help: "CLIP skip as A1111 counts it (1 = last layer; default 1).")
    var clipSkip: Int?

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

    @Option(name: .long, help: "Keep these subjects apart (a merge remedy: bounded regional attention, docs/REMEDY.md): two or more prompt words or embedding triggers, comma-separated, left to right.")
    var separate: String?

    @Option(name: .long, help: "With --separate: halves (default: a column each, left to right), auto (from a run of the same seed with the subjects' class words, their map split into instances) or boxes \"A=x0,y0,x1,y1;B=…\" (normalised, top-left origin).")
    var regions = "halves"

    @Option(name: .long, help: "With --separate: the share of evaluations bounded, from the first (1: all).")
    var separateUntil: Float = Separation.defaultUntil

    @Option(name: .long, help: "With --separate: which channels are closed, cumulatively: text (each subject encoded alone), cross (+ regional cross-attention), full (+ bounded self-attention; default).")
    var separateStage = "full"

    @Option(name: .long, help: "How weights are held: fp32, fp16 or bf16 (16 bits: half the memory; sums stay fp32).")
    var precision = "fp32"

    @Option(name: .long, help: "Kernels: winograd (default: Winograd 3×3 convolutions, as close to diffusers as the plain path), none (the plain im2col path), bf16 (fast mode, AVX512-BF16 only: not diffusers' numbers) or all (what this CPU supports).")
    var fast = FastMath.default.description

    func run() throws {
        // The infotext's recipe first; every flag given on the command line then overrides it.
        let recipe: Infotext.Recipe?
        do { recipe = try infotext.map(InfotextFile.recipe) } catch { throw CLIError("\(error)") }
        var settings = recipe?.settings ?? GenerationSettings(prompt: "")
        var samplerFlag: SamplerChoice?
        if let sampler {
            do { samplerFlag = try SamplerChoice.parse(sampler, schedule: schedule) } catch { throw CLIError("--sampler \(sampler): \(error)") }
        } else if let schedule, recipe == nil {
            throw CLIError("--schedule \(schedule): give one of A1111's samplers with --sampler (\(A1111Sampler.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        if let ensd {
            guard case var .a1111(a)? = samplerFlag else { throw CLIError("--ensd \(ensd): goes with one of A1111's samplers (--sampler \"Euler a\", …)") }
            a.ensd = ensd
            samplerFlag = .a1111(a)
        }
        do { settings.samplerChoice = try recipe?.sampler(override: samplerFlag) ?? samplerFlag ?? .diffusers(.pndm) } catch {
            throw CLIError("--infotext \(infotext ?? ""): \(error)")
        }
        if sampler == nil, let schedule {
            // --schedule alone re-schedules the infotext's A1111 sampler.
            guard case var .a1111(a) = settings.samplerChoice else {
                throw CLIError("--schedule \(schedule): the infotext's sampler is one of diffusers', which has its own schedule")
            }
            guard !a.sampler.runsTimesteps else {
                throw CLIError("--schedule \(schedule): the infotext's sampler, \(a.sampler.rawValue), runs A1111's own timesteps (schedule types go with its k-diffusion samplers)")
            }
            do { a.schedule = try KSchedule(parsing: schedule) } catch { throw CLIError("--schedule \(schedule): \(error)") }
            settings.a1111 = a
        }
        if let rng {
            guard let kind = RNGKind(rawValue: rng) else { throw CLIError("--rng \(rng): expected cpu or philox") }
            settings.rng = kind
        }
        guard let weightPrecision = Precision(rawValue: precision) else {
            throw CLIError("--precision \(precision): expected fp32, fp16 or bf16")
        }
        let fastMath: FastMath
        do { fastMath = try FastMath(parsing: fast) } catch { throw CLIError("--fast \(error)") }
        guard let attentionMode = TraceOptions.Attention(rawValue: traceAttention) else {
            throw CLIError("--trace-attention \(traceAttention): expected off, aggregate or layers")
        }
        let prompts = try chosenPrompts(recipe)
        guard output.lowercased().hasSuffix(".png") else { throw CLIError("--output \(output): expected a .png file name") }
        let outputDir = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard FileManager.default.isWritableFile(atPath: outputDir.isEmpty ? "." : outputDir) else {
            throw CLIError("--output \(output): the folder \(outputDir) does not exist or is not writable")
        }
        settings.prompt = prompts[0]
        if let negative { settings.negativePrompt = negative }
        if let steps { settings.steps = steps }
        if let guidance { settings.guidance = guidance }
        if let clipSkip { settings.clipSkip = clipSkip }
        let sizeGiven = recipe?.given.contains("size") == true
        // A size given nowhere is the model's own, known once it is loaded; check the rest now.
        settings.width = width ?? (sizeGiven ? settings.width : 8)
        settings.height = height ?? (sizeGiven ? settings.height : 8)
        if let separation = try chosenSeparation() { settings.separation = separation }
        do { try settings.validate() } catch { throw CLIError("\(error)") }
        if clipModel != nil && trace == nil { throw CLIError("--clip-model: give --trace DIR too (the similarity is stored in the trace)") }
        guard clipEvery >= 1 else { throw CLIError("--clip-every \(clipEvery): expected 1 or more") }
        let seedList = try chosenSeeds(recipe)
        if seed == nil && seeds == nil && recipe?.given.contains("seed") != true { print("seed\(seedList.count == 1 ? "" : "s"): \(seedList.map(String.init).joined(separator: ", "))") }

        try BLAS.load()
        let model = try modelPath(self.model)
        let loaded: StableDiffusionModel
        do {
            let configs = try config.map { try StableDiffusionModel.Configs(diffusersFolder: $0) }
            loaded = try StableDiffusionModel.load(model, configs: configs, vaeEncoder: false, precision: weightPrecision, fast: fastMath)
        } catch { throw CLIError("\(error)") }
        // diffusers' default size: the UNet's sample_size in latent pixels.
        settings.width = width ?? (sizeGiven ? settings.width : loaded.unet.config.sampleSize * 8)
        settings.height = height ?? (sizeGiven ? settings.height : loaded.unet.config.sampleSize * 8)

        var request = GenerationRun.Request(prompts: prompts, seeds: seedList, settings: settings, output: output, modelPath: model)
        request.trace = trace
        request.traceOptions.attention = attentionMode
        request.traceOptions.eps = traceEps
        request.embeddingFiles = try embeddingFiles(embedding, model: self.model)
        request.clip = clipModel.map { GenerationRun.ClipRequest(folder: $0, every: clipEvery, phrases: ClipSimilarity.listedPhrases(clipPhrases)) }
        if separate != nil && regions == "auto" { request.autoRegions = .init() }
        request.precision = weightPrecision
        request.fast = fastMath
        let run: GenerationRun
        do { run = try GenerationRun(model: loaded, request: request) } catch { throw CLIError("\(error)") }
        for w in run.warnings + (recipe?.warnings(for: run) ?? []) { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) }

        let many = run.items.count > 1
        var bar: ProgressBar?
        let clipBar = ProgressBar(label: "clip")
        Interrupt.install()
        do {
            try run.run(observers: { item in
                let label = !many ? "generate" : prompts.count == 1 ? "seed \(item.seed)"
                    : "prompt \(item.promptIndex + 1)/\(prompts.count)" + (seedList.count > 1 ? ", seed \(item.seed)" : "")
                let b = ProgressBar(label: label)
                bar = b
                return [b]
            }, shouldStop: { Interrupt.requested }, clipProgress: { clipBar.tick(label: "clip", done: $0, total: $1) }, finished: { result in
                bar?.finish()
                print("wrote \(result.item.image)" + (result.item.trace.map { " and the trace in \($0)" } ?? ""))
                if let s = result.clip {
                    let final = zip(s.labels, s.similarity.last ?? []).map { String(format: "%.3f %@", $0.1, $0.0) }.joined(separator: "; ")
                    print("CLIP similarity, \(s.evaluations.count) measurements (\(String(format: "%.2f", s.secondsPerMeasurement)) s each), final: \(final)")
                }
            })
        } catch let failure as GenerationRun.Failure {
            bar?.finish()
            if failure.interrupted { FileHandle.standardError.write(Data("pareidolia: \(failure)\n".utf8)); Foundation.exit(130) }
            throw CLIError("\(failure)")
        }
        if let root = run.indexFolder {
            print("listed \(run.items.count) runs in \(root)/\(RunIndex.fileName) (`pareidolia report \(root)` draws them in one report)")
        }
    }

    /// `--separate`, `--regions`, `--separate-until`, `--separate-stage` (a warning when the last
    /// three are given without the first).
    func chosenSeparation() throws -> Separation? {
        guard let separate else {
            if regions != "halves" || separateUntil != Separation.defaultUntil || separateStage != "full" {
                FileHandle.standardError.write(Data("warning: --regions, --separate-until and --separate-stage do nothing without --separate\n".utf8))
            }
            return nil
        }
        let subjects = separate.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        var sep = Separation(subjects: subjects)
        if regions != "halves" && regions != "auto" {
            do { sep.boxes = try Separation.parseBoxes(regions, subjects: subjects) } catch { throw CLIError("\(error)") }
        }
        sep.until = separateUntil
        guard let stage = Separation.Stage(rawValue: separateStage) else {
            throw CLIError("--separate-stage \(separateStage): expected text, cross or full")
        }
        sep.stage = stage
        return sep
    }

    /// `--prompt` values, then the lines of `--prompts-file`; else the infotext's prompt.
    func chosenPrompts(_ recipe: Infotext.Recipe?) throws -> [String] {
        var list = prompt
        if let promptsFile {
            guard let data = FileManager.default.contents(atPath: promptsFile), let text = String(data: data, encoding: .utf8) else {
                throw CLIError("--prompts-file \(promptsFile): cannot be read as UTF-8 text")
            }
            list += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        }
        if list.isEmpty, let recipe { list = [recipe.settings.prompt] }
        guard !list.isEmpty else {
            throw CLIError(promptsFile.map { "--prompts-file \($0): no prompts in it" } ?? "--prompt: give a prompt (or --prompts-file FILE)")
        }
        return list
    }

    func chosenSeeds(_ recipe: Infotext.Recipe?) throws -> [UInt64] {
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
        if seed == nil, let recipe, recipe.given.contains("seed") { return [recipe.settings.seed] }
        return [seed ?? UInt64.random(in: 0..<(1 << 32))]
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
