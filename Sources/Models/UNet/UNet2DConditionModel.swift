import Foundation
import Tensors

/// The SD 1.x denoiser (diffusers `UNet2DConditionModel`): predicts the noise ε in a latent
/// given the timestep and the text conditioning.
public final class UNet2DConditionModel {
    public let config: UNetConfig
    let timeEmbedding: TimestepEmbedding
    let convIn: Conv2d
    let down: [DownBlock]
    let mid: MidBlock
    let up: [UpBlock]
    let normOut: GroupNorm
    let convOut: Conv2d
    /// Instrumentation: set `probes.attention` to observe attention layers.
    public let probes = ProbeHub()

    public init(_ w: WeightBinder, config c: UNetConfig) {
        config = c
        let ch = c.blockOutChannels, n = ch.count
        timeEmbedding = TimestepEmbedding(w.scoped("time_embedding"), channels: ch[0], embeddingDim: c.timeEmbeddingDim,
                                          flipSinToCos: c.flipSinToCos, freqShift: c.freqShift)
        convIn = Conv2d(w.scoped("conv_in"), in: c.inChannels, out: ch[0], kernel: 3)

        // Down path; remember every skip's channel count in push order.
        var skipChannels = [ch[0]]
        var blocks: [DownBlock] = []
        for i in 0..<n {
            let inC = i == 0 ? ch[0] : ch[i - 1], last = i == n - 1
            blocks.append(DownBlock(w.scoped("down_blocks.\(i)"), in: inC, out: ch[i],
                                    crossAttention: c.downBlockTypes[i] == "CrossAttnDownBlock2D", last: last, c: c, heads: c.heads[i], probes: probes))
            skipChannels += Array(repeating: ch[i], count: c.layersPerBlock + (last ? 0 : 1))
        }
        down = blocks
        mid = MidBlock(w.scoped("mid_block"), channels: ch[n - 1], c: c, heads: c.heads[n - 1], probes: probes)

        // Up path pops the skips in reverse order.
        var ups: [UpBlock] = []
        var prev = ch[n - 1]
        for i in 0..<n {
            let outC = ch[n - 1 - i]
            let consumed = (0...c.layersPerBlock).map { _ in skipChannels.removeLast() }
            ups.append(UpBlock(w.scoped("up_blocks.\(i)"), previous: prev, out: outC, skipChannels: consumed,
                               crossAttention: c.upBlockTypes[i] == "CrossAttnUpBlock2D", last: i == n - 1, c: c, heads: c.heads[n - 1 - i], probes: probes))
            prev = outC
        }
        up = ups
        normOut = GroupNorm(w.scoped("conv_norm_out"), channels: ch[0], groups: c.normGroups, eps: c.normEps)
        convOut = Conv2d(w.scoped("conv_out"), in: ch[0], out: c.outChannels, kernel: 3)
    }

    /// ε prediction. `sample` [B, 4, h, w], one timestep per batch item (or one for all),
    /// `context` [B, T, crossAttentionDim].
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], context: Tensor) throws -> Tensor {
        let b = sample.shape[0]
        let factor = 1 << (config.blockOutChannels.count - 1)
        guard sample.rank == 4, sample.shape[1] == config.inChannels, sample.shape[2] > 0, sample.shape[3] > 0 else {
            throw TensorError("UNet: sample \(sample.shape) must be [B, \(config.inChannels), h, w]")
        }
        // Sides that do not halve evenly all the way down: upsample to each skip's size instead of 2×.
        let forwardSizes = sample.shape[2] % factor != 0 || sample.shape[3] % factor != 0
        guard context.rank == 3, context.shape[0] == b, context.shape[2] == config.crossAttentionDim else {
            throw TensorError("UNet: context \(context.shape) must be [\(b), T, \(config.crossAttentionDim)]")
        }
        let ts = timesteps.count == 1 ? Array(repeating: timesteps[0], count: b) : timesteps
        guard ts.count == b else { throw TensorError("UNet: \(timesteps.count) timesteps for batch \(b)") }

        let temb = try silu(timeEmbedding(ts))  // [B, E]; every resnet applies SiLU first
        var h = try convIn(sample)                 // [B, C0, h, w]
        var skips = [h]
        for block in down {
            let (out, s) = try block(h, temb: temb, context: context)
            h = out
            skips += s
        }
        h = try mid(h, temb: temb, context: context)
        for block in up {
            let target = forwardSizes && skips.count > block.resnets.count
                ? (skips[skips.count - block.resnets.count - 1].shape[2], skips[skips.count - block.resnets.count - 1].shape[3]) : nil
            h = try block(h, skips: &skips, temb: temb, context: context, upsampleTo: target)
        }
        return try convOut(normOut(h, silu: true))  // [B, 4, h, w]
    }
}
