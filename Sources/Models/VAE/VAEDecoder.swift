import Tensors

/// Latent → image half of the VAE (diffusers `Decoder`, with `post_quant_conv` in front).
struct VAEDecoder {
    let postQuantConv: Conv2d
    let convIn: Conv2d
    let mid: VAEMidBlock
    let up: [(resnets: [ResnetBlock], upsample: Conv2d?)]
    let normOut: GroupNorm
    let convOut: Conv2d

    init(_ w: WeightBinder, postQuant: WeightBinder, c: VAEConfig) {
        let ch = c.blockOutChannels, n = ch.count, g = c.normGroups
        postQuantConv = Conv2d(postQuant, in: c.latentChannels, out: c.latentChannels, kernel: 1)
        convIn = Conv2d(w.scoped("conv_in"), in: c.latentChannels, out: ch[n - 1], kernel: 3)
        mid = VAEMidBlock(w.scoped("mid_block"), channels: ch[n - 1], groups: g)
        var prev = ch[n - 1]
        up = (0..<n).map { i in
            let outC = ch[n - 1 - i], block = w.scoped("up_blocks.\(i)")
            let resnets = (0...c.layersPerBlock).map { j in
                ResnetBlock(block.scoped("resnets.\(j)"), in: j == 0 ? prev : outC, out: outC, timeEmbeddingDim: nil, groups: g, eps: 1e-6)
            }
            prev = outC
            let upsample = i == n - 1 ? nil : Conv2d(block.scoped("upsamplers.0.conv"), in: outC, out: outC, kernel: 3)
            return (resnets, upsample)
        }
        normOut = GroupNorm(w.scoped("conv_norm_out"), channels: ch[0], groups: g, eps: 1e-6)
        convOut = Conv2d(w.scoped("conv_out"), in: ch[0], out: c.outChannels, kernel: 3)
    }

    /// `z`: latents already divided by the scaling factor, [B, 4, h, w] → [B, 3, 8h, 8w] in about [-1, 1].
    func callAsFunction(_ z: Tensor) throws -> Tensor {
        var h = try mid(convIn(postQuantConv(z)))  // [B, C, h, w]
        for level in up {
            for resnet in level.resnets { h = try resnet(h) }
            if let conv = level.upsample { h = try conv(upsampleNearest2x(h)) }  // [B, C, 2h, 2w]
        }
        return try convOut(normOut(h, silu: true))  // [B, 3, H, W]
    }
}
