import Foundation

/// Shape of a CLIP text tower (HF `CLIPTextConfig` keys).
public struct CLIPTextConfig: Sendable, Equatable {
    public var vocabSize = 49408
    public var hiddenSize = 768
    public var intermediateSize = 3072
    public var layers = 12
    public var heads = 12
    public var maxPositions = 77
    public var layerNormEps: Float = 1e-5
    /// "quick_gelu" for SD 1.x (OpenAI CLIP ViT-L/14); "gelu" for some fine-tunes.
    public var hiddenAct = "quick_gelu"

    /// SD 1.x: OpenAI CLIP ViT-L/14's text tower.
    public static let sd15 = CLIPTextConfig()

    public init() {}

    /// Reads `text_encoder/config.json`; keys that are absent keep the SD 1.5 value.
    public init(json data: Data, source: String) throws {
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw WeightLoadError(description: "\(source): expected a JSON object")
        }
        // transformers 5 may nest the text settings under "text_config".
        let c = (o["text_config"] as? [String: Any]) ?? o
        func int(_ k: String) -> Int? { (c[k] as? NSNumber)?.intValue }
        if let v = int("vocab_size") { vocabSize = v }
        if let v = int("hidden_size") { hiddenSize = v }
        if let v = int("intermediate_size") { intermediateSize = v }
        if let v = int("num_hidden_layers") { layers = v }
        if let v = int("num_attention_heads") { heads = v }
        if let v = int("max_position_embeddings") { maxPositions = v }
        if let v = (c["layer_norm_eps"] as? NSNumber)?.floatValue { layerNormEps = v }
        if let v = c["hidden_act"] as? String { hiddenAct = v }
        guard ["quick_gelu", "gelu"].contains(hiddenAct) else {
            throw WeightLoadError(description: "\(source): hidden_act '\(hiddenAct)' is not supported (expected quick_gelu or gelu)")
        }
        try requireSize(vocabSize, "vocab_size", 1...262_144, source: source)
        try requireSize(hiddenSize, "hidden_size", 1...8192, source: source)
        try requireSize(intermediateSize, "intermediate_size", 1...32_768, source: source)
        try requireSize(layers, "num_hidden_layers", 1...64, source: source)
        try requireSize(heads, "num_attention_heads", 1...128, source: source)
        try requireSize(maxPositions, "max_position_embeddings", 1...1024, source: source)
        try requireDivisible(hiddenSize, "hidden_size", by: heads, "num_attention_heads", source: source)
    }
}
