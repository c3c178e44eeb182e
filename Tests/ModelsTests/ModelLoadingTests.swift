import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Models
import Tensors

@Suite("Loading SD 1.x layouts")
struct ModelLoadingTests {
    let golden: SafeTensorsFile
    init() throws { golden = try SafeTensorsFile(path: Fixtures.path("blocks.safetensors")) }

    /// The UNet's noise prediction and the VAE decode of a loaded model against the goldens.
    func checkAgainstGoldens(_ model: StableDiffusionModel, tolerance: Float, _ what: String) throws {
        let out = try model.unet(golden.tensor("unet.sample"), timesteps: [981], context: golden.tensor("unet.context"))
        expectClose(out, try golden.tensor("unet.out"), relTol: tolerance, "\(what) UNet")
        expectClose(try model.vae.decode(golden.tensor("vae.decode.z")), try golden.tensor("vae.decode.y"), relTol: tolerance, "\(what) VAE decode")
        let ids = [model.tokenizer.encode("a photo of a cat"), model.tokenizer.encode("")]
        expectClose(try model.textEncoder.encode(ids), try golden.tensor("text.last"), relTol: tolerance, "\(what) text encoder")
    }

    @Test("diffusers folder: configs, weights and tokenizer; nothing left unused")
    func diffusersFolder() throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"))
        #expect(model.unusedKeys.isEmpty)
        #expect(model.unet.config.blockOutChannels == [32, 48, 48])
        try checkAgainstGoldens(model, tolerance: 1e-4, "folder")
    }

    @Test("single-file checkpoints (fp16 .safetensors, fp32 Lightning .ckpt) give the folder's outputs",
          arguments: ["tiny-sd-single.safetensors", "tiny-sd-single.ckpt"])
    func singleFile(_ file: String) throws {
        // Single files carry no architecture; the tiny model's comes from the folder's configs.
        let configs = try StableDiffusionModel.Configs(diffusersFolder: Fixtures.path("tiny-sd"))
        let model = try StableDiffusionModel.load(Fixtures.path(file), configs: configs)
        #expect(model.unusedKeys.isEmpty, "\(model.unusedKeys)")
        // The fp16 file rounds every weight to 11 significant bits (relative 4.9e-4); measured 6.6e-4.
        try checkAgainstGoldens(model, tolerance: file.hasSuffix(".ckpt") ? 1e-4 : 2e-3, file)
    }

    @Test("non-SD-1.x files are refused with what was found")
    func refusesOtherFamilies() throws {
        for (file, expected) in [("checkpoints/a1111_embedding.pt", "textual-inversion embedding"),
                                 ("checkpoints/state_dict_zip.pt", "unrecognised model")] {
            do {
                _ = try StableDiffusionModel.load(Fixtures.path(file))
                Issue.record("\(file) loaded")
            } catch {
                #expect("\(error)".contains(expected), "\(error)")
                #expect("\(error)".contains(URL(fileURLWithPath: file).lastPathComponent))
            }
        }
    }
}
