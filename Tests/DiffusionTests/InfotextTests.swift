import Testing
@testable import Diffusion

@Suite("A1111 infotext and model hash")
struct InfotextTests {
    @Test("prompt, negative prompt line, key: value pairs in A1111's order and quoting")
    func format() {
        var s = GenerationSettings(prompt: "a cat, (fluffy:1.2)")
        s.negativePrompt = "blurry"
        s.seed = 42
        s.steps = 20
        s.guidance = 7.5
        s.sampler = .euler_a
        s.width = 512
        s.height = 768
        s.rng = .philox
        s.clipSkip = 2
        let text = Infotext.make(settings: s, modelName: "v1-5: pruned", modelHash: "6ce0161689")
        #expect(text == """
        a cat, (fluffy:1.2)
        Negative prompt: blurry
        Steps: 20, Sampler: euler_a (diffusers), CFG scale: 7.5, Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: "v1-5: pruned", Clip skip: 2, Version: Pareidolia \(Version.engine)
        """)
        s.negativePrompt = ""
        s.rng = .cpu
        s.clipSkip = 1
        #expect(Infotext.make(settings: s, modelName: nil, modelHash: nil).hasSuffix("Size: 512x768, RNG: CPU, Version: Pareidolia \(Version.engine)"))
        #expect(!Infotext.make(settings: s, modelName: nil, modelHash: nil).contains("Negative prompt"))
    }

    @Test("SHA-256 known answers")
    func sha256() {
        var empty = SHA256()
        #expect(empty.finish() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var abc = SHA256()
        abc.update(Array("abc".utf8))
        #expect(abc.finish() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // 1,000,000 × "a", fed in uneven pieces across block boundaries.
        var million = SHA256()
        let piece = [UInt8](repeating: 0x61, count: 999)
        for _ in 0..<1001 { million.update(piece) }
        million.update([UInt8](repeating: 0x61, count: 1_000_000 - 999 * 1001))
        #expect(million.finish() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test("settings are checked before any work", arguments: [(513, 512), (512, 0), (-8, 512)])
    func sizes(_ w: Int, _ h: Int) {
        var s = GenerationSettings(prompt: "x")
        s.width = w
        s.height = h
        #expect(throws: PipelineError.self) { try s.validate() }
    }
}

@Suite("Reading an infotext back (--infotext)")
struct InfotextReaderTests {
    static let a1111 = """
    photo of a witch and a robot dancing, contact improvisation
    second line of the prompt
    Negative prompt: blurry,
    low quality
    Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3754952516, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, TI hashes: "corajr: 1a2b3c4d5e6f, alex: 0123456789ab", Clip skip: 2, Version: v1.10.1
    """

    @Test("A1111's split: prompt lines, negative lines, quoted values")
    func parse() {
        let p = Infotext.parse(Self.a1111)
        #expect(p.prompt == "photo of a witch and a robot dancing, contact improvisation\nsecond line of the prompt")
        #expect(p.negativePrompt == "blurry,\nlow quality")
        #expect(p.value("TI hashes") == "corajr: 1a2b3c4d5e6f, alex: 0123456789ab")
        #expect(p.value("Schedule type") == "Karras" && p.pairs.count == 11)
        // Fewer than three pairs: the last line is prompt text (A1111's rule).
        let short = Infotext.parse("a cat\nSteps: 20, Seed: 1")
        #expect(short.prompt == "a cat\nSteps: 20, Seed: 1" && short.pairs.isEmpty)
    }

    @Test("A1111's samplers are refused in one line; a flag can stand in; warnings for the rest")
    func recipe() throws {
        let p = Infotext.parse(Self.a1111)
        let a = try Infotext.recipe(p, base: GenerationSettings(prompt: ""))
        #expect(try a.sampler(override: nil) == .a1111(A1111Sampling(sampler: .dpmpp2m, schedule: .karras)))
        #expect(try a.sampler(override: .diffusers(.ddim)) == .diffusers(.ddim))  // a flag stands in
        // A1111 samplers the engine lacks are refused in one line; before v1.9 the schedule was in the name.
        var adaptive = p
        adaptive.pairs = p.pairs.map { $0.key == "Sampler" ? .init(key: "Sampler", value: "DPM adaptive") : $0 }
        do { _ = try Infotext.recipe(adaptive, base: GenerationSettings(prompt: "")).sampler(override: nil); Issue.record("DPM adaptive ran") } catch {
            #expect("\(error)".hasPrefix("infotext Sampler: DPM adaptive, schedule Karras: A1111's sampler 'DPM adaptive' is not in the engine yet"))
        }
        var sde = p
        sde.pairs = p.pairs.map { $0.key == "Sampler" ? .init(key: "Sampler", value: "DPM++ SDE") : $0 }
        #expect(try Infotext.recipe(sde, base: GenerationSettings(prompt: "")).sampler(override: nil) == .a1111(A1111Sampling(sampler: .dpmppSDE, schedule: .karras)))
        #expect(try SamplerChoice.parse("DPM++ 2M Karras", schedule: nil) == .a1111(A1111Sampling(sampler: .dpmpp2m, schedule: .karras)))
        #expect(try SamplerChoice.parse("Euler a", schedule: nil) == .a1111(A1111Sampling(sampler: .eulerAncestral)))
        #expect(throws: SamplerError.self) { try SamplerChoice.parse("euler_a", schedule: "karras") }
        var ours = p
        ours.pairs = p.pairs.map { $0.key == "Sampler" ? .init(key: "Sampler", value: "ddim (diffusers)") : $0 }.filter { $0.key != "Schedule type" }
        let r = try Infotext.recipe(ours, base: GenerationSettings(prompt: ""))
        #expect(r.settings.steps == 24 && r.settings.guidance == 6.5 && r.settings.seed == 3754952516)
        #expect(r.settings.width == 512 && r.settings.height == 768 && r.settings.clipSkip == 2 && r.settings.sampler == .ddim)
        #expect(r.settings.rng == .philox)  // A1111's default when no RNG key
        #expect(r.embeddingHashes.map(\.name) == ["corajr", "alex"] && r.modelHash == "6ce0161689")
        #expect(r.warnings.isEmpty)
        let w = r.embeddingWarnings(given: [])
        #expect(w.count == 2 && w[0].contains("'corajr' [1a2b3c4d5e6f]; no --embedding gives it"))
        #expect(r.modelWarning(modelHash: "0000000000")?.contains("[6ce0161689] (v1-5-pruned-emaonly), this model is [0000000000]") == true)
        #expect(r.modelWarning(modelHash: "6ce0161689") == nil)
    }

    @Test("malformed values name their key; unsupported features are refused; unknown keys warn")
    func refusals() throws {
        func outcome(_ params: String) -> String {
            do {
                let r = try Infotext.recipe(Infotext.parse("a cat\n" + params), base: GenerationSettings(prompt: ""))
                _ = try r.sampler(override: nil)
                return "ok " + r.warnings.joined(separator: " | ")
            } catch { return "\(error)" }
        }
        let base = "Sampler: euler (diffusers), Seed: 1, Steps: 20"
        #expect(outcome(base + ", Size: 512x51").hasPrefix("infotext Size: \"512x51\": expected"))
        #expect(outcome("Steps: lots, Seed: 1, CFG scale: 7").hasPrefix("infotext Steps"))
        #expect(outcome(base + ", Seed: -4").hasPrefix("infotext Seed"))
        #expect(outcome(base + ", Denoising strength: 0.7").contains("img2img / hires fix, which the engine does not do"))
        #expect(outcome(base + ", Hires upscale: 2").contains("hires fix"))
        #expect(outcome(base + ", RNG: NV").hasPrefix("infotext RNG: NV"))
        #expect(outcome(base + ", Emphasis: No norm").hasPrefix("infotext Emphasis"))
        #expect(outcome(base + ", Fancy thing: 3") == "ok infotext Fancy thing: unknown to the engine, ignored")
        #expect(outcome(base + ", ENSD: 31337").contains("ENSD: 31337: no effect"))
        #expect(outcome("Sampler: DDIM, Schedule type: Karras, Seed: 1, Steps: 20") == "ok infotext Schedule type: Karras: DDIM runs A1111's own timesteps, ignored")
        #expect(outcome("Sampler: UniPC, UniPC variant: vary_coeff, Seed: 1, Steps: 20").hasPrefix("infotext UniPC variant: vary_coeff"))
        #expect(outcome("Sampler: UniPC, UniPC order: 0, Seed: 1, Steps: 20").hasPrefix("infotext UniPC order"))
        #expect(outcome("Sampler: Euler, UniPC order: 2, Seed: 1, Steps: 20").contains("the sampler is not UniPC, ignored"))
        #expect(outcome("Sampler: euler_a (diffusers), Seed: 1, Steps: 20, ENSD: 31337").hasPrefix("infotext ENSD"))
        #expect(outcome(base + ", Pareidolia remedy: \"alex; boxes 0,0,1,1; until 1; stage full\"").hasPrefix("infotext Pareidolia remedy"))
    }

    @Test("what Pareidolia writes, it reads back to the same settings", arguments: SamplerKind.allCases)
    func roundTrip(_ kind: SamplerKind) throws {
        var s = GenerationSettings(prompt: "a red circle, (blue:1.2) square: \"quoted\"")
        s.negativePrompt = "grass\nand sky"
        s.seed = 3754952516
        s.steps = 13
        s.guidance = 6.5
        s.sampler = kind
        s.width = 64
        s.height = 96
        s.rng = kind == .ddim ? .cpu : .philox
        s.clipSkip = 2
        if kind == .heun { s.separation = Separation(subjects: ["red", "blue"], boxes: [[0, 0, 0.4, 1], [0.6, 0.1, 1, 0.9]]) }
        let text = Infotext.make(settings: s, modelName: "demo-model", modelHash: "3552db0c05", embeddings: [("alex", "0123456789ab")])
        let r = try Infotext.recipe(Infotext.parse(text), base: GenerationSettings(prompt: ""))
        let t = r.settings
        #expect(t.prompt == s.prompt && t.negativePrompt == s.negativePrompt && t.seed == s.seed && t.steps == s.steps)
        #expect(t.guidance == s.guidance && t.sampler == s.sampler && t.width == s.width && t.height == s.height)
        #expect(t.rng == s.rng && t.clipSkip == s.clipSkip && t.separation == s.separation)
        #expect(r.warnings.isEmpty && r.embeddingHashes.map(\.hash) == ["0123456789ab"] && r.modelHash == "3552db0c05")
    }
}
