import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Diffusion
import Models
@testable import Probes
import Tensors

/// The trace's `cross` against the same quantity recorded from diffusers' attention processors
/// on tiny-sd (Tools/reference/make_attention_fixtures.py): ≤ 1e-3 × max.
@Suite("Cross-attention maps match diffusers", .serialized)
struct CrossAttentionParityTests {
    @Test("square, non-square, with a negative prompt", arguments: ["square", "wide", "negative"])
    func cross(_ name: String) throws {
        let golden = try SafeTensorsFile(path: Fixtures.path("attention/\(name).safetensors"))
        let m = golden.metadata
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        var s = GenerationSettings(prompt: m["prompt"] ?? "")
        s.negativePrompt = m["negative_prompt"] ?? ""
        s.seed = UInt64(m["seed"]!)!
        s.steps = Int(m["steps"]!)!
        s.guidance = Float(m["guidance"] ?? m["guidance_scale"] ?? "7.5")!
        s.sampler = try SamplerKind(parsing: m["sampler"] ?? "euler")
        s.width = Int(m["width"]!)!
        s.height = Int(m["height"]!)!
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-cross-\(name)-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        var options = TraceOptions()
        options.attention = .layers
        let recorder = try TraceRecorder(directory: dir.path, unet: model.unet, options: options, engineVersion: "test")
        _ = try TextToImagePipeline(model: model).generate(s, observer: recorder)
        let traced = try SafeTensorsFile(path: dir.appendingPathComponent("attention.safetensors").path)
        expectClose(try traced.tensor("cross"), try golden.tensor("cross"), relTol: 1e-3, "\(name) cross")
        let site = "cross.down_blocks.0.attentions.0.transformer_blocks.0.attn2"
        expectClose(try traced.tensor(site), try golden.tensor(site), relTol: 1e-3, "\(name) \(site)")
        print("cross parity \(name): \(relativeError(try traced.tensor("cross"), try golden.tensor("cross")))")
    }
}
