import Foundation
import Imaging
import Models
import Probes
import Tensors

/// How x̂₀ is turned into pictures: `full` decodes it with the run's own VAE (what the image would
/// be if sampling stopped there), `cheap` uses A1111's "Approx cheap" latent → RGB map (one pixel
/// per latent pixel; SD's VAE only, seconds).
public enum PreviewMode: String, Sendable, CaseIterable { case full, cheap }

/// The pictures of one run at every evaluation: x̂₀ (the sampler's denoised estimate) and x_t (the
/// noisy latent that evaluation saw).
public struct DenoisingFrames {
    public let x0: [RGBImage]
    /// Always the cheap latent map (noise looks like noise either way; a VAE decode of every x_t
    /// would double the report's cost), of the latent scaled to unit variance.
    public let xt: [RGBImage]
    public let mode: PreviewMode

    /// Samplers whose latents are x₀ + σ·ε (diffusers' Euler, LMS and Heun schedulers, k-diffusion
    /// style) rather than variance-preserving √ᾱ·x₀ + √(1−ᾱ)·ε; their x_t is shown divided by √(σ²+1).
    static let varianceExploding: Set<String> = ["euler", "euler_a", "lms", "heun"]

    /// `vae` is needed for `.full`; `progress(done, total)` is called after each decode.
    public init(trace: ReportTrace, mode: PreviewMode, vae: AutoencoderKL?, progress: (Int, Int) -> Void = { _, _ in }) throws {
        self.mode = mode
        var x0: [RGBImage] = [], xt: [RGBImage] = []
        let ve = Self.varianceExploding.contains(trace.sampler)
        for e in 0..<trace.evaluations {
            let latent = try trace.latent(at: e)  // [1, 4, h, w]
            let sigma = e < trace.sigmas.count ? trace.sigmas[e] : 0
            xt.append(LatentPreview.rgb(ve ? scale(latent, Float(1 / (sigma * sigma + 1).squareRoot())) : latent))
            let z = try trace.x0(at: e)  // [1, 4, h, w]
            switch mode {
            case .cheap:
                x0.append(LatentPreview.rgb(z))
            case .full:
                guard let vae else { throw ReportError("--previews full needs the run's VAE") }
                let image = try vae.decodeUNetLatent(z)  // [1, 3, H, W]
                x0.append(try RGBImage(tensor: image))
                progress(e + 1, trace.evaluations)
            }
        }
        (self.x0, self.xt) = (x0, xt)
    }
}
