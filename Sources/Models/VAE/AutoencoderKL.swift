import Tensors

/// SD's KL autoencoder: images ↔ latents (8× smaller per side, 4 channels).
public final class AutoencoderKL {
    public let config: VAEConfig
    let encoder: VAEEncoder?
    let decoder: VAEDecoder

    /// Binds the decoder, and the encoder unless `decoderOnly` (txt2img needs no encoder).
    public init(_ w: WeightBinder, config: VAEConfig, decoderOnly: Bool = false) {
        self.config = config
        decoder = VAEDecoder(w.scoped("decoder"), postQuant: w.scoped("post_quant_conv"), c: config)
        encoder = decoderOnly ? nil : VAEEncoder(w.scoped("encoder"), quant: w.scoped("quant_conv"), c: config)
    }

    /// Decoder input is the UNet latent divided by the scaling factor: [B, 4, h, w] → [B, 3, 8h, 8w].
    public func decode(_ z: Tensor) throws -> Tensor {
        guard z.rank == 4, z.shape[1] == config.latentChannels else {
            throw TensorError("VAE decode: latents \(z.shape) must be [B, \(config.latentChannels), h, w]")
        }
        return try decoder(z)
    }

    /// A latent as the UNet and samplers hold it (scaled by `scalingFactor`) → image [B, 3, H, W],
    /// with large blocks mapped so the decoder's working set is returned to the system afterwards
    /// rather than kept as the heap's high-water mark.
    public func decodeUNetLatent(_ latent: Tensor) throws -> Tensor {
        try withLargeBlocksMapped { try decode(scale(latent, 1 / config.scalingFactor)) }
    }

    /// The posterior's mean and log-variance (clamped to [-30, 20] as diffusers does), each [B, 4, H/8, W/8].
    public func encode(_ x: Tensor) throws -> (mean: Tensor, logVariance: Tensor) {
        guard let encoder else { throw TensorError("VAE: the encoder was not loaded") }
        let f = config.downFactor
        guard x.rank == 4, x.shape[1] == config.inChannels, x.shape[2] % f == 0, x.shape[3] % f == 0 else {
            throw TensorError("VAE encode: image \(x.shape) must be [B, \(config.inChannels), H, W] with H, W multiples of \(f)")
        }
        let moments = try encoder(x)  // [B, 2L, h, w]
        let parts = try split(moments, axis: 1, sizes: [config.latentChannels, config.latentChannels])
        return (parts[0], clamp(parts[1], min: -30, max: 20))
    }
}
