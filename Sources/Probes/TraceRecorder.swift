import Checkpoints
import Diffusion
import Foundation
import Imaging
import Models
import Tensors

/// What a trace records besides latents and x̂₀ (see docs/TRACE.md).
public struct TraceOptions: Sendable {
    public enum Attention: String, CaseIterable, Sendable {
        /// No attention maps (the UNet runs uninstrumented).
        case off
        /// `cross` [E, T, h, w]: the DAAM sum over all cross-attention layers.
        case aggregate
        /// `cross` and every layer's own head-mean map `cross.<site>` [E, T, h_l, w_l].
        case layers
    }
    public var attention: Attention = .aggregate
    /// Also store `eps_cond` and `eps_uncond` [E, 4, h, w].
    public var eps = false
    /// Write `steps/NNN.png` previews of x̂₀ (cheap latent→RGB map, latent resolution).
    public var previews = true
    public init() {}
}

/// Records a generation into a trace folder: `run.json`, `latents.safetensors` (`latents`
/// [E+1, 4, h, w], `x0` [E, 4, h, w], optional `eps_cond`/`eps_uncond`), `attention.safetensors`
/// (`cross` [E, T, h, w], optional `cross.<site>`), `steps/NNN.png` and `image.png`. Every file is
/// rewritten atomically after each evaluation, so an interrupted run leaves a valid trace of the
/// evaluations done (`steps_completed`).
public final class TraceRecorder: GenerationObserver {
    public static let formatVersion = 1
    public let directory: URL
    public let options: TraceOptions
    let unet: UNet2DConditionModel
    let engineVersion: String
    var extra: [String: Any]
    var settings: GenerationSettings?
    var timesteps: [Float] = [], sigmas: [Float] = [], seconds: [Double] = []
    var evaluations = 0
    var latents: [Tensor] = [], predictions: [Tensor] = []
    var epsCond: [Tensor] = [], epsUncond: [Tensor] = []
    var cross: [Tensor] = []
    var layerMaps: [String: [Tensor]] = [:]
    var maps: CrossAttentionMaps?
    /// The first write failure, if any (the caller reports it at the end).
    public private(set) var lastError: Error?

    public struct TraceError: Error, CustomStringConvertible { public let description: String }

    /// Creates the folder (or checks an existing one is writable) before any work starts.
    public init(directory path: String, unet: UNet2DConditionModel, options: TraceOptions = TraceOptions(),
                engineVersion: String, extra: [String: Any] = [:]) throws {
        directory = URL(fileURLWithPath: path)
        self.unet = unet
        self.options = options
        self.engineVersion = engineVersion
        self.extra = extra
        do {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("steps"), withIntermediateDirectories: true)
        } catch {
            throw TraceError(description: "--trace \(path): cannot create the folder (\(error.localizedDescription))")
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw TraceError(description: "--trace \(path): the folder is not writable")
        }
    }

    /// Bytes the trace will take for `evaluations` evaluations of an h × w latent with T tokens
    /// (files are rewritten whole, so twice the largest file must fit at the end).
    public static func estimatedBytes(options: TraceOptions, evaluations e: Int, latentHeight h: Int, latentWidth w: Int,
                                      tokens t: Int, crossAttentionLayers layers: Int) -> Int {
        let latent = 4 * h * w * 4
        var latentsFile = (2 * e + 1) * latent
        if options.eps { latentsFile += 2 * e * latent }
        var attentionFile = options.attention == .off ? 0 : e * t * h * w * 4
        if options.attention == .layers { attentionFile += e * t * h * w * 4 * layers }  // an upper bound
        let previews = options.previews ? e * (h * w * 3 + 1024) : 0
        return latentsFile + attentionFile + previews + max(latentsFile, attentionFile) + (1 << 20)
    }

    /// Fails before any work when the folder's file system has less room than the estimate.
    public func checkFreeSpace(needed: Int) throws {
        var fs = statvfs()
        guard statvfs(directory.path, &fs) == 0 else { return }  // unknown: let the writes report
        let free = Int(fs.f_bavail) * Int(fs.f_frsize)
        guard free >= needed else {
            throw TraceError(description: "--trace \(directory.path): the trace needs about \(needed / 1_000_000) MB but only \(free / 1_000_000) MB are free")
        }
    }

    /// Extra top-level keys for run.json, merged on the next write.
    public func set(_ key: String, _ value: Any) { extra[key] = value }

    public func didEncodePrompt(_ prompt: PromptChunker.Result, negative: PromptChunker.Result?, tokenizer: CLIPTokenizer) {
        extra["tokens"] = TokenRows.rows(prompt, tokenizer: tokenizer)
    }

    public func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
        self.settings = settings
        self.evaluations = evaluations
        self.timesteps = timesteps
        self.sigmas = sigmas
        latents = [initialLatent.copy()]
        extra["conditional_batch_index"] = settings.guidance > 1 ? 1 : 0
        if let changes = settings.conditioningChanges(evaluations: evaluations) {
            // Prompt editing, alternation or AND: which texts each evaluation was conditioned on.
            extra["conditioning"] = changes.map { c in
                ["from_evaluation": c.from, "prompts": c.prompts, "weights": c.weights.map { Double(String($0)) ?? 1 },
                 "negative": c.negative] as [String: Any]
            }
        }
        if options.attention != .off {
            maps = CrossAttentionMaps(conditionalBatch: settings.guidance > 1 ? 1 : 0,
                                      latentHeight: initialLatent.shape[2], latentWidth: initialLatent.shape[3],
                                      keepLayers: options.attention == .layers)
        }
    }

    public func willEvaluate(index: Int) {
        if let maps { unet.probes.attention = maps }
    }

    public func didEvaluate(_ record: EvaluationRecord) {
        unet.probes.attention = nil
        latents.append(record.latent.copy())
        if let x0 = record.predictedOriginal { predictions.append(x0.copy()) }
        if options.eps, let c = record.epsConditional, let u = record.epsUnconditional {
            epsCond.append(c.copy())
            epsUncond.append(u.copy())
        }
        if let maps {
            let (aggregate, layers) = maps.take()
            if let aggregate { cross.append(aggregate) }
            for (site, map) in layers { layerMaps[site, default: []].append(map) }
        }
        seconds.append(record.seconds)
        do {
            if options.previews, let x0 = record.predictedOriginal {
                let name = String(format: "steps/%03d.png", record.index)
                try PNGFile.write(LatentPreview.rgb(x0), to: directory.appendingPathComponent(name).path)
            }
            try flush()
        } catch {
            if lastError == nil { lastError = error }
        }
    }

    /// Writes the decoded image as `image.png`.
    public func writeImage(_ image: RGBImage, text: [(key: String, value: String)]) throws {
        try PNGFile.write(image, to: directory.appendingPathComponent("image.png").path, text: text)
    }

    public func flush() throws {
        guard !latents.isEmpty else { return }
        let meta = ["format_version": "\(Self.formatVersion)"]
        var tensors = ["latents": Self.stack(latents)]  // [E+1, 4, h, w]
        if !predictions.isEmpty { tensors["x0"] = Self.stack(predictions) }  // [E, 4, h, w]
        if !epsCond.isEmpty {
            tensors["eps_cond"] = Self.stack(epsCond)  // [E, 4, h, w]
            tensors["eps_uncond"] = Self.stack(epsUncond)
        }
        try SafeTensorsWriter.write(tensors, metadata: meta, to: directory.appendingPathComponent("latents.safetensors").path)
        if !cross.isEmpty {
            var attention = ["cross": Self.stack(cross, leading: true)]  // [E, T, h, w]
            for (site, maps) in layerMaps where maps.count == cross.count { attention["cross." + site] = Self.stack(maps, leading: true) }
            try SafeTensorsWriter.write(attention, metadata: meta, to: directory.appendingPathComponent("attention.safetensors").path)
        }
        try writeRunJSON()
    }

    /// [N, …] from N tensors of shape [1, …] (or of shape […] with `leading`).
    static func stack(_ items: [Tensor], leading: Bool = false) -> Tensor {
        let inner = leading ? items[0].shape : Array(items[0].shape.dropFirst())
        let out = Tensor(uninitializedShape: [items.count] + inner)
        for (i, t) in items.enumerated() { (out.pointer + i * t.count).update(from: t.pointer, count: t.count) }
        return out
    }

    func writeRunJSON() throws {
        var run: [String: Any] = extra
        run["format_version"] = Self.formatVersion
        run["engine_version"] = engineVersion
        if let s = settings {
            run["seed"] = s.seed
            var settings: [String: Any] = [
                "prompt": s.prompt, "negative_prompt": s.negativePrompt, "seed": s.seed, "steps": s.steps,
                "guidance": s.guidance, "sampler": s.sampler.rawValue, "width": s.width, "height": s.height,
                "rng": s.rng.rawValue, "clip_skip": s.clipSkip,
            ]
            if let a = s.a1111 {
                // One of A1111's samplers, by A1111's name, with its schedule type and ENSD.
                settings["sampler"] = a.sampler.rawValue
                settings["schedule"] = a.schedule.rawValue
                settings["ensd"] = a.ensd
                if a.sampler == .unipc {
                    settings["unipc"] = ["variant": a.unipc.variant.rawValue, "skip_type": a.unipc.skipType.rawValue,
                                         "order": a.unipc.order, "lower_order_final": a.unipc.lowerOrderFinal] as [String: Any]
                }
            }
            run["settings"] = settings
            if let sep = s.separation {
                // The cross maps stay the probe's: the conditional item's unmasked base attention.
                run["remedy"] = [
                    "method": "bounded regional attention", "subjects": sep.subjects,
                    "boxes": sep.boxes.map { $0.map { Double(String($0)) ?? 0 } }, "stage": sep.stage.rawValue,
                    "until": Double(String(sep.until)) ?? 1, "bounded_evaluations": sep.boundedEvaluations(of: evaluations),
                    "base_blend": Double(String(sep.baseBlend)) ?? 0, "cross_maps": "probe (unmasked)",
                ] as [String: Any]
            }
        }
        run["evaluations"] = evaluations
        run["steps_completed"] = latents.count - 1
        run["timesteps"] = timesteps
        run["sigmas"] = sigmas
        run["evaluation_seconds"] = seconds
        run["recorded"] = ["attention": options.attention.rawValue, "eps": options.eps, "previews": options.previews] as [String: Any]
        let data = try JSONSerialization.data(withJSONObject: run, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: directory.appendingPathComponent("run.json").path)
    }
}

/// A1111's "Approx cheap" latent → RGB map: a fixed 4×3 matrix applied to the UNet-scale latent,
/// then x·0.5 + 0.5 clamped; one pixel per latent pixel.
public enum LatentPreview {
    static let coefficients: [[Float]] = [
        [0.298, 0.207, 0.208], [0.187, 0.286, 0.173], [-0.158, 0.189, 0.264], [-0.184, -0.271, -0.473],
    ]

    public static func rgb(_ latent: Tensor) -> RGBImage {  // [1, 4, h, w] → h × w RGB
        let (h, w) = (latent.shape[latent.rank - 2], latent.shape[latent.rank - 1])
        var pixels = [UInt8](repeating: 0, count: h * w * 3)
        for p in 0..<(h * w) {
            for c in 0..<3 {
                var v: Float = 0
                for l in 0..<4 { v += latent.pointer[l * h * w + p] * coefficients[l][c] }
                pixels[p * 3 + c] = UInt8((min(max(v * 0.5 + 0.5, 0), 1) * 255).rounded())
            }
        }
        return RGBImage(width: w, height: h, pixels: pixels)
    }
}
