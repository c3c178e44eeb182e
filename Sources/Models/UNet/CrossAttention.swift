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

    /// `height × width`: the spatial map the N queries come from (for probes and regions).
    func callAsFunction(_ x: Tensor, context: Tensor? = nil, height: Int = 0, width: Int = 0) throws -> Tensor {  // [B, N, C]
        if let regional = probes?.regional, regional.active {
            if let context, regional.boundsCrossAttention {
                return try regionalCrossAttention(x, context: context, regional, height: height, width: width)
            }
            if context == nil, regional.boundsSelfAttention {
                return try boundedSelfAttention(x, regional, height: height, width: width)
            }
        }
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

// Bounded regional attention (RegionalAttention): the masked variants of the layer.
extension CrossAttention {
    /// The observer's callback for this layer, reporting batch item `batch` (nil: not wanted).
    func probeCallback(crossAttention: Bool, keys: Int, batch: Int?, height: Int, width: Int) -> AttentionProbabilities? {
        guard let observer = probes?.attention, observer.wantsAttention(site: site, crossAttention: crossAttention) else { return nil }
        let (site, heads) = (self.site, self.heads)
        return { b, h, r0, rows, p in
            observer.attention(site: site, batch: batch ?? b, head: h, heads: heads, rowStart: r0, rows: rows, keys: keys,
                               probabilities: p, height: height, width: width)
        }
    }

    /// Self-attention with pixels of one region kept from another region's pixels, every batch item.
    func boundedSelfAttention(_ x: Tensor, _ regional: RegionalAttention, height: Int, width: Int) throws -> Tensor {  // [B, N, C]
        let labels = regional.labels(height: height, width: width)
        let mask = AttentionLabelMask(queryLabels: labels, keyLabels: labels, rule: .regionsApart)
        let callback = probeCallback(crossAttention: false, keys: x.shape[1], batch: nil, height: height, width: width)
        defer { if callback != nil { probes?.attention?.attentionDone(site: site) } }
        return try out(maskedAttention(q: q(x), k: k(x), v: v(x), heads: heads, mask: mask, probabilities: callback))
    }

    /// Cross-attention: the unconditional item as usual; the conditional one with each subject's
    /// tokens seen only in its region, blended there with the subject's own context. The probe
    /// (trace) sees the conditional item's unmasked base attention, which the masks do not dictate.
    func regionalCrossAttention(_ x: Tensor, context: Tensor, _ regional: RegionalAttention, height: Int, width: Int) throws -> Tensor {  // [B, N, C]
        let (batch, n, channels) = (x.shape[0], x.shape[1], x.shape[2])
        let cb = regional.conditionalBatch
        guard cb < batch else { throw TensorError("regional attention: conditional item \(cb) of a batch of \(batch)") }
        let ones = Array(repeating: 1, count: batch)
        let qs = try split(q(x), axis: 0, sizes: ones)             // B × [1, N, C]
        let ks = try split(k(context), axis: 0, sizes: ones)       // B × [1, T, C]
        let vs = try split(v(context), axis: 0, sizes: ones)       // B × [1, T, C]
        let keys = context.shape[1]
        defer { if probes?.attention?.wantsAttention(site: site, crossAttention: true) == true { probes?.attention?.attentionDone(site: site) } }
        var outs: [Tensor] = []
        for b in 0..<batch {
            let callback = probeCallback(crossAttention: true, keys: keys, batch: b, height: height, width: width)
            guard b == cb else {
                outs.append(try attention(q: qs[b], k: ks[b], v: vs[b], heads: heads, probabilities: callback))  // [1, N, C]
                continue
            }
            let labels = regional.labels(height: height, width: width)
            let mask = AttentionLabelMask(queryLabels: labels, keyLabels: regional.keyLabels(count: keys), rule: .keysInOwnRegion)
            let base = try maskedAttention(q: qs[b], k: ks[b], v: vs[b], heads: heads, mask: mask,
                                           probabilities: callback, probeUnmasked: true)  // [1, N, C]
            let keep = regional.baseBlend
            for (r, region) in regional.regions.enumerated() {
                guard let own = region.context else { continue }
                let label = UInt8(r + 1)
                guard labels.contains(label) else { continue }
                let a = try attention(q: qs[b], k: k(own), v: v(own), heads: heads)  // [1, N, C]
                for i in 0..<n where labels[i] == label {
                    let dst = base.pointer + i * channels, src = a.pointer + i * channels
                    for c in 0..<channels { dst[c] = (1 - keep) * src[c] + keep * dst[c] }
                }
            }
            outs.append(base)
        }
        return try out(batch == 1 ? outs[0] : concat(outs, axis: 0))  // [B, N, C]
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
