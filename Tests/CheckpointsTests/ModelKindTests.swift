import Foundation
import Testing
@testable import Checkpoints
import Tensors

@Suite struct DiffusersFolders {
    @Test func tinySDFolder() throws {
        let a = try Checkpoint.open(fixture("tiny-sd"))
        #expect(a.format == .diffusersFolder)
        #expect(Set(a.components.keys) == ["unet", "vae", "text_encoder"])
        #expect(a["unet/conv_in.weight"] != nil)
        #expect(a["unet/conv_in.weight"]?.name == "unet/conv_in.weight")
        #expect(a["text_encoder/text_model.embeddings.token_embedding.weight"] != nil)
        #expect(a.components["vae"]?["decoder.conv_out.weight"] != nil)
        #expect(a.files.contains("unet/diffusion_pytorch_model.safetensors"))
        let d = a.detection
        #expect(d.kind == .diffusersFolderSD1)
        #expect(d.summary == "diffusers SD 1.x folder (UNet, VAE, text encoder)")
        _ = try a.tensor("unet/conv_in.weight")
    }

    @Test func tinySDComponents() throws {
        let unet = try Checkpoint.open(fixture("tiny-sd/unet/diffusion_pytorch_model.safetensors"))
        #expect(unet.detection.kind == .sd1UNet)
        let vae = try Checkpoint.open(fixture("tiny-sd/vae/diffusion_pytorch_model.safetensors"))
        #expect(vae.detection.kind == .sd1VAE)
        let te = try Checkpoint.open(fixture("tiny-sd/text_encoder/model.safetensors"))
        #expect(te.detection.kind == .sd1TextEncoder)
        // A component folder opened directly is read as one unprefixed archive.
        let unetFolder = try Checkpoint.open(fixture("tiny-sd/unet"))
        #expect(unetFolder["conv_in.weight"] != nil && unetFolder.detection.kind == .sd1UNet)
    }

    @Test func weightFilePreference() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let unet = dir.appendingPathComponent("unet")
        try FileManager.default.createDirectory(at: unet, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: dir.appendingPathComponent("model_index.json"))
        func write(_ file: String, _ value: Float) throws {
            try SafeTensorsWriter.write(["which": try Tensor(shape: [1], scalars: [value])], to: unet.appendingPathComponent(file).path)
        }
        try Data(try Data(contentsOf: URL(fileURLWithPath: fixture("checkpoints/nested.ckpt")))).write(to: unet.appendingPathComponent("diffusion_pytorch_model.bin"))
        #expect(try Checkpoint.open(dir.path)["unet/model.diffusion_model.x"] != nil)  // only .bin: used
        try write("diffusion_pytorch_model.non_ema.safetensors", 3)
        #expect(try Checkpoint.open(dir.path).tensor("unet/which").scalars == [3])
        try write("diffusion_pytorch_model.fp16.safetensors", 2)
        #expect(try Checkpoint.open(dir.path).tensor("unet/which").scalars == [2])
        try write("diffusion_pytorch_model.safetensors", 1)
        let a = try Checkpoint.open(dir.path)
        #expect(try a.tensor("unet/which").scalars == [1])
        #expect(a.files == ["unet/diffusion_pytorch_model.safetensors"])
    }

    @Test func emptyFolderIsAnError() throws {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        expectCheckpointError(["folder holds no model weights"]) { _ = try Checkpoint.open(dir.path) }
    }
}

@Suite struct ModelKindDetection {
    /// Opens a safetensors file holding tiny tensors with the given names and shapes.
    func archive(_ shapes: [String: [Int]]) throws -> CheckpointArchive {
        let dir = try makeTempDir()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("m.safetensors").path
        try SafeTensorsWriter.write(shapes.mapValues { Tensor(zeros: $0) }, to: path)
        return try Checkpoint.open(path)  // the mapping outlives the unlinked file
    }

    @Test func kinds() throws {
        let sd1 = try archive([
            "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
            "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
            "first_stage_model.decoder.conv_out.weight": [3, 128, 3, 3],
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [8, 768],
        ])
        #expect(sd1.detection.kind == .sd1Checkpoint)
        #expect(sd1.detection.summary == "SD 1.x checkpoint (UNet, VAE, text encoder)")

        let inpaint = try archive(["model.diffusion_model.input_blocks.0.0.weight": [320, 9, 3, 3], "first_stage_model.x": [1]])
        #expect(inpaint.detection.kind == .inpainting)

        let sd2 = try archive(["model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
                               "cond_stage_model.model.token_embedding.weight": [8, 1024]])
        #expect(sd2.detection.kind == .sd2)
        let sd2unet = try archive(["down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight": [320, 1024],
                                   "time_embedding.linear_1.weight": [4, 4]])
        #expect(sd2unet.detection.kind == .sd2)

        let sdxl = try archive(["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": [8, 768],
                                "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3]])
        #expect(sdxl.detection.kind == .sdxl)
        let sdxlUNet = try archive(["add_embedding.linear_1.weight": [4, 4], "conv_in.weight": [320, 4, 3, 3]])
        #expect(sdxlUNet.detection.kind == .sdxl)

        let te = try archive(["embeddings.token_embedding.weight": [8, 768], "encoder.layers.0.mlp.fc1.weight": [4, 4]])
        #expect(te.detection.kind == .sd1TextEncoder)
        #expect(te.detection.summary.contains("without text_model. prefix"))

        let ldmVAE = try archive(["encoder.down.0.block.0.conv1.weight": [1], "decoder.up.0.block.0.conv1.weight": [1], "quant_conv.weight": [1]])
        #expect(ldmVAE.detection.kind == .sd1VAE)

        let ldmUNetOnly = try archive(["model.diffusion_model.out.2.weight": [1]])
        #expect(ldmUNetOnly.detection.summary == "SD 1.x checkpoint (UNet; incomplete)")

        let unknown = try archive(["foo.weight": [2, 2], "bar.bias": [2]])
        #expect(unknown.detection.kind == .unknown)

        let sdxlTI = try archive(["clip_l": [2, 768], "clip_g": [2, 1280]])
        #expect(sdxlTI.detection.kind == .textualInversion)
        #expect(sdxlTI.detection.summary.hasPrefix("SDXL textual-inversion"))
    }
}
