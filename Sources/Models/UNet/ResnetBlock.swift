import Tensors

/// diffusers `ResnetBlock2D`: GroupNorm-SiLU-conv twice, the timestep embedding added between,
/// a 1×1 shortcut when the channel count changes. The VAE uses it without timestep embedding.
struct ResnetBlock {
    let norm1: GroupNorm
    let conv1: Conv2d
    let timeProjection: Linear?
    let norm2: GroupNorm
    let conv2: Conv2d
    let shortcut: Conv2d?

    init(_ w: WeightBinder, in inC: Int, out outC: Int, timeEmbeddingDim: Int?, groups: Int, eps: Float) {
        norm1 = GroupNorm(w.scoped("norm1"), channels: inC, groups: groups, eps: eps)
        conv1 = Conv2d(w.scoped("conv1"), in: inC, out: outC, kernel: 3)
        timeProjection = timeEmbeddingDim.map { Linear(w.scoped("time_emb_proj"), in: $0, out: outC) }
        norm2 = GroupNorm(w.scoped("norm2"), channels: outC, groups: groups, eps: eps)
        conv2 = Conv2d(w.scoped("conv2"), in: outC, out: outC, kernel: 3)
        shortcut = inC == outC ? nil : Conv2d(w.scoped("conv_shortcut"), in: inC, out: outC, kernel: 1)
    }

    /// `temb` is the SiLU of the UNet's timestep embedding ([B, E]), shared by all resnets.
    func callAsFunction(_ x: Tensor, siluTimeEmbedding temb: Tensor? = nil) throws -> Tensor {
        var h = try conv1(norm1(x, silu: true))  // [B, O, H, W]
        if let timeProjection, let temb {
            h = try addBroadcast(h, timeProjection(temb))  // + [B, O] broadcast over H, W
        }
        h = try conv2(norm2(h, silu: true))
        let skip = try shortcut.map { try $0(x) } ?? x
        return try add(skip, h)  // [B, O, H, W]
    }
}
