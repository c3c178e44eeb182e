import Tensors

/// diffusers `Attention` as SD 1.x uses it: q/k/v projections without bias, multi-head
/// scaled-dot-product attention, output projection with bias. Self-attention when no context
/// is given (`attn1`), cross-attention over the text embedding otherwise (`attn2`).
struct CrossAttention {
    /// The module path in diffusers naming (e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn2`).
    let site: String
    let q, k, v, out: Linear
    let heads: Int
    let probes: ProbeHub?

    init(_ w: WeightBinder, queryDim: Int, contextDim: Int?, heads: Int, probes: ProbeHub? = nil) {
        site = w.path
        self.probes = probes
        q = Linear(w.scoped("to_q"), in: queryDim, out: queryDim, bias: false)
        k = Linear(w.scoped("to_k"), in: contextDim ?? queryDim, out: queryDim, bias: false)
        v = Linear(w.scoped("to_v"), in: contextDim ?? queryDim, out: queryDim, bias: false)
        out = Linear(w.scoped("to_out.0"), in: queryDim, out: queryDim)
        self.heads = heads
    }

    /// `height × width`: the spatial map the N queries come from (for probes).
    func callAsFunction(_ x: Tensor, context: Tensor? = nil, height: Int = 0, width: Int = 0) throws -> Tensor {  // [B, N, C]
        let c = context ?? x                                                      // [B, M, Cc]
        var callback: AttentionProbabilities?
        if let observer = probes?.attention, observer.wantsAttention(site: site, crossAttention: context != nil) {
            let (site, heads, keys) = (self.site, self.heads, c.shape[1])
            callback = { b, h, r0, rows, p in
                observer.attention(site: site, batch: b, head: h, heads: heads, rowStart: r0, rows: rows, keys: keys,
                                   probabilities: p, height: height, width: width)
            }
            defer { observer.attentionDone(site: site) }
            return try out(attention(q: q(x), k: k(c), v: v(c), heads: heads, causal: false, probabilities: callback))
        }
        let a = try attention(q: q(x), k: k(c), v: v(c), heads: heads, causal: false)  // [B, N, C]
        return try out(a)
    }
}

/// diffusers `BasicTransformerBlock`: self-attention, cross-attention, GEGLU feed-forward, each
/// pre-normed with LayerNorm and added back.
struct BasicTransformerBlock {
    let norm1, norm2, norm3: LayerNorm
    let attn1, attn2: CrossAttention
    let ffIn: Linear   // [C → 2·4C] (GEGLU: hidden | gate)
    let ffOut: Linear  // [4C → C]

    init(_ w: WeightBinder, dim: Int, contextDim: Int, heads: Int, probes: ProbeHub?) {
        norm1 = LayerNorm(w.scoped("norm1"), dim: dim, eps: 1e-5)
        attn1 = CrossAttention(w.scoped("attn1"), queryDim: dim, contextDim: nil, heads: heads, probes: probes)
        norm2 = LayerNorm(w.scoped("norm2"), dim: dim, eps: 1e-5)
        attn2 = CrossAttention(w.scoped("attn2"), queryDim: dim, contextDim: contextDim, heads: heads, probes: probes)
        norm3 = LayerNorm(w.scoped("norm3"), dim: dim, eps: 1e-5)
        ffIn = Linear(w.scoped("ff.net.0.proj"), in: dim, out: dim * 8)
        ffOut = Linear(w.scoped("ff.net.2"), in: dim * 4, out: dim)
    }

    func callAsFunction(_ x: Tensor, context: Tensor, height: Int, width: Int) throws -> Tensor {  // [B, N, C]
        var h = try add(x, attn1(norm1(x), height: height, width: width))
        h = try add(h, attn2(norm2(h), context: context, height: height, width: width))
        let ff = try ffOut(geglu(ffIn(norm3(h))))  // [B, N, 8C] → [B, N, 4C] → [B, N, C]
        return try add(h, ff)
    }
}

/// diffusers `Transformer2DModel` (SD 1.x: 1×1 conv projections, one transformer block):
/// GroupNorm, proj_in, tokens = pixels, transformer block, proj_out, residual.
struct SpatialTransformer {
    let norm: GroupNorm
    let projIn: Conv2d
    let block: BasicTransformerBlock
    let projOut: Conv2d

    init(_ w: WeightBinder, channels: Int, contextDim: Int, heads: Int, groups: Int, probes: ProbeHub?) {
        norm = GroupNorm(w.scoped("norm"), channels: channels, groups: groups, eps: 1e-6)
        projIn = Conv2d(w.scoped("proj_in"), in: channels, out: channels, kernel: 1)
        block = BasicTransformerBlock(w.scoped("transformer_blocks.0"), dim: channels, contextDim: contextDim, heads: heads, probes: probes)
        projOut = Conv2d(w.scoped("proj_out"), in: channels, out: channels, kernel: 1)
    }

    func callAsFunction(_ x: Tensor, context: Tensor) throws -> Tensor {  // [B, C, H, W]
        let (hgt, wid) = (x.shape[2], x.shape[3])
        let h = try projIn(norm(x))                                            // [B, C, H, W]
        let tokens = try imageToTokens(h)                                   // [B, H·W, C]
        let t = try block(tokens, context: context, height: hgt, width: wid)   // [B, H·W, C]
        let back = try tokensToImage(t, height: hgt, width: wid)           // [B, C, H, W]
        return try add(projOut(back), x)
    }
}
