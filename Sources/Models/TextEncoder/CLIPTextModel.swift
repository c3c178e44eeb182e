import Foundation
import Tensors

/// One pre-norm transformer layer of a CLIP tower (causal in the text tower, not in the vision one).
struct CLIPEncoderLayer {
    let norm1: LayerNorm
    let q, k, v, out: Linear
    let norm2: LayerNorm
    let fc1, fc2: Linear
    let heads: Int
    let quickGELU: Bool
    let causal: Bool

    init(_ w: WeightBinder, _ c: CLIPTextConfig, causal: Bool = true) {
        self.causal = causal
        let d = c.hiddenSize
        norm1 = LayerNorm(w.scoped("layer_norm1"), dim: d, eps: c.layerNormEps)
        q = Linear(w.scoped("self_attn.q_proj"), in: d, out: d, fewRows: true)
        k = Linear(w.scoped("self_attn.k_proj"), in: d, out: d, fewRows: true)
        v = Linear(w.scoped("self_attn.v_proj"), in: d, out: d, fewRows: true)
        out = Linear(w.scoped("self_attn.out_proj"), in: d, out: d, fewRows: true)
        norm2 = LayerNorm(w.scoped("layer_norm2"), dim: d, eps: c.layerNormEps)
        fc1 = Linear(w.scoped("mlp.fc1"), in: d, out: c.intermediateSize, fewRows: true)
        fc2 = Linear(w.scoped("mlp.fc2"), in: c.intermediateSize, out: d, fewRows: true)
        heads = c.heads
        quickGELU = c.hiddenAct == "quick_gelu"
    }

    func releasePackedWeights() { for l in [q, k, v, out, fc1, fc2] { l.releasePacked() } }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [B, T, D]
        let h = try norm1(x)
        let a = try attention(q: q(h), k: k(h), v: v(h), heads: heads, causal: causal)  // [B, T, D]
        let x1 = try add(x, out(a))
        let m = try fc1(norm2(x1))  // [B, T, I]
        if quickGELU { quickGeluInPlace(m) } else { geluInPlace(m) }  // m is ours: no second [B, T, I] buffer
        return try add(x1, fc2(m))  // [B, T, D]
    }
}

/// CLIP text encoder of SD 1.x (transformers `CLIPTextModel`): token + position embeddings,
/// causal pre-norm transformer layers with quick GELU, final layer norm.
public final class CLIPTextModel {
    public let config: CLIPTextConfig
    let tokenEmbedding: WeightData  // [V, D], at the model's weight precision
    let positionEmbedding: Tensor  // [P, D]
    let layers: [CLIPEncoderLayer]
    let finalNorm: LayerNorm

    /// Binds the weights under `w`. Accepts keys with and without transformers 4's `text_model.`
    /// prefix (transformers 5 dropped it).
    public init(_ w: WeightBinder, config: CLIPTextConfig) {
        self.config = config
        let root = w.has("text_model.embeddings.token_embedding.weight") ? w.scoped("text_model") : w
        let d = config.hiddenSize
        tokenEmbedding = root.weight("embeddings.token_embedding.weight", shape: [config.vocabSize, d])
        positionEmbedding = root.tensor("embeddings.position_embedding.weight", shape: [config.maxPositions, d])
        layers = (0..<config.layers).map { CLIPEncoderLayer(root.scoped("encoder.layers.\($0)"), config) }
        finalNorm = LayerNorm(root.scoped("final_layer_norm"), dim: d, eps: config.layerNormEps)
    }

    /// Rows of the token-embedding input to replace: (batch item, token position, vector). This is
    /// how textual-inversion vectors enter: in place of their placeholder tokens, before the
    /// position embeddings are added (A1111's `EmbeddingsWithFixes`).
    public typealias EmbeddingOverride = (batch: Int, position: Int, vector: [Float])

    /// The token-embedding table as float32 [V, D] (a widened copy when held in 16 bits).
    public func tokenEmbeddingTable() throws -> Tensor {
        if case .float(let t) = tokenEmbedding { return t }
        return try tokenEmbedding.withFloat32 { $0.copy() }
    }

    /// Token + position embeddings for `ids` ([B][T] token ids, T ≤ max positions).
    public func embed(_ ids: [[Int32]], overrides: [EmbeddingOverride] = []) throws -> Tensor {
        let b = ids.count, t = ids.first?.count ?? 0, d = config.hiddenSize
        guard ids.allSatisfy({ $0.count == t }), t <= config.maxPositions else {
            throw TensorError("text encoder: expected \(b) sequences of equal length ≤ \(config.maxPositions)")
        }
        let out = Tensor(uninitializedShape: [b, t, d])  // [B, T, D]
        for (i, row) in ids.enumerated() {
            for (j, id) in row.enumerated() {
                guard id >= 0, Int(id) < config.vocabSize else { throw TensorError("text encoder: token id \(id) outside the vocabulary") }
                let dst = out.pointer + (i * t + j) * d, pos = positionEmbedding.pointer + j * d
                tokenEmbedding.row(Int(id), into: dst)
                for c in 0..<d { dst[c] += pos[c] }
            }
        }
        for o in overrides {
            guard o.batch < b, o.position < t, o.vector.count == d else {
                throw TensorError("text encoder: embedding vector of width \(o.vector.count) at token \(o.position) does not fit [\(b), \(t), \(d)]")
            }
            let dst = out.pointer + (o.batch * t + o.position) * d, pos = positionEmbedding.pointer + o.position * d
            for c in 0..<d { dst[c] = o.vector[c] + pos[c] }
        }
        return out
    }

    /// Hidden states after the embeddings (index 0) and after each layer (1…L), as
    /// transformers' `output_hidden_states` gives them; `upTo` stops early.
    public func hiddenStates(_ ids: [[Int32]], upTo last: Int? = nil, overrides: [EmbeddingOverride] = []) throws -> [Tensor] {
        var states = [try embed(ids, overrides: overrides)]
        for layer in layers.prefix(last ?? layers.count) { states.append(try layer(states.last!)) }
        return states
    }

    /// Conditioning for the UNet with A1111's clip skip: 1 = the last layer, 2 = the penultimate
    /// layer's output, and so on; the final layer norm is applied in every case.
    public func encode(_ ids: [[Int32]], clipSkip: Int = 1, overrides: [EmbeddingOverride] = []) throws -> Tensor {  // [B, T, D]
        guard (1...config.layers).contains(clipSkip) else {
            throw TensorError("clip skip \(clipSkip) outside 1…\(config.layers)")
        }
        let states = try hiddenStates(ids, upTo: config.layers - (clipSkip - 1), overrides: overrides)
        return try finalNorm(states.last!)
    }

    /// Frees the layers' packed weights (a run's prompt is encoded); the next encode packs them again.
    public func releasePackedWeights() { for l in layers { l.releasePackedWeights() } }

    /// The final-layer-normed output of the last layer (transformers' `last_hidden_state`).
    public func lastHiddenState(_ ids: [[Int32]]) throws -> Tensor { try encode(ids, clipSkip: 1) }
}
