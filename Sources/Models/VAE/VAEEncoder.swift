import Tensors

/// Image → latent-distribution half of the VAE (diffusers `Encoder`, then `quant_conv`).
struct VAEEncoder {
    let convIn: Conv2d
    let down: [(resnets: [ResnetBlock], downsample: Conv2d?)]
    let mid: VAEMidBlock
    let normOut: GroupNorm
    let convOut: Conv2d
    let quantConv: Conv2d

    init(_ w: WeightBinder, quant: WeightBinder, c: VAEConfig) {
        let ch = c.blockOutChannels, n = ch.count, g = c.normGroups
        convIn = Conv2d(w.scoped("conv_in"), in: c.inChannels, out: ch[0], kernel: 3)
        var prev = ch[0]
        down = (0..<n).map { i in
            let block = w.scoped("down_blocks.\(i)")
            let resnets = (0..<c.layersPerBlock).map { j in
                ResnetBlock(block.scoped("resnets.\(j)"), in: j == 0 ? prev : ch[i], out: ch[i], timeEmbeddingDim: nil, groups: g, eps: 1e-6)
            }
            prev = ch[i]
            // Stride 2 with no padding; the input is padded on the right and bottom first.
            let downsample = i == n - 1 ? nil : Conv2d(block.scoped("downsamplers.0.conv"), in: ch[i], out: ch[i], kernel: 3, stride: 2, padding: 0)
            return (resnets, downsample)
        }
        mid = VAEMidBlock(w.scoped("mid_block"), channels: ch[n - 1], groups: g)
        normOut = GroupNorm(w.scoped("conv_norm_out"), channels: ch[n - 1], groups: g, eps: 1e-6)
        convOut = Conv2d(w.scoped("conv_out"), in: ch[n - 1], out: 2 * c.latentChannels, kernel: 3)
        quantConv = Conv2d(quant, in: 2 * c.latentChannels, out: 2 * c.latentChannels, kernel: 1)
    }

    /// `x` [B, 3, H, W] in [-1, 1] → moments [B, 2·L, H/8, W/8] (mean | log-variance).
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = try convIn(x)
        for level in down {
            for resnet in level.resnets { h = try resnet(h) }
            if let conv = level.downsample { h = try conv(pad2d(h, bottom: 1, right: 1)) }  // [B, C, H/2, W/2]
        }
        h = try convOut(normOut(mid(h), silu: true))
        return try quantConv(h)
    }
}
