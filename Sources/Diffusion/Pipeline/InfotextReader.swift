import Checkpoints
import Foundation

/// Reading A1111's generation-parameters text back: the prompt lines, the `Negative prompt:`
/// lines, and the last line's `key: value` pairs, split as A1111's `parse_generation_parameters`
/// splits them (values with `,` or `:` are JSON-quoted).
extension Infotext {
    public struct Parsed: Equatable, Sendable {
        public var prompt: String
        public var negativePrompt: String
        /// The parameters in file order, values unquoted.
        public var pairs: [Pair]

        public struct Pair: Equatable, Sendable {
            public let key: String, value: String
        }

        public func value(_ key: String) -> String? { pairs.first { $0.key == key }?.value }
    }

    public struct ReadError: Error, CustomStringConvertible, Sendable {
        public let description: String
        /// Messages quote the infotext's own values, which may hold a carriage return or worse.
        public init(description: String) { self.description = CheckpointError.oneLine(description) }
    }

    // A1111's re_param: a key of word characters, spaces, '-' and '/', then a quoted or plain value.
    private static let parameter = try! NSRegularExpression(pattern: #"\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)"#)

    public static func parse(_ text: String) -> Parsed {
        var lines = text.trimmingCharacters(in: .whitespacesAndNewlines).components(separatedBy: "\n")
        var last = lines.removeLast()
        let whole = last as NSString
        var matches = parameter.matches(in: last, range: NSRange(location: 0, length: whole.length))
        // Fewer than three pairs: the last line is prompt text, not parameters (A1111's rule).
        if matches.count < 3 {
            lines.append(last)
            last = ""
            matches = []
        }
        var prompt = "", negative = "", inNegative = false
        for line in lines {
            var l = line.trimmingCharacters(in: .whitespaces)
            if l.hasPrefix("Negative prompt:") {
                inNegative = true
                l = String(l.dropFirst("Negative prompt:".count)).trimmingCharacters(in: .whitespaces)
            }
            if inNegative { negative += (negative.isEmpty ? "" : "\n") + l } else { prompt += (prompt.isEmpty ? "" : "\n") + l }
        }
        let pairs = matches.map { m -> Parsed.Pair in
            let key = whole.substring(with: m.range(at: 1)).trimmingCharacters(in: .whitespaces)
            var value = whole.substring(with: m.range(at: 2)).trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), let data = value.data(using: .utf8), let s = try? JSONDecoder().decode(String.self, from: data) { value = s }
            return Parsed.Pair(key: key, value: value)
        }
        return Parsed(prompt: prompt, negativePrompt: negative, pairs: pairs)
    }

    /// What an infotext asks of the engine beyond `GenerationSettings`: the embeddings and model
    /// it names by hash, and warnings for what is given but unused.
    public struct Recipe: Sendable {
        public var settings: GenerationSettings
        /// `TI hashes`: embedding name → A1111's short hash (first 12 hex of the file's SHA-256).
        public var embeddingHashes: [(name: String, hash: String)] = []
        public var modelHash: String?
        public var modelName: String?
        public var warnings: [String] = []
        /// The settings the infotext gave (so flags given on the command line can win).
        public var given: Set<String> = []
        /// Why the infotext's sampler cannot be run (a `--sampler` flag can stand in for it).
        public var samplerProblem: String?
        /// A1111's eta noise seed delta (0: none).
        public var ensd = 0
        /// A1111's UniPC settings ("UniPC order" and the rest), for a UniPC run.
        public var unipc = UniPCOptions()

        /// The sampler to run: `override` (a flag) or the infotext's; throws the infotext's problem
        /// when it is the one asked for. ENSD goes to an A1111 sampler; a diffusers sampler that
        /// draws noise cannot honour it (refused).
        public func sampler(override: SamplerChoice?) throws -> SamplerChoice {
            if override == nil, let samplerProblem { throw ReadError(description: samplerProblem) }
            var choice = override ?? settings.samplerChoice
            if case var .a1111(a) = choice {
                a.ensd = UInt64(max(0, ensd))
                if a.sampler == .unipc { a.unipc = unipc }
                choice = .a1111(a)
            } else if ensd != 0 && choice.drawsNoise {
                throw ReadError(description: "infotext ENSD: \(ensd): diffusers' samplers draw their noise from the one generator; A1111's reseed it by ENSD (choose an A1111 sampler, e.g. --sampler \"Euler a\")")
            }
            return choice
        }
    }

    /// Keys naming things the engine does not do: refused, never silently dropped.
    static let refused: [String: String] = [
        "Denoising strength": "img2img / hires fix", "Hires upscale": "hires fix", "Hires steps": "hires fix",
        "Hires upscaler": "hires fix", "Hires resize": "hires fix", "Hires sampler": "hires fix", "Hires prompt": "hires fix",
        "Hires negative prompt": "hires fix", "Hires CFG Scale": "hires fix", "Hires schedule type": "hires fix",
        "Mask blur": "inpainting", "Inpaint area": "inpainting", "Masked area padding": "inpainting",
        "Variation seed": "variation seeds", "Variation seed strength": "variation seeds", "Seed resize from": "seed resizing",
        "Face restoration": "face restoration", "Refiner": "a refiner model", "Refiner switch at": "a refiner model",
        "Lora hashes": "LoRA", "Tiling": "tiling", "ControlNet": "ControlNet", "ControlNet 0": "ControlNet",
        "Sampler eta": "a sampler eta", "Eta": "a sampler eta", "Eta DDIM": "a sampler eta", "Hypernet": "hypernetworks",
        "SGM noise multiplier": "SGM noise", "Noise multiplier": "a noise multiplier", "Downcast alphas_cumprod": "downcast alphas",
        "Pad conds": "padded conditioning",
    ]
    /// Keys read for information only.
    static let informational: Set<String> = ["Model", "Version", "Token merging ratio"]

    /// Turns parsed parameters into settings; a malformed value throws one line naming its key.
    public static func recipe(_ parsed: Parsed, base: GenerationSettings) throws -> Recipe {
        var r = Recipe(settings: base)
        r.settings.prompt = parsed.prompt
        r.settings.negativePrompt = parsed.negativePrompt
        r.given = ["prompt", "negative"]
        func bad(_ key: String, _ value: String, _ expected: String) -> ReadError {
            ReadError(description: "infotext \(key): \"\(value)\": expected \(expected)")
        }
        var sampler: String?, schedule: String?, ensd: Int?
        var unipcKeys: [String] = []
        for p in parsed.pairs {
            switch p.key {
            case "Steps":
                guard let v = Int(p.value), (1...1000).contains(v) else { throw bad(p.key, p.value, "a whole number 1…1000") }
                r.settings.steps = v; r.given.insert("steps")
            case "Sampler": sampler = p.value
            case "Schedule type": schedule = p.value
            case "CFG scale":
                guard let v = Float(p.value), v.isFinite, v >= 0 else { throw bad(p.key, p.value, "a number ≥ 0") }
                r.settings.guidance = v; r.given.insert("guidance")
            case "Seed":
                guard let v = UInt64(p.value) else { throw bad(p.key, p.value, "a whole number ≥ 0") }
                r.settings.seed = v; r.given.insert("seed")
            case "Size":
                let wh = p.value.lowercased().split(separator: "x").compactMap { Int($0) }
                guard wh.count == 2, wh[0] > 0, wh[1] > 0, wh[0] % 8 == 0, wh[1] % 8 == 0 else { throw bad(p.key, p.value, "WIDTHxHEIGHT, multiples of 8") }
                r.settings.width = wh[0]; r.settings.height = wh[1]; r.given.insert("size")
            case "Clip skip":
                guard let v = Int(p.value), v >= 1 else { throw bad(p.key, p.value, "a whole number ≥ 1") }
                r.settings.clipSkip = v; r.given.insert("clip skip")
            case "ENSD":
                guard let v = Int(p.value) else { throw bad(p.key, p.value, "a whole number") }
                ensd = v
            case "RNG":
                switch p.value {
                case "CPU": r.settings.rng = .cpu
                case "GPU": r.settings.rng = .philox
                case "NV": throw ReadError(description: "infotext RNG: NV (A1111's NVidia-compatible CPU generator) is not one the engine has (it has CPU and GPU = philox)")
                default: throw bad(p.key, p.value, "CPU, GPU or NV")
                }
                r.given.insert("rng")
            case "Emphasis":
                guard p.value == "Original" else {
                    throw ReadError(description: "infotext Emphasis: \(p.value): the engine applies A1111's Original emphasis only")
                }
            case "TI hashes":
                for item in p.value.split(separator: ",") {
                    let kv = item.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    guard kv.count == 2, !kv[0].isEmpty else { throw bad(p.key, p.value, "name: hash, name: hash") }
                    r.embeddingHashes.append((kv[0], kv[1]))
                }
            case "Model hash": r.modelHash = p.value
            case "Model": r.modelName = p.value
            case "Pareidolia remedy":
                r.settings.separation = try Separation(infotext: p.value)
                r.given.insert("separation")
            case "UniPC variant":
                guard let v = UniPCOptions.Variant(rawValue: p.value) else {
                    if p.value == "vary_coeff" { throw ReadError(description: "infotext UniPC variant: vary_coeff is not in the engine (it runs bh1 and bh2)") }
                    throw bad(p.key, p.value, "bh1 or bh2")
                }
                r.unipc.variant = v; unipcKeys.append(p.key)
            case "UniPC skip type":
                guard let v = UniPCOptions.SkipType(rawValue: p.value) else { throw bad(p.key, p.value, "time_uniform, time_quadratic or logSNR") }
                r.unipc.skipType = v; unipcKeys.append(p.key)
            case "UniPC order":
                guard let v = Int(p.value), (1...50).contains(v) else { throw bad(p.key, p.value, "a whole number 1…50") }
                r.unipc.order = v; unipcKeys.append(p.key)
            case "UniPC lower order final":
                guard let v = Bool(p.value.lowercased()) else { throw bad(p.key, p.value, "True or False") }
                r.unipc.lowerOrderFinal = v; unipcKeys.append(p.key)
            case "VAE", "VAE hash":
                r.warnings.append("infotext \(p.key): \(p.value): the engine decodes with the model's own VAE")
            default:
                if let what = refused[p.key] {
                    throw ReadError(description: "infotext \(p.key): this image used \(what), which the engine does not do")
                }
                if !informational.contains(p.key) { r.warnings.append("infotext \(p.key): unknown to the engine, ignored") }
            }
        }
        // A1111 writes no RNG key for its default, the GPU generator.
        if !r.given.contains("rng") { r.settings.rng = .philox; r.given.insert("rng") }
        if let sampler, let s = try? A1111Sampler.named(sampler), s.runsTimesteps, let given = schedule {
            // A1111 ignores the schedule type for its timestep samplers and writes none.
            r.warnings.append("infotext Schedule type: \(given): \(sampler) runs A1111's own timesteps, ignored")
            schedule = nil
        }
        if !unipcKeys.isEmpty, sampler != A1111Sampler.unipc.rawValue {
            r.warnings.append("infotext \(unipcKeys.joined(separator: ", ")): the sampler is not UniPC, ignored")
        }
        if let sampler {
            do {
                r.settings.samplerChoice = try SamplerChoice.parse(sampler, schedule: schedule)
                r.given.insert("sampler")
            } catch { r.samplerProblem = "infotext Sampler: \(sampler)\(schedule.map { ", schedule \($0)" } ?? ""): \(error)" }
        } else if schedule != nil {
            r.warnings.append("infotext Schedule type: given without a Sampler, ignored")
        }
        if let ensd, ensd != 0 {
            r.ensd = ensd
            if !r.settings.samplerChoice.drawsNoise, r.samplerProblem == nil {
                r.warnings.append("infotext ENSD: \(ensd): no effect, the sampler draws no noise from the image's generator after the first")
            }
        }
        return r
    }

}

extension Infotext.Recipe {
    /// `TI hashes` against the embeddings given (trigger, file): a warning for each one the
    /// infotext names that was not given, or was given with another file.
    public func embeddingWarnings(given: [(trigger: String, file: String)]) -> [String] {
        embeddingHashes.compactMap { name, hash in
            guard let g = given.first(where: { $0.trigger.lowercased() == name.lowercased() }) else {
                return "infotext TI hashes: the image used the embedding '\(name)' [\(hash)]; no --embedding gives it"
            }
            guard let h = ModelHash.embeddingHash(of: g.file), h.hasPrefix(hash) || hash.hasPrefix(h) else {
                return "infotext TI hashes: '\(name)' was [\(hash)], --embedding \(g.file) is [\(ModelHash.embeddingHash(of: g.file) ?? "unreadable")]: another file"
            }
            return nil
        }
    }

    /// `Model hash` against the model run: a warning when they differ.
    public func modelWarning(modelHash: String?) -> String? {
        guard let want = modelHash.flatMap({ _ in self.modelHash }), let have = modelHash, want != have else { return nil }
        return "infotext Model hash: the image was made with [\(want)]\(modelName.map { " (\($0))" } ?? ""), this model is [\(have)]"
    }
}

extension Separation {
    /// `alex,cora; boxes 0,0,0.5,1;0.5,0,1,1; until 1; stage full` — the infotext form.
    public var infotext: String {
        let b = boxes.map { $0.map { String($0) }.joined(separator: ",") }.joined(separator: ";")
        return "\(subjects.joined(separator: ",")); boxes \(b); until \(until); stage \(stage.rawValue)"
    }

    public init(infotext value: String) throws {
        func bad() -> Infotext.ReadError { Infotext.ReadError(description: "infotext Pareidolia remedy: \"\(value)\": expected SUBJECTS; boxes …; until F; stage S") }
        let parts = value.components(separatedBy: "; ")
        guard parts.count == 4, parts[1].hasPrefix("boxes "), parts[2].hasPrefix("until "), parts[3].hasPrefix("stage ") else { throw bad() }
        let subjects = parts[0].split(separator: ",").map(String.init)
        let boxes = parts[1].dropFirst(6).split(separator: ";").map { $0.split(separator: ",").compactMap { Float($0) } }
        guard let until = Float(parts[2].dropFirst(6)), let stage = Stage(rawValue: String(parts[3].dropFirst(6))) else { throw bad() }
        self.init(subjects: subjects, boxes: boxes)
        self.until = until
        self.stage = stage
        do { try validate() } catch { throw Infotext.ReadError(description: "infotext Pareidolia remedy: \(error)") }
    }
}
