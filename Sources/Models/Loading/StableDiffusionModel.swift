import Checkpoints
import Foundation
import Tensors

/// The three networks of an SD 1.x model and its tokenizer, loaded from a diffusers folder or a
/// single-file checkpoint (.safetensors or .ckpt; fp32 or fp16; EMA-only or full).
public final class StableDiffusionModel {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    public let unet: UNet2DConditionModel
    public let vae: AutoencoderKL
    /// What was loaded, for logs ("diffusers SD 1.x folder (UNet, VAE, text encoder)").
    public let summary: String
    /// Checkpoint keys no block used (EMA copies, training state, …), by component.
    public let unusedKeys: [String: [String]]
    /// How the layer weights are held.
    public let precision: Precision
    /// The fast-mode kernels in use (empty: exact float32 arithmetic).
    public let fast: FastMath
    /// The mapped files each network's weights borrow from.
    private let files: [Component: [PageReleasing]]

    /// The three networks, for releasing their memory between the phases of a run.
    public enum Component: Sendable, CaseIterable { case textEncoder, unet, vae }

    init(tokenizer: CLIPTokenizer, textEncoder: CLIPTextModel, unet: UNet2DConditionModel, vae: AutoencoderKL,
         summary: String, unusedKeys: [String: [String]], precision: Precision, fast: FastMath,
         files: [Component: [PageReleasing]]) {
        self.tokenizer = tokenizer
        self.textEncoder = textEncoder
        self.unet = unet
        self.vae = vae
        self.summary = summary
        self.unusedKeys = unusedKeys
        self.precision = precision
        self.fast = fast
        self.files = files
    }

    /// Drops the resident pages of the files `component` borrows weights from (a phase of the run
    /// is over: the text encoder after the prompt, the UNet before the VAE decode). They are read
    /// back from the page cache if needed again; a single-file checkpoint shares one file among
    /// all three, so this may also drop the others' pages — they fault back in as well.
    /// The text encoder's weights packed for its products go too (packed again on the next prompt).
    public func releaseResidentWeights(_ component: Component) {
        if component == .textEncoder { textEncoder.releasePackedWeights() }
        for f in files[component] ?? [] { f.releaseResidentPages() }
    }

    /// Architecture settings. Single-file checkpoints carry none: SD 1.5's are assumed (with the
    /// widths read off the weights) unless given here; diffusers folders have their config.json files.
    public struct Configs: Sendable {
        public var unet: UNetConfig
        public var vae: VAEConfig
        public var text: CLIPTextConfig
        public init(unet: UNetConfig = .sd15, vae: VAEConfig = .sd15, text: CLIPTextConfig = .sd15) {
            self.unet = unet
            self.vae = vae
            self.text = text
        }

        /// The config.json files of a diffusers folder (missing ones: SD 1.5's).
        public init(diffusersFolder path: String) throws {
            let root = URL(fileURLWithPath: path)
            func data(_ component: String) throws -> Data? {
                let url = root.appendingPathComponent(component).appendingPathComponent("config.json")
                return FileManager.default.fileExists(atPath: url.path) ? try Data(contentsOf: url) : nil
            }
            unet = try data("unet").map { try UNetConfig(json: $0, source: "\(path)/unet/config.json") } ?? .sd15
            vae = try data("vae").map { try VAEConfig(json: $0, source: "\(path)/vae/config.json") } ?? .sd15
            text = try data("text_encoder").map { try CLIPTextConfig(json: $0, source: "\(path)/text_encoder/config.json") } ?? .sd15
        }
    }

    /// Loads every part; `vaeEncoder: false` skips the encoder (txt2img does not need it).
    /// `configs` overrides the architecture assumed for single-file checkpoints.
    /// `precision`: how layer weights are held (16 bits halve the memory; sums stay float32).
    /// `fast`: kernels other than the plain im2col path (FastMath.default: Winograd; [] = plain).
    public static func load(_ path: String, configs: Configs? = nil, vaeEncoder: Bool = true,
                            precision: Precision = .fp32, fast: FastMath = .default) throws -> StableDiffusionModel {
        let archive = try Checkpoint.open(path)
        let detection = ModelDetection(archive)
        switch detection.kind {
        case .diffusersFolderSD1:
            return try loadFolder(archive, path: path, summary: detection.summary, vaeEncoder: vaeEncoder, precision: precision, fast: fast)
        case .sd1Checkpoint:
            return try loadSingleFile(archive, configs: configs, summary: detection.summary, vaeEncoder: vaeEncoder, precision: precision, fast: fast)
        case .sd2, .sdxl, .inpainting:
            throw WeightLoadError(description: "\(archive.name): \(detection.summary); Pareidolia runs SD 1.x text-to-image models only")
        default:
            throw WeightLoadError(description: "\(archive.name): expected an SD 1.x model (a diffusers folder or a single-file checkpoint), found \(detection.summary)")
        }
    }

    /// Only the VAE decoder of an SD 1.x model (diffusers folder or single file), for decoding
    /// recorded latents (reports) without binding the UNet and text encoder.
    public static func loadVAEDecoder(_ path: String, configs: Configs? = nil, precision: Precision = .fp32) throws -> AutoencoderKL {
        let archive = try Checkpoint.open(path)
        let detection = ModelDetection(archive)
        let w: WeightBinder, config: VAEConfig
        switch detection.kind {
        case .diffusersFolderSD1:
            guard archive.components["vae"] != nil else { throw WeightLoadError(description: "\(archive.name): the diffusers folder has no vae/ weights") }
            config = try Configs(diffusersFolder: path).vae
            w = WeightBinder(source: ArchiveWeights(archive, prefix: "vae/", rename: KeyLayouts.vaeLegacyDiffusers), precision: precision, fast: vaeFast)
        case .sd1Checkpoint:
            config = configs?.vae ?? .sd15
            let levels = config.blockOutChannels.count
            w = WeightBinder(source: ArchiveWeights(archive, prefix: "first_stage_model.") { KeyLayouts.vae(ldm: $0, levels: levels) },
                             precision: precision, fast: vaeFast)
        default:
            throw WeightLoadError(description: "\(archive.name): expected an SD 1.x model (a diffusers folder or a single-file checkpoint), found \(detection.summary)")
        }
        let vae = AutoencoderKL(w, config: config, decoderOnly: true)
        // The other networks' keys (single file) and the encoder's are not this loader's business.
        _ = try w.finish(model: "VAE", ignoringUnused: { _ in true })
        return vae
    }

    /// The VAE's fast mode is Winograd only: its pixels are the output, and bf16 products cost
    /// 3.0e-2 of max |pixel| on tiny-sd (Winograd: 3.9e-6), UNet noise predictions only 5e-3.
    static let vaeFast: FastMath = .winograd

    // Keys real checkpoints carry that no network needs.
    static func ignorable(_ key: String) -> Bool {
        key.hasSuffix("position_ids") || key.hasPrefix("model_ema.") || key.hasPrefix("loss.")
    }

    private static func loadFolder(_ archive: CheckpointArchive, path: String, summary: String, vaeEncoder: Bool,
                                   precision: Precision, fast: FastMath) throws -> StableDiffusionModel {
        let root = URL(fileURLWithPath: path)
        for part in ["unet", "vae", "text_encoder"] where archive.components[part] == nil {
            throw WeightLoadError(description: "\(archive.name): the diffusers folder has no \(part)/ weights")
        }
        let c = try Configs(diffusersFolder: path)
        let (unetConfig, vaeConfig, textConfig) = (c.unet, c.vae, c.text)

        let unetW = WeightBinder(source: ArchiveWeights(archive, prefix: "unet/"), precision: precision, fast: fast)
        let vaeW = WeightBinder(source: ArchiveWeights(archive, prefix: "vae/", rename: KeyLayouts.vaeLegacyDiffusers), precision: precision,
                                fast: fast.intersection(vaeFast))
        // The text encoder stays exact: it is 1% of the time and its output conditions every step.
        let textW = WeightBinder(source: ArchiveWeights(archive, prefix: "text_encoder/"), precision: precision)
        let tokenizerFolder = root.appendingPathComponent("tokenizer")
        let tokenizer = FileManager.default.fileExists(atPath: tokenizerFolder.path) ? try CLIPTokenizer(folder: tokenizerFolder) : CLIPTokenizer()
        return try assemble(tokenizer: tokenizer, unet: (unetW, unetConfig), vae: (vaeW, vaeConfig), text: (textW, textConfig),
                            summary: summary, vaeEncoder: vaeEncoder)
    }

    private static func loadSingleFile(_ archive: CheckpointArchive, configs: Configs?, summary: String, vaeEncoder: Bool,
                                       precision: Precision, fast: FastMath) throws -> StableDiffusionModel {
        var unetConfig = configs?.unet ?? .sd15
        let unetPrefix = "model.diffusion_model."
        // Without a given config, read the few sizes that fine-tunes may change off the weights.
        // They size the networks, so a file's word is checked first: a shape may lie (a billion
        // channels in zero bytes), and must fail here rather than in an allocation or an overflow.
        func implausible(_ key: String, _ shape: [Int], _ expected: String) -> WeightLoadError {
            WeightLoadError(description: "\(archive.name): \(key) is \(shape), implausible for SD 1.x (\(expected))")
        }
        let convKey = unetPrefix + "input_blocks.0.0.weight"
        if configs == nil, let conv = archive[convKey]?.shape, conv.count == 4 {
            guard (1...1280).contains(conv[0]), (1...16).contains(conv[1]) else {
                throw implausible(convKey, conv, "320 output channels, 4 input channels")
            }
            unetConfig.inChannels = conv[1]
            unetConfig.blockOutChannels = unetConfig.blockOutChannels.map { $0 * conv[0] / 320 }
        }
        let keyKey = unetPrefix + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
        if configs == nil, let k = archive[keyKey]?.shape, k.count == 2 {
            guard (1...4096).contains(k[1]) else { throw implausible(keyKey, k, "a context of 768") }
            unetConfig.crossAttentionDim = k[1]
        }
        var textConfig = configs?.text ?? .sd15
        let textPrefix = "cond_stage_model.transformer."
        let layerIndices = archive.names.compactMap { name -> Int? in
            guard name.hasPrefix(textPrefix), let r = name.range(of: "encoder.layers.") else { return nil }
            return Int(name[r.upperBound...].prefix { $0.isNumber })
        }
        if configs == nil, let last = layerIndices.max() {
            guard (0..<64).contains(last) else {
                throw WeightLoadError(description: "\(archive.name): text encoder layer \(last) named, implausible for SD 1.x (12 layers)")
            }
            textConfig.layers = last + 1
        }
        let vaeConfig = configs?.vae ?? .sd15
        let l = unetConfig.layersPerBlock, levels = vaeConfig.blockOutChannels.count
        let unetW = WeightBinder(source: ArchiveWeights(archive, prefix: unetPrefix) { KeyLayouts.unet(ldm: $0, layersPerBlock: l) },
                                 precision: precision, fast: fast)
        let vaeW = WeightBinder(source: ArchiveWeights(archive, prefix: "first_stage_model.") { KeyLayouts.vae(ldm: $0, levels: levels) },
                                precision: precision, fast: fast.intersection(vaeFast))
        let textW = WeightBinder(source: ArchiveWeights(archive, prefix: textPrefix), precision: precision)  // exact, as above
        return try assemble(tokenizer: CLIPTokenizer(), unet: (unetW, unetConfig), vae: (vaeW, vaeConfig), text: (textW, textConfig),
                            summary: summary, vaeEncoder: vaeEncoder)
    }

    private static func assemble(tokenizer: CLIPTokenizer, unet: (WeightBinder, UNetConfig), vae: (WeightBinder, VAEConfig),
                                 text: (WeightBinder, CLIPTextConfig), summary: String, vaeEncoder: Bool) throws -> StableDiffusionModel {
        let textEncoder = CLIPTextModel(text.0, config: text.1)
        let unetModel = UNet2DConditionModel(unet.0, config: unet.1)
        let vaeModel = AutoencoderKL(vae.0, config: vae.1, decoderOnly: !vaeEncoder)
        var unused: [String: [String]] = [:]
        unused["text_encoder"] = try text.0.finish(model: "text encoder", ignoringUnused: ignorable)
        unused["unet"] = try unet.0.finish(model: "UNet", ignoringUnused: ignorable)
        unused["vae"] = try vae.0.finish(model: "VAE", ignoringUnused: { ignorable($0) || (!vaeEncoder && ($0.hasPrefix("encoder.") || $0.hasPrefix("quant_conv."))) })
        let model = StableDiffusionModel(tokenizer: tokenizer, textEncoder: textEncoder, unet: unetModel, vae: vaeModel,
                                         summary: summary, unusedKeys: unused.filter { !$0.value.isEmpty },
                                         precision: unet.0.precision, fast: unet.0.fast,
                                         files: [.textEncoder: text.0.mappedFiles, .unet: unet.0.mappedFiles, .vae: vae.0.mappedFiles])
        // 16-bit weights were copied out of an fp32 file (or borrow a 16-bit one): the fp32 pages
        // read while rounding are not needed now.
        if model.precision != .fp32 || !model.fast.isEmpty { for c in Component.allCases { model.releaseResidentWeights(c) } }
        return model
    }
}
