import Tensors

/// The VAE's single-head spatial self-attention with its own GroupNorm and residual
/// (diffusers `Attention` built from the old `AttentionBlock`). LDM checkpoints store the
/// projections as 1×1 convs; `Linear` accepts both layouts.
struct VAEAttention {
    let norm: GroupNorm
    let q, k, v, out: Linear

    init(_ w: WeightBinder, channels: Int, groups: Int) {
        norm = GroupNorm(w.scoped("group_norm"), channels: channels, groups: groups, eps: 1e-6)
        q = Linear(w.scoped("to_q"), in: channels, out: channels)
        k = Linear(w.scoped("to_k"), in: channels, out: channels)
        v = Linear(w.scoped("to_v"), in: channels, out: channels)
        out = Linear(w.scoped("to_out.0"), in: channels, out: channels)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [B, C, H, W]
        let (hgt, wid) = (x.shape[2], x.shape[3])
        let t = try imageToTokens(norm(x))                              // [B, H·W, C]
        let a = try attention(q: q(t), k: k(t), v: v(t), heads: 1, causal: false)  // [B, H·W, C]
        let back = try tokensToImage(out(a), height: hgt, width: wid)  // [B, C, H, W]
        return try add(back, x)
    }
}

/// The VAE's middle: resnet, attention, resnet (no timestep embedding).
struct VAEMidBlock {
    let resnet1, resnet2: ResnetBlock
    let attention: VAEAttention

    init(_ w: WeightBinder, channels: Int, groups: Int) {
        resnet1 = ResnetBlock(w.scoped("resnets.0"), in: channels, out: channels, timeEmbeddingDim: nil, groups: groups, eps: 1e-6)
        attention = VAEAttention(w.scoped("attentions.0"), channels: channels, groups: groups)
        resnet2 = ResnetBlock(w.scoped("resnets.1"), in: channels, out: channels, timeEmbeddingDim: nil, groups: groups, eps: 1e-6)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        try resnet2(attention(resnet1(x)))
    }
}
