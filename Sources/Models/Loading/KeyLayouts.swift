/// Translation of original (CompVis/LDM) single-file key names into diffusers names, which is
/// the one naming the model code binds against. Each function returns nil for keys that have
/// no diffusers counterpart (EMA copies, training state), which loading then reports as unused.
public enum KeyLayouts {
    /// `model.diffusion_model.*` (prefix already removed) → diffusers `unet/` names.
    /// `layersPerBlock` fixes the block numbering (SD 1.x: 2).
    public static func unet(ldm key: String, layersPerBlock l: Int) -> String? {
        var parts = key.split(separator: ".").map(String.init)
        guard !parts.isEmpty else { return nil }
        func rest(_ n: Int) -> [String] { Array(parts.dropFirst(n)) }
        var out: [String]
        switch parts[0] {
        case "time_embed":
            guard parts.count >= 2 else { return nil }
            guard let which = ["0": "linear_1", "2": "linear_2"][parts[1]] else { return nil }
            out = ["time_embedding", which] + rest(2)
        case "input_blocks":
            guard parts.count >= 4, let k = Int(parts[1]), let m = Int(parts[2]) else { return nil }
            if k == 0 { out = ["conv_in"] + rest(3); break }
            let level = (k - 1) / (l + 1), j = (k - 1) % (l + 1)
            if j == l {  // the level's downsampler: input_blocks.k.0.op
                guard parts[3] == "op" else { return nil }
                out = ["down_blocks", "\(level)", "downsamplers", "0", "conv"] + rest(4)
            } else {
                out = ["down_blocks", "\(level)", m == 0 ? "resnets" : "attentions", "\(j)"] + rest(3)
            }
        case "middle_block":
            guard parts.count >= 3, let m = Int(parts[1]) else { return nil }
            let names = [0: ["resnets", "0"], 1: ["attentions", "0"], 2: ["resnets", "1"]]
            guard let n = names[m] else { return nil }
            out = ["mid_block"] + n + rest(2)
        case "output_blocks":
            guard parts.count >= 4, let k = Int(parts[1]), let m = Int(parts[2]) else { return nil }
            let level = k / (l + 1), j = k % (l + 1)
            if m > 0 && parts[3] == "conv" {  // upsampler: output_blocks.k.{1|2}.conv
                out = ["up_blocks", "\(level)", "upsamplers", "0", "conv"] + rest(4)
            } else {
                out = ["up_blocks", "\(level)", m == 0 ? "resnets" : "attentions", "\(j)"] + rest(3)
            }
        case "out":
            guard parts.count >= 2, let which = ["0": "conv_norm_out", "2": "conv_out"][parts[1]] else { return nil }
            out = [which] + rest(2)
        default:
            return nil
        }
        // Resnet sub-module names, on components between others (Foundation's string
        // replacement, once per name, was a tenth of loading a single-file checkpoint).
        let resnetNames = ["in_layers": ["0": "norm1", "2": "conv1"], "emb_layers": ["1": "time_emb_proj"],
                           "out_layers": ["0": "norm2", "3": "conv2"]]
        parts = []
        var i = 0
        while i < out.count {
            if i > 0, i + 2 < out.count, let name = resnetNames[out[i]]?[out[i + 1]] {
                parts.append(name); i += 2
            } else if i > 0, i + 1 < out.count, out[i] == "skip_connection" {
                parts.append("conv_shortcut"); i += 1
            } else {
                parts.append(out[i]); i += 1
            }
        }
        return parts.joined(separator: ".")
    }

    /// `first_stage_model.*` (prefix removed) → diffusers `vae/` names. `levels`: 4 for SD.
    public static func vae(ldm key: String, levels: Int) -> String? {
        var p = key.split(separator: ".").map(String.init)
        guard p.count >= 2 else { return nil }
        switch p[0] {
        case "quant_conv", "post_quant_conv": return key
        case "encoder", "decoder": break
        default: return nil
        }
        let side = p[0]
        var body = Array(p.dropFirst())
        switch body[0] {
        case "down" where body.count >= 4:
            if body[2] == "block" { body = ["down_blocks", body[1], "resnets"] + body.dropFirst(3) }
            else if body[2] == "downsample" { body = ["down_blocks", body[1], "downsamplers", "0"] + body.dropFirst(3) }
            else { return nil }
        case "up" where body.count >= 4:
            guard let i = Int(body[1]) else { return nil }
            let level = "\(levels - 1 - i)"  // LDM numbers the decoder's levels from the bottom
            if body[2] == "block" { body = ["up_blocks", level, "resnets"] + body.dropFirst(3) }
            else if body[2] == "upsample" { body = ["up_blocks", level, "upsamplers", "0"] + body.dropFirst(3) }
            else { return nil }
        case "mid" where body.count >= 3:
            switch body[1] {
            case "block_1": body = ["mid_block", "resnets", "0"] + body.dropFirst(2)
            case "block_2": body = ["mid_block", "resnets", "1"] + body.dropFirst(2)
            case "attn_1":
                let inner = ["norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"]
                guard let n = inner[body[2]] else { return nil }
                body = ["mid_block", "attentions", "0", n] + body.dropFirst(3)
            default: return nil
            }
        case "norm_out": body = ["conv_norm_out"] + body.dropFirst()
        case "conv_in", "conv_out": break
        default: return nil
        }
        p = [side] + body
        return p.joined(separator: ".").replacingOccurrences(of: ".nin_shortcut.", with: ".conv_shortcut.")
    }

    /// Old diffusers VAE attention names (`query`, `key`, `value`, `proj_attn`) → current ones.
    public static func vaeLegacyDiffusers(_ key: String) -> String {
        let renames = [".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."]
        var k = key
        for (old, new) in renames where k.contains(".attentions.") { k = k.replacingOccurrences(of: old, with: new) }
        return k
    }
}
