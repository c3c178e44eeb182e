import Tensors

/// One level of the UNet's down path: resnets (each followed by a spatial transformer in
/// cross-attention blocks), then a stride-2 conv unless it is the last level.
struct DownBlock {
    let resnets: [ResnetBlock]
    let attentions: [SpatialTransformer]
    let downsampler: Conv2d?

    init(_ w: WeightBinder, in inC: Int, out outC: Int, crossAttention: Bool, last: Bool, c: UNetConfig, heads: Int, probes: ProbeHub?) {
        resnets = (0..<c.layersPerBlock).map { j in
            ResnetBlock(w.scoped("resnets.\(j)"), in: j == 0 ? inC : outC, out: outC,
                        timeEmbeddingDim: c.timeEmbeddingDim, groups: c.normGroups, eps: c.normEps)
        }
        attentions = crossAttention ? (0..<c.layersPerBlock).map { j in
            SpatialTransformer(w.scoped("attentions.\(j)"), channels: outC, contextDim: c.crossAttentionDim,
                               heads: heads, groups: c.normGroups, probes: probes)
        } : []
        downsampler = last ? nil : Conv2d(w.scoped("downsamplers.0.conv"), in: outC, out: outC, kernel: 3, stride: 2, padding: 1)
    }

    /// Returns the block output and the skip connections it adds (one per resnet, one after
    /// the downsampler).
    func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor) throws -> (Tensor, [Tensor]) {
        var h = x, skips: [Tensor] = []
        for (j, resnet) in resnets.enumerated() {
            h = try resnet(h, siluTimeEmbedding: temb)
            if !attentions.isEmpty { h = try attentions[j](h, context: context) }
            skips.append(h)
        }
        if let downsampler {
            h = try downsampler(h)  // [B, C, H/2, W/2]
            skips.append(h)
        }
        return (h, skips)
    }
}

/// The UNet's middle: resnet, spatial transformer, resnet.
struct MidBlock {
    let resnet1, resnet2: ResnetBlock
    let attention: SpatialTransformer

    init(_ w: WeightBinder, channels: Int, c: UNetConfig, heads: Int, probes: ProbeHub?) {
        resnet1 = ResnetBlock(w.scoped("resnets.0"), in: channels, out: channels, timeEmbeddingDim: c.timeEmbeddingDim, groups: c.normGroups, eps: c.normEps)
        attention = SpatialTransformer(w.scoped("attentions.0"), channels: channels, contextDim: c.crossAttentionDim, heads: heads, groups: c.normGroups, probes: probes)
        resnet2 = ResnetBlock(w.scoped("resnets.1"), in: channels, out: channels, timeEmbeddingDim: c.timeEmbeddingDim, groups: c.normGroups, eps: c.normEps)
    }

    func callAsFunction(_ x: Tensor, temb: Tensor, context: Tensor) throws -> Tensor {
        let h = try attention(resnet1(x, siluTimeEmbedding: temb), context: context)
        return try resnet2(h, siluTimeEmbedding: temb)
    }
}

/// One level of the up path: layersPerBlock + 1 resnets, each fed the running features
/// concatenated with a skip connection, then nearest 2× upsampling and a conv unless last.
struct UpBlock {
    let resnets: [ResnetBlock]
    let attentions: [SpatialTransformer]
    let upsamplerConv: Conv2d?

    /// `skipChannels[j]`: channels of the skip connection resnet j consumes.
    init(_ w: WeightBinder, previous prevC: Int, out outC: Int, skipChannels: [Int], crossAttention: Bool, last: Bool, c: UNetConfig, heads: Int, probes: ProbeHub?) {
        resnets = skipChannels.enumerated().map { j, skipC in
            ResnetBlock(w.scoped("resnets.\(j)"), in: (j == 0 ? prevC : outC) + skipC, out: outC,
                        timeEmbeddingDim: c.timeEmbeddingDim, groups: c.normGroups, eps: c.normEps)
        }
        attentions = crossAttention ? skipChannels.indices.map { j in
            SpatialTransformer(w.scoped("attentions.\(j)"), channels: outC, contextDim: c.crossAttentionDim,
                               heads: heads, groups: c.normGroups, probes: probes)
        } : []
        upsamplerConv = last ? nil : Conv2d(w.scoped("upsamplers.0.conv"), in: outC, out: outC, kernel: 3)
    }

    /// `upsampleTo`: the size to upsample to when the latent side is not a multiple of the
    /// UNet's total downsampling (diffusers' `forward_upsample_size`); nil doubles.
    func callAsFunction(_ x: Tensor, skips: inout [Tensor], temb: Tensor, context: Tensor, upsampleTo: (Int, Int)?) throws -> Tensor {
        var h = x
        for (j, resnet) in resnets.enumerated() {
            h = try concat([h, skips.removeLast()], axis: 1)  // [B, C + Cskip, H, W]
            h = try resnet(h, siluTimeEmbedding: temb)
            if !attentions.isEmpty { h = try attentions[j](h, context: context) }
        }
        if let upsamplerConv {
            let up = try upsampleTo.map { try upsampleNearest(h, height: $0.0, width: $0.1) } ?? upsampleNearest2x(h)
            h = try upsamplerConv(up)  // [B, C, 2H, 2W] (or the skip's size)
        }
        return h
    }
}
