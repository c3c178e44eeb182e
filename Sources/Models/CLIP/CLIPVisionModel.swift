import Foundation
import Tensors

/// Shape of a CLIP vision tower (HF `CLIPVisionConfig` keys).
public struct CLIPVisionConfig: Sendable, Equatable {
    public var hiddenSize = 1024
    public var intermediateSize = 4096
    public var layers = 24
    public var heads = 16
    public var imageSize = 224
    public var patchSize = 14
    public var layerNormEps: Float = 1e-5
    public var hiddenAct = "quick_gelu"

    /// OpenAI CLIP ViT-L/14 (`openai/clip-vit-large-patch14`), whose text tower is SD 1.x's.
    public static let vitL14 = CLIPVisionConfig()
    public init() {}

    init(_ c: [String: Any], source: String) throws {
        func int(_ k: String) -> Int? { (c[k] as? NSNumber)?.intValue }
        if let v = int("hidden_size") { hiddenSize = v }
        if let v = int("intermediate_size") { intermediateSize = v }
        if let v = int("num_hidden_layers") { layers = v }
        if let v = int("num_attention_heads") { heads = v }
        if let v = int("image_size") { imageSize = v }
        if let v = int("patch_size") { patchSize = v }
        if let v = (c["layer_norm_eps"] as? NSNumber)?.floatValue { layerNormEps = v }
        if let v = c["hidden_act"] as? String { hiddenAct = v }
        guard ["quick_gelu", "gelu"].contains(hiddenAct), hiddenSize % heads == 0, imageSize % patchSize == 0 else {
            throw WeightLoadError(description: "\(source): vision_config (hidden_act \(hiddenAct), hidden \(hiddenSize), heads \(heads), image \(imageSize), patch \(patchSize)) is not a CLIP ViT Pareidolia runs")
        }
    }

    /// Patches per side.
    public var grid: Int { imageSize / patchSize }

    /// The transformer layers' shape, in the text config's terms (the layers are the same block).
    var layerConfig: CLIPTextConfig {
        var c = CLIPTextConfig()
        (c.hiddenSize, c.intermediateSize, c.layers, c.heads, c.layerNormEps, c.hiddenAct) =
            (hiddenSize, intermediateSize, layers, heads, layerNormEps, hiddenAct)
        return c
    }
}

/// CLIP's vision transformer (transformers `CLIPVisionModel`): patches by a strided convolution,
/// a class token, position embeddings, a layer norm before the layers (`pre_layrnorm`, sic), the
/// same pre-norm layers as the text tower without the causal mask, and a layer norm of the class
/// token's final state (the pooled output).
public final class CLIPVisionModel {
    public let config: CLIPVisionConfig
    let patchEmbedding: Conv2d
    let classEmbedding: Tensor  // [D]
    let positionEmbedding: Tensor  // [1 + N, D]
    let preNorm: LayerNorm
    let layers: [CLIPEncoderLayer]
    let postNorm: LayerNorm

    public init(_ w: WeightBinder, config: CLIPVisionConfig) {
        self.config = config
        let d = config.hiddenSize, n = config.grid * config.grid
        patchEmbedding = Conv2d(w.scoped("embeddings.patch_embedding"), in: 3, out: d, kernel: config.patchSize,
                                stride: config.patchSize, padding: 0, bias: false)
        classEmbedding = w.tensor("embeddings.class_embedding", shape: [d])
        positionEmbedding = w.tensor("embeddings.position_embedding.weight", shape: [1 + n, d])
        preNorm = LayerNorm(w.scoped("pre_layrnorm"), dim: d, eps: config.layerNormEps)
        layers = (0..<config.layers).map { CLIPEncoderLayer(w.scoped("encoder.layers.\($0)"), config.layerConfig, causal: false) }
        postNorm = LayerNorm(w.scoped("post_layernorm"), dim: d, eps: config.layerNormEps)
    }

    /// The last layer's states (transformers' `last_hidden_state`), [B, 1 + N, D], for pixels
    /// [B, 3, S, S] already preprocessed (resized, cropped, normalised with CLIP's mean and std).
    public func lastHiddenState(_ pixels: Tensor) throws -> Tensor {
        let s = config.imageSize, d = config.hiddenSize, n = config.grid * config.grid
        guard pixels.rank == 4, pixels.shape[1] == 3, pixels.shape[2] == s, pixels.shape[3] == s else {
            throw TensorError("CLIP vision: pixels \(pixels.shape) must be [B, 3, \(s), \(s)]")
        }
        let b = pixels.shape[0]
        let patches = try patchEmbedding(pixels)  // [B, D, g, g]
        var x = Tensor(uninitializedShape: [b, 1 + n, d])  // [B, 1 + N, D]: class token first, patches row-major
        for i in 0..<b {
            let dst = x.pointer + i * (1 + n) * d
            for c in 0..<d { dst[c] = classEmbedding.pointer[c] + positionEmbedding.pointer[c] }
            for p in 0..<n {
                let row = dst + (1 + p) * d, pos = positionEmbedding.pointer + (1 + p) * d
                for c in 0..<d { row[c] = patches.pointer[(i * d + c) * n + p] + pos[c] }
            }
        }
        x = try preNorm(x)
        for layer in layers { x = try layer(x) }
        return x
    }

    /// The pooled output: the class token's final state, layer-normed, [B, D].
    public func pooled(_ pixels: Tensor) throws -> Tensor {
        let h = try lastHiddenState(pixels)  // [B, 1 + N, D]
        let (b, t, d) = (h.shape[0], h.shape[1], h.shape[2])
        let cls = Tensor(uninitializedShape: [b, d])  // [B, D]
        for i in 0..<b { cls.pointer.advanced(by: i * d).update(from: h.pointer + i * t * d, count: d) }
        return try postNorm(cls)
    }
}
