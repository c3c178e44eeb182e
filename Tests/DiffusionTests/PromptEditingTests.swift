import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Diffusion
import Models
import Tensors

/// Runs whose prompt edits, alternates or composes against a diffusers loop fed the same texts
/// per call (Tools/reference/make_prompt_editing_fixtures.py).
@Suite("Prompt editing, alternation and AND in a run", .serialized)
struct PromptEditingTests {
    static let model = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)

    @Test("final latents within 1e-4 × max of the reference", arguments: ["edit", "alternate", "and", "negative"])
    func parity(_ name: String) throws {
        let golden = try SafeTensorsFile(path: Fixtures.path("editing/\(name).safetensors"))
        let m = golden.metadata
        let model = try #require(Self.model)
        var s = GenerationSettings(prompt: m["prompt"]!)
        s.negativePrompt = m["negative_prompt"] ?? ""
        s.seed = UInt64(m["seed"]!)!
        s.steps = Int(m["steps"]!)!
        s.guidance = Float(m["guidance"]!)!
        s.sampler = try SamplerKind(parsing: m["sampler"]!)
        s.width = 64
        s.height = 64
        let out = try TextToImagePipeline(model: model).generate(s)
        let ref = try golden.tensor("final")
        let err = relativeError(out.latent, ref)
        print("prompt editing \(name): final latent relative error \(err)")
        #expect(err <= 1e-4, "\(name): \(err)")
        // Not the plain run of the same characters: the schedule mattered.
        if name != "negative" {
            var plain = s
            plain.prompt = (try JSONSerialization.jsonObject(with: Data(m["texts"]!.utf8)) as! [[String]])[0].last!
            #expect(relativeError(try TextToImagePipeline(model: model).generate(plain).latent, ref) > 1e-3)
        }
    }

    @Test("AND without guidance, and with --separate, are refused in one line")
    func refusals() throws {
        let model = try #require(Self.model)
        var s = GenerationSettings(prompt: "a witch AND a robot")
        s.steps = 2
        s.width = 64
        s.height = 64
        s.guidance = 1
        #expect(throws: PipelineError.self) { try TextToImagePipeline(model: model).generate(s) }
        s.guidance = 7.5
        s.prompt = "a [witch|robot] and a cat"
        s.separation = Separation(subjects: ["witch", "cat"])
        #expect(throws: PipelineError.self) { try TextToImagePipeline(model: model).generate(s) }
    }
}
