/// What a checkpoint holds, judged from tensor names and a few shapes.
public enum ModelKind: String, Sendable, CaseIterable {
    /// One file with UNet (`model.diffusion_model.*`), VAE (`first_stage_model.*`) and CLIP
    /// (`cond_stage_model.transformer.*`) — the usual A1111 model file.
    case sd1Checkpoint
    case sd1UNet
    case sd1VAE
    case sd1TextEncoder
    case diffusersFolderSD1
    case textualInversion
    /// SD 2.x (OpenCLIP text encoder, 1024-wide cross-attention): recognised, not supported.
    case sd2
    /// SDXL (two text encoders, 2048-wide cross-attention): recognised, not supported.
    case sdxl
    /// A UNet taking 9 input channels (latents + mask + masked image).
    case inpainting
    case unknown
}

public struct ModelDetection: Sendable, CustomStringConvertible {
    public let kind: ModelKind
    /// A short human sentence, e.g. "SD 1.x checkpoint (UNet, VAE, text encoder)".
    public let summary: String
    public var description: String { summary }

    /// Detects the kind of an opened checkpoint.
    public init(_ archive: CheckpointArchive) {
        (kind, summary) = ModelDetection.classify(archive)
    }

    private static func classify(_ archive: CheckpointArchive) -> (ModelKind, String) {
        let folder = archive.format == .diffusersFolder
        // In folders, judge the layout of each component's own names.
        var names: [String: TensorEntry] = [:]
        for (n, e) in archive.tensors {
            names[folder ? String(n[(n.firstIndex(of: "/").map { n.index(after: $0) } ?? n.startIndex)...]) : n] = e
        }
        let keys = Array(names.keys)
        func any(_ prefix: String) -> Bool { keys.contains { $0.hasPrefix(prefix) } }
        func anyContains(_ part: String) -> Bool { keys.contains { $0.contains(part) } }
        func shape(_ n: String) -> [Int]? { names[n]?.shape }
        func shapeEnding(_ suffix: String) -> [Int]? { keys.first { $0.hasSuffix(suffix) }.flatMap(shape) }

        if !folder, let ti = try? TextualInversionEmbedding(archive) {
            let what = ti.layout == .sdxl ? "SDXL textual-inversion embedding" : "textual-inversion embedding"
            let n = ti.vectorCount
            return (.textualInversion, "\(what) (\(ti.layout.rawValue) layout, \(n) vector\(n == 1 ? "" : "s") of \(ti.width))")
        }

        let context = shapeEnding("attn2.to_k.weight").flatMap { $0.count == 2 ? $0[1] : nil }
        let textWidth = shapeEnding("embeddings.token_embedding.weight").flatMap { $0.count == 2 ? $0[1] : nil }
        let inChannels = (shape("model.diffusion_model.input_blocks.0.0.weight") ?? shape("input_blocks.0.0.weight")
            ?? shape("conv_in.weight").flatMap { s in any("time_embedding.") || any("down_blocks.0.attentions") ? s : nil })
            .flatMap { $0.count == 4 ? $0[1] : nil }

        let ldmUNet = any("model.diffusion_model."), ldmVAE = any("first_stage_model."), ldmCLIP = any("cond_stage_model.transformer.")
        let diffusersUNet = any("time_embedding.linear_1.") && any("down_blocks.")
        let bareLDMUNet = any("input_blocks.0.0.") && any("middle_block.")
        let vae = (any("encoder.down_blocks.") && any("decoder.up_blocks.")) || (any("encoder.down.") && any("decoder.up."))
        let textEncoder = any("text_model.embeddings.token_embedding.") || any("embeddings.token_embedding.")
        let components = folder ? Set(archive.components.keys) : []

        if any("conditioner.embedders.") || anyContains("add_embedding.") || any("model.diffusion_model.label_emb.")
            || any("label_emb.") || context == 2048 || components.contains("text_encoder_2") {
            return (.sdxl, "SDXL \(folder ? "diffusers folder" : "model") (not supported: SD 1.x only)")
        }
        if any("cond_stage_model.model.") || context == 1024 || textWidth == 1024 {
            let inpaint = inChannels == 9 ? " inpainting" : ""
            return (.sd2, "SD 2.x\(inpaint) \(folder ? "diffusers folder" : "model") (OpenCLIP text encoder, 1024-wide cross-attention; not supported: SD 1.x only)")
        }
        if inChannels == 9 {
            return (.inpainting, "SD 1.x inpainting \(folder ? "diffusers folder" : ldmUNet ? "checkpoint" : "UNet") (9-channel UNet input)")
        }
        if folder {
            var parts: [String] = []
            if let u = archive.components["unet"], u.tensors.keys.contains(where: { $0.hasPrefix("down_blocks.") }) { parts.append("UNet") }
            if archive.components["vae"] != nil { parts.append("VAE") }
            if archive.components["text_encoder"] != nil { parts.append("text encoder") }
            if !parts.isEmpty {
                return (.diffusersFolderSD1, "diffusers SD 1.x folder (\(parts.joined(separator: ", ")))")
            }
        }
        if ldmUNet || (ldmVAE && ldmCLIP) {
            var parts: [String] = []
            if ldmUNet { parts.append("UNet") }
            if ldmVAE { parts.append("VAE") }
            if ldmCLIP { parts.append("text encoder") }
            let partial = parts.count == 3 ? "" : "; incomplete"
            return (.sd1Checkpoint, "SD 1.x checkpoint (\(parts.joined(separator: ", "))\(partial))")
        }
        if diffusersUNet { return (.sd1UNet, "SD 1.x UNet (diffusers layout)") }
        if bareLDMUNet { return (.sd1UNet, "SD 1.x UNet (LDM layout)") }
        if vae || ldmVAE {
            return (.sd1VAE, "SD 1.x VAE (\(any("encoder.down_blocks.") ? "diffusers" : "LDM") layout)")
        }
        if textEncoder {
            return (.sd1TextEncoder, "SD 1.x CLIP text encoder\(any("text_model.") ? "" : " (keys without text_model. prefix)")")
        }
        let count = archive.tensors.count
        return (.unknown, count == 0 ? "no tensors" : "unrecognised model (\(count) tensor\(count == 1 ? "" : "s"))")
    }
}

extension CheckpointArchive {
    /// What this checkpoint holds.
    public var detection: ModelDetection { ModelDetection(self) }
}
