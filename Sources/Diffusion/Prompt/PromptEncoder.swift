import Models
import Tensors

/// Turns prompts into UNet conditioning the way A1111 does: emphasis, 75-token chunks encoded
/// separately and concatenated, textual-inversion vectors, clip skip, and the "Original"
/// emphasis rule (scale each token's output by its weight, then restore the chunk's mean).
/// A prompt without syntax that fits one chunk gives exactly diffusers' conditioning.
public struct PromptEncoder {
    public let model: CLIPTextModel
    public let chunker: PromptChunker
    public let embeddings: [String: PromptEmbedding]
    public let clipSkip: Int

    public init(model: CLIPTextModel, tokenizer: CLIPTokenizer, embeddings: [PromptEmbedding] = [], clipSkip: Int = 1) {
        self.model = model
        self.chunker = PromptChunker(tokenizer: tokenizer, embeddings: embeddings)
        self.embeddings = Dictionary(embeddings.map { ($0.trigger, $0) }, uniquingKeysWith: { a, _ in a })
        self.clipSkip = clipSkip
    }

    /// [1, 77·chunks, D], plus how the prompt was split.
    public func encode(_ prompt: String) throws -> (Tensor, PromptChunker.Result) {
        let result = chunker.chunk(prompt)
        return (try encode(chunks: result.chunks), result)
    }

    /// Encodes each chunk and concatenates along the sequence.
    public func encode(chunks: [PromptChunk]) throws -> Tensor {
        let parts = try chunks.map(encode(chunk:))
        return parts.count == 1 ? parts[0] : try concat(parts, axis: 1)  // [1, 77·n, D]
    }

    func encode(chunk: PromptChunk) throws -> Tensor {  // [1, 77, D]
        var overrides: [CLIPTextModel.EmbeddingOverride] = []
        for fix in chunk.fixes {
            guard let e = embeddings[fix.embedding] else { continue }
            for (k, v) in e.vectors.enumerated() { overrides.append((0, fix.position + k, v)) }
        }
        let z = try model.encode([chunk.ids], clipSkip: clipSkip, overrides: overrides)
        guard chunk.weights.contains(where: { $0 != 1 }) else { return z }
        return Self.applyEmphasis(z, weights: chunk.weights)
    }

    /// A1111 "Original": z ← z · w (per token), then z ← z · mean(z_before) / mean(z_after).
    /// Means are taken over the whole chunk in double, as a check against float drift.
    static func applyEmphasis(_ z: Tensor, weights: [Float]) -> Tensor {
        let (t, d) = (z.shape[1], z.shape[2])
        let out = Tensor(uninitializedShape: z.shape)
        var before = 0.0, after = 0.0
        for i in 0..<t {
            let w = weights[i]
            for c in 0..<d {
                let v = z.pointer[i * d + c]
                let s = v * w
                out.pointer[i * d + c] = s
                before += Double(v)
                after += Double(s)
            }
        }
        let ratio = Float(before / Double(t * d)) / Float(after / Double(t * d))
        for i in 0..<out.count { out.pointer[i] *= ratio }
        return out
    }
}
