import Foundation

/// A1111's generation-parameters text (PNG chunk "parameters"), which A1111, sd.cpp and other
/// tools read back: prompt, `Negative prompt:` line, then `key: value` pairs.
public enum Infotext {
    /// The sampler as the infotext names it: diffusers' schedulers by their own names with
    /// " (diffusers)", which A1111 cannot mistake for one of its k-diffusion samplers (its "Euler a"
    /// runs another schedule) and which `--infotext` reads back.
    public static func samplerName(_ kind: SamplerKind) -> String { kind.rawValue + " (diffusers)" }

    /// `embeddings`: (trigger, short hash) of the textual-inversion files used, as A1111's `TI hashes`.
    public static func make(settings s: GenerationSettings, modelName: String?, modelHash: String?,
                            embeddings: [(trigger: String, hash: String)] = []) -> String {
        var pairs: [(String, String)] = [("Steps", "\(s.steps)")]
        switch s.samplerChoice {
        case let .diffusers(k): pairs.append(("Sampler", samplerName(k)))
        case let .a1111(a):
            // As A1111: the resolved schedule's label, none for the model's own (uniform) one.
            pairs.append(("Sampler", a.sampler.rawValue))
            let resolved = a.schedule == .automatic ? a.sampler.automatic : a.schedule
            if a.schedule != .automatic || a.sampler.automatic != .uniform { pairs.append(("Schedule type", resolved.label)) }
        }
        pairs += [("CFG scale", format(s.guidance)), ("Seed", "\(s.seed)"), ("Size", "\(s.width)x\(s.height)")]
        if let modelHash { pairs.append(("Model hash", modelHash)) }
        if let modelName { pairs.append(("Model", modelName)) }
        if s.clipSkip > 1 { pairs.append(("Clip skip", "\(s.clipSkip)")) }
        if let a = s.a1111, a.ensd != 0 { pairs.append(("ENSD", "\(a.ensd)")) }
        if let a = s.a1111, a.sampler == .unipc, !a.unipc.isDefault {
            let u = a.unipc
            pairs += [("UniPC variant", u.variant.rawValue), ("UniPC skip type", u.skipType.rawValue),
                      ("UniPC order", "\(u.order)"), ("UniPC lower order final", u.lowerOrderFinal ? "True" : "False")]
        }
        if s.rng == .cpu { pairs.append(("RNG", "CPU")) }  // A1111 omits its default (GPU = philox)
        if !embeddings.isEmpty { pairs.append(("TI hashes", embeddings.map { "\($0.trigger): \($0.hash)" }.joined(separator: ", "))) }
        if let sep = s.separation { pairs.append(("Pareidolia remedy", sep.infotext)) }
        pairs.append(("Version", "Pareidolia \(Version.engine)"))
        var lines = [s.prompt]
        if !s.negativePrompt.isEmpty { lines.append("Negative prompt: " + s.negativePrompt) }
        lines.append(pairs.map { k, v in k == v ? k : "\(k): \(quote(v))" }.joined(separator: ", "))
        return lines.joined(separator: "\n")
    }

    /// JSON-quotes values containing `,`, `:` or a newline, as A1111's `quote` does.
    static func quote(_ v: String) -> String {
        guard v.contains(",") || v.contains(":") || v.contains("\n") else { return v }
        var out = "\""
        for ch in v.unicodeScalars {
            switch ch {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out + "\""
    }

    static func format(_ x: Float) -> String {
        x == x.rounded() ? String(format: "%.1f", x) : "\(x)"
    }
}
