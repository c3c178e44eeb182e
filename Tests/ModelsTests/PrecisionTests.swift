import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Models
import Tensors

/// Weights held in 16 bits (`--precision fp16|bf16`).
@Suite("16-bit weights")
struct PrecisionTests {
    let golden: SafeTensorsFile
    init() throws { golden = try SafeTensorsFile(path: Fixtures.path("blocks.safetensors")) }

    func unetOutput(_ model: StableDiffusionModel) throws -> Tensor {
        try model.unet(golden.tensor("unet.sample"), timesteps: [try golden.tensor("unet.timestep")[flat: 0]],
                       context: golden.tensor("unet.context"))  // [2, 4, h, w]
    }

    /// The fp16 single file read at fp16 precision borrows its weights from the mapping (no copy)
    /// and computes exactly what the fp32 load of the same file computes: both widen the same halves.
    /// With the default kernels too: layers Winograd does not take stay in 16 bits.
    @Test(arguments: [FastMath.default, []])
    func fp16FileIsMappedAndExact(_ kernels: FastMath) throws {
        let path = Fixtures.path("tiny-sd-single.safetensors")
        let configs = try StableDiffusionModel.Configs(diffusersFolder: Fixtures.path("tiny-sd"))
        let half = try StableDiffusionModel.load(path, configs: configs, precision: .fp16, fast: kernels)
        let full = try StableDiffusionModel.load(path, configs: configs, precision: .fp32, fast: kernels)
        let plainLayer = kernels.isEmpty ? half.unet.convIn.weight : half.unet.down[0].attentions[0].projIn.weight
        guard case .half(let w)? = plainLayer else {
            Issue.record("a plain layer's weight is not held in 16 bits (\(kernels))")
            return
        }
        #expect(w.storage.owner is MappedFile, "fp16 weights should be borrowed from the file")
        #expect(try unetOutput(half).scalars == unetOutput(full).scalars)
        let z = try golden.tensor("vae.decode.z")
        #expect(try half.vae.decode(z).scalars == full.vae.decode(z).scalars)
    }

    /// An fp32 model held in 16 bits stays close to diffusers' fp32 output. Measured on tiny-sd:
    /// fp16 6.0e-4, bf16 3.9e-3 of max |output| (bf16 keeps 8 significant bits, fp16 11).
    @Test(arguments: [(Precision.fp16, Float(2e-3)), (.bf16, 2e-2)])
    func closeToFloat32(_ precision: Precision, _ tolerance: Float) throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), precision: precision)
        let out = try unetOutput(model)
        let error = relativeError(out, try golden.tensor("unet.out"))
        print("UNet \(precision) weights vs diffusers fp32: \(error)")
        #expect(error < tolerance && error > 0, "\(precision): \(error)")
        let decoded = try model.vae.decode(golden.tensor("vae.decode.z"))
        let vaeError = relativeError(decoded, try golden.tensor("vae.decode.y"))
        #expect(vaeError < tolerance && vaeError > 0, "VAE \(precision): \(vaeError)")
    }

    /// Giving a file's resident pages back loses nothing: the weights read the same afterwards.
    @Test func releasingPagesKeepsWeights() throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"))
        let before = try unetOutput(model)
        for c in StableDiffusionModel.Component.allCases { model.releaseResidentWeights(c) }
        releaseCachedMemory()
        #expect(try unetOutput(model).scalars == before.scalars)
    }
}
