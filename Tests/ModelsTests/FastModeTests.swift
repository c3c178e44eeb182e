import Checkpoints
import Foundation
import Testing
import TestSupport
@testable import Models
import Tensors

/// The fast mode (`--fast`): Winograd 3×3 convolutions and bf16 products. Not bit-faithful to
/// diffusers; these tests pin how far it may drift on tiny-sd and that each path is really taken.
@Suite("fast mode")
struct FastModeTests {
    let golden: SafeTensorsFile
    init() throws { golden = try SafeTensorsFile(path: Fixtures.path("blocks.safetensors")) }

    /// Measured on tiny-sd (max |error| / max |diffusers fp32|): UNet winograd 1.5e-6, bf16 5.2e-3,
    /// both 3.8e-3; VAE decode
    /// (Winograd only, whatever is asked) 3.9e-6.
    @Test func winogradCloseToDiffusers() throws { try closeToDiffusers("winograd", 1e-4) }

    @Test(.enabled(if: PackedBF16Matrix.isSupported, Comment(rawValue: PackedBF16Matrix.unsupportedReason ?? "")),
          arguments: [("bf16", Float(2e-2)), ("winograd,bf16", 2e-2)])
    func bf16CloseToDiffusers(_ paths: String, _ tolerance: Float) throws { try closeToDiffusers(paths, tolerance) }

    /// Where the bf16 kernels cannot run, asking for them is refused in one line that says why.
    @Test(.enabled(if: !PackedBF16Matrix.isSupported, "this CPU runs the bf16 kernels"))
    func bf16Refused() throws {
        for text in ["bf16", "winograd,bf16"] {
            do {
                _ = try FastMath(parsing: text)
                Issue.record("--fast \(text) was accepted without AVX512-BF16")
            } catch {
                let message = "\(error)"
                #expect(message.hasPrefix("bf16: ") && message.contains("AVX512-BF16") && message.contains("use winograd"), "\(message)")
                #expect(!message.contains("\n"))
            }
        }
        #expect(try FastMath(parsing: "all") == .winograd)  // "all" = what this CPU can run
    }

    func closeToDiffusers(_ paths: String, _ tolerance: Float) throws {
        let fast = try FastMath(parsing: paths)
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), fast: fast)
        let out = try model.unet(golden.tensor("unet.sample"), timesteps: [try golden.tensor("unet.timestep")[flat: 0]],
                                 context: golden.tensor("unet.context"))  // [2, 4, h, w]
        let error = relativeError(out, try golden.tensor("unet.out"))
        let vaeError = relativeError(try model.vae.decode(golden.tensor("vae.decode.z")), try golden.tensor("vae.decode.y"))
        print("fast \(paths): UNet \(error), VAE decode \(vaeError)")
        #expect(error < tolerance && error > 0, "UNet \(error)")
        #expect(vaeError < 1e-4, "VAE \(vaeError)")
        // The paths asked for are the ones bound: a 3×3 conv, a 1×1 conv and a linear layer.
        let resnet = model.unet.down[0].resnets[0], block = model.unet.down[0].attentions[0]
        switch resnet.conv1.kernel {
        case .winograd: #expect(fast.contains(.winograd))
        case .bf16: #expect(!fast.contains(.winograd) && fast.contains(.bf16))
        case .plain: Issue.record("a 3×3 conv kept the exact kernel under --fast \(paths)")
        }
        if case .bf16 = block.projIn.kernel { #expect(fast.contains(.bf16)) } else { #expect(!fast.contains(.bf16)) }
        if case .winograd = model.vae.decoder.convIn.kernel { #expect(fast.contains(.winograd)) } else { #expect(!fast.contains(.winograd)) }
    }

    @Test func parsing() throws {
        #expect(try FastMath(parsing: "none").isEmpty)
        #expect(try FastMath(parsing: "winograd") == .winograd)
        #expect(try FastMath(parsing: "all") == FastMath.supported)
        #expect(throws: WeightLoadError.self) { try FastMath(parsing: "turbo") }
    }
}
