import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Models
import Tensors

/// The tiny SD model against diffusers/transformers goldens (Tests/Fixtures/blocks.safetensors):
/// max |error| ≤ 1e-4 × max |reference| for blocks and whole models.
@Suite("Model parity with diffusers on tiny-sd")
struct ModelParityTests {
    static let tolerance: Float = 1e-4
    let golden: SafeTensorsFile
    let folder: CheckpointArchive

    init() throws {
        golden = try SafeTensorsFile(path: Fixtures.path("blocks.safetensors"))
        folder = try Checkpoint.open(Fixtures.path("tiny-sd"))
    }

    func g(_ name: String) throws -> Tensor { try golden.tensor(name) }

    func binder(_ component: String) -> WeightBinder {
        WeightBinder(source: ArchiveWeights(folder, prefix: component + "/"))
    }

    func config(_ component: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("tiny-sd/\(component)/config.json")))
    }

    @Test("text encoder: every hidden state and the final output")
    func textEncoder() throws {
        let cfg = try CLIPTextConfig(json: config("text_encoder"), source: "text_encoder/config.json")
        let w = binder("text_encoder")
        let model = CLIPTextModel(w, config: cfg)
        #expect(try w.finish(model: "text encoder") == [])
        let idsTensor = try g("text.ids")
        let ids = (0..<2).map { b in (0..<77).map { Int32(idsTensor[flat: b * 77 + $0]) } }
        #expect(ids[0] == CLIPTokenizer().encode("a photo of a cat"))
        let states = try model.hiddenStates(ids)
        for (i, s) in states.enumerated() {
            expectClose(s, try g("text.hidden.\(i)"), relTol: Self.tolerance, "hidden state \(i)")
        }
        expectClose(try model.encode(ids, clipSkip: 1), try g("text.last"), relTol: Self.tolerance, "last_hidden_state")
    }

    @Test("UNet: time embedding, one resnet, one transformer, full noise prediction (batch 2)")
    func unet() throws {
        let cfg = try UNetConfig(json: config("unet"), source: "unet/config.json")
        let w = binder("unet")
        let model = UNet2DConditionModel(w, config: cfg)
        #expect(try w.finish(model: "UNet") == [])

        expectClose(model.timeEmbedding.sinusoids([981]), try g("unet.time_proj.y"), relTol: Self.tolerance, "time_proj")
        expectClose(try model.timeEmbedding([981]), try g("unet.time_embedding.y"), relTol: Self.tolerance, "time_embedding")

        let temb = try Tensors.silu(g("unet.resnet.temb"))
        let resnet = model.down[0].resnets[0]
        expectClose(try resnet(g("unet.resnet.x"), siluTimeEmbedding: temb), try g("unet.resnet.y"), relTol: Self.tolerance, "resnet")

        let transformer = model.down[0].attentions[0]
        expectClose(try transformer(g("unet.transformer.x"), context: g("unet.transformer.context")),
                    try g("unet.transformer.y"), relTol: Self.tolerance, "transformer")

        let out = try model(g("unet.sample"), timesteps: [try g("unet.timestep")[flat: 0]], context: g("unet.context"))
        expectClose(out, try g("unet.out"), relTol: Self.tolerance, "UNet output")
    }

    @Test("VAE: decode and encode")
    func vae() throws {
        let cfg = try VAEConfig(json: config("vae"), source: "vae/config.json")
        let w = binder("vae")
        let model = AutoencoderKL(w, config: cfg)
        #expect(try w.finish(model: "VAE") == [])
        expectClose(try model.decode(g("vae.decode.z")), try g("vae.decode.y"), relTol: Self.tolerance, "decode")
        let (mean, logvar) = try model.encode(g("vae.encode.x"))
        expectClose(mean, try g("vae.encode.mean"), relTol: Self.tolerance, "posterior mean")
        expectClose(logvar, try g("vae.encode.logvar"), relTol: Self.tolerance, "posterior log-variance")
    }

    @Test("missing and wrong-shape weights are reported, all at once")
    func weightReport() throws {
        var tensors: [String: Tensor] = [:]
        for name in folder.names where name.hasPrefix("text_encoder/") {
            tensors[String(name.dropFirst("text_encoder/".count))] = try folder.tensor(name)
        }
        tensors["text_model.final_layer_norm.weight"] = nil
        tensors["text_model.encoder.layers.0.mlp.fc1.bias"] = Tensor(zeros: [3])
        tensors["text_model.extra.weight"] = Tensor(zeros: [1])
        let cfg = try CLIPTextConfig(json: config("text_encoder"), source: "text_encoder/config.json")
        let w = WeightBinder(source: DictionaryWeights(tensors, label: "edited.safetensors"))
        _ = CLIPTextModel(w, config: cfg)
        #expect(w.unused == ["text_model.extra.weight"])
        do {
            try w.finish(model: "text encoder")
            Issue.record("expected a load error")
        } catch {
            let message = "\(error)"
            #expect(message.contains("1 missing (text_model.final_layer_norm.weight)"))
            #expect(message.contains("1 wrong-shape (text_model.encoder.layers.0.mlp.fc1.bias is [3]"))
            #expect(!message.contains("\n"))
        }
    }
}
