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
        Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x768, Model hash: 6ce0161689, Model: "v1-5: pruned", Clip skip: 2
        """)
        s.negativePrompt = ""
        s.rng = .cpu
        s.clipSkip = 1
        #expect(Infotext.make(settings: s, modelName: nil, modelHash: nil).hasSuffix("Size: 512x768, RNG: CPU"))
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
