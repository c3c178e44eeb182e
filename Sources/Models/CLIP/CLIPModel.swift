import Checkpoints
import Foundation
import Tensors

/// A whole CLIP (transformers `CLIPModel`): text and vision towers with their projections into
/// one embedding space — what scores a picture against a phrase. Loads a Hugging Face folder
/// (config.json with text_config, vision_config and projection_dim; model.safetensors or
/// pytorch_model.bin), fp32 or fp16.
public final class CLIPModel {
    public let text: CLIPTextModel
    public let vision: CLIPVisionModel
    public let projectionDim: Int
    /// The token that ends a text; its position's state is the text's pooled output.
    public let eosTokenID: Int32
    let textProjection: Linear  // [P, Dt], no bias
    let visualProjection: Linear  // [P, Dv], no bias

    public init(_ w: WeightBinder, text: CLIPTextConfig, vision: CLIPVisionConfig, projectionDim: Int, eosTokenID: Int32 = 49407) {
        self.text = CLIPTextModel(w.scoped("text_model"), config: text)
        self.vision = CLIPVisionModel(w.scoped("vision_model"), config: vision)
        self.projectionDim = projectionDim
        self.eosTokenID = eosTokenID
        textProjection = Linear(w.scoped("text_projection"), in: text.hiddenSize, out: projectionDim, bias: false)
        visualProjection = Linear(w.scoped("visual_projection"), in: vision.hiddenSize, out: projectionDim, bias: false)
    }

    /// What a Hugging Face CLIPModel folder's config.json describes, and its weights file.
    public struct FolderLayout {
        public let text: CLIPTextConfig, vision: CLIPVisionConfig
        public let projectionDim: Int, eosTokenID: Int32
        public let weights: String
    }

    /// Reads a CLIPModel folder's config.json and finds its weights, without loading them.
    public static func layout(_ path: String) throws -> FolderLayout {
        let root = URL(fileURLWithPath: path)
        let configURL = root.appendingPathComponent("config.json")
        guard let data = try? Data(contentsOf: configURL),
              let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let t = o["text_config"] as? [String: Any], let v = o["vision_config"] as? [String: Any]
        else { throw WeightLoadError(description: "\(configURL.path): expected a CLIPModel config.json (text_config and vision_config)") }
        let textConfig = try CLIPTextConfig(json: JSONSerialization.data(withJSONObject: t), source: configURL.path)
        let visionConfig = try CLIPVisionConfig(v, source: configURL.path)
        let weights = ["model.safetensors", "pytorch_model.bin"].map { root.appendingPathComponent($0).path }
            .first { FileManager.default.fileExists(atPath: $0) }
        guard let file = weights else { throw WeightLoadError(description: "\(path): no model.safetensors or pytorch_model.bin") }
        return FolderLayout(text: textConfig, vision: visionConfig, projectionDim: (o["projection_dim"] as? NSNumber)?.intValue ?? 768,
                            eosTokenID: Int32((t["eos_token_id"] as? NSNumber)?.intValue ?? 49407), weights: file)
    }

    /// Loads a Hugging Face CLIPModel folder.
    public static func load(_ path: String, precision: Precision = .fp32) throws -> CLIPModel {
        let l = try layout(path)
        let binder = WeightBinder(source: ArchiveWeights(try Checkpoint.open(l.weights)), precision: precision)
        let model = CLIPModel(binder, text: l.text, vision: l.vision, projectionDim: l.projectionDim, eosTokenID: l.eosTokenID)
        _ = try binder.finish(model: "CLIP", ignoringUnused: { $0 == "logit_scale" || $0.hasSuffix("position_ids") })
        return model
    }

    /// Image embeddings (transformers' `get_image_features`), [B, P], for preprocessed pixels [B, 3, S, S].
    public func imageEmbeddings(_ pixels: Tensor) throws -> Tensor {
        try visualProjection(vision.pooled(pixels))  // [B, P]
    }

    /// Text embeddings (transformers' `get_text_features`), [B, P]: the final-normed state at each
    /// text's first end token, projected. Configs written before transformers#24773 (OpenAI's
    /// own, `clip-vit-large-patch14` among them) say `eos_token_id` 2; transformers then pools at
    /// the highest id instead (the first end token, 49407, in CLIP's vocabulary), and so does this.
    public func textEmbeddings(_ ids: [[Int32]]) throws -> Tensor {
        let h = try text.lastHiddenState(ids)  // [B, T, D]
        let (b, t, d) = (h.shape[0], h.shape[1], h.shape[2])
        let pooled = Tensor(uninitializedShape: [b, d])  // [B, D]
        for (i, row) in ids.enumerated() {
            let end = eosTokenID == 2 ? row.max().flatMap { row.firstIndex(of: $0) } : row.firstIndex(of: eosTokenID)
            guard let e = end else { throw TensorError("CLIP text: sequence \(i) has no end token \(eosTokenID)") }
            pooled.pointer.advanced(by: i * d).update(from: h.pointer + (i * t + e) * d, count: d)
        }
        return try textProjection(pooled)  // [B, P]
    }
}

/// Cosine similarity of each row of `a` [N, P] with each row of `b` [M, P] → [N][M].
public func cosineSimilarities(_ a: Tensor, _ b: Tensor) -> [[Float]] {
    let p = a.shape[1]
    func row(_ t: Tensor, _ i: Int) -> [Double] { (0..<p).map { Double(t.pointer[i * p + $0]) } }
    func norm(_ v: [Double]) -> Double { v.reduce(0) { $0 + $1 * $1 }.squareRoot() }
    return (0..<a.shape[0]).map { i in
        let x = row(a, i), nx = norm(x)
        return (0..<b.shape[0]).map { j in
            let y = row(b, j), dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
            return Float(dot / max(nx * norm(y), 1e-12))
        }
    }
}

/// A CLIPModel with its tokenizer and preprocessing: scores 8-bit RGB images against phrases.
public final class CLIPScorer {
    public let model: CLIPModel
    public let tokenizer: CLIPTokenizer
    public let processor: CLIPImageProcessor

    /// A Hugging Face CLIPModel folder whose tokenizer files (vocab.json + merges.txt, or
    /// tokenizer.json) sit beside the weights (or in `tokenizer/`).
    public init(folder path: String, precision: Precision = .fp32) throws {
        model = try CLIPModel.load(path, precision: precision)
        tokenizer = try CLIPTokenizer(folder: Self.tokenizerFolder(path))
        processor = try Self.processor(URL(fileURLWithPath: path).appendingPathComponent("preprocessor_config.json"), imageSize: model.vision.config.imageSize)
    }

    /// Everything `init(folder:)` would refuse, found without loading the weights: the config, a
    /// weights file, the tokenizer files, the preprocessor config (a cheap check before a long run).
    public static func check(folder path: String) throws {
        let layout = try CLIPModel.layout(path)
        _ = try CLIPTokenizer(folder: tokenizerFolder(path))
        _ = try processor(URL(fileURLWithPath: path).appendingPathComponent("preprocessor_config.json"), imageSize: layout.vision.imageSize)
    }

    static func tokenizerFolder(_ path: String) -> URL {
        let root = URL(fileURLWithPath: path), sub = root.appendingPathComponent("tokenizer")
        return FileManager.default.fileExists(atPath: sub.path) ? sub : root
    }

    /// transformers' preprocessor_config.json when present (the size, crop, mean and std a model
    /// was trained with); else OpenAI CLIP's at the vision tower's size.
    static func processor(_ url: URL, imageSize: Int) throws -> CLIPImageProcessor {
        var p = CLIPImageProcessor(size: imageSize)
        guard let data = try? Data(contentsOf: url) else { return p }
        guard let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw WeightLoadError(description: "\(url.path): not JSON")
        }
        // Newer files say {"shortest_edge": 224} and {"height": 224, "width": 224}; OpenAI's own
        // (CLIPFeatureExtractor era) say plain 224 for both.
        if let s = (o["size"] as? [String: Any])?["shortest_edge"] as? Int ?? o["size"] as? Int { p.size = s }
        if let c = (o["crop_size"] as? [String: Any])?["height"] as? Int ?? o["crop_size"] as? Int { p.crop = c }
        if let m = o["image_mean"] as? [NSNumber], m.count == 3 { p.mean = m.map(\.floatValue) }
        if let s = o["image_std"] as? [NSNumber], s.count == 3 { p.std = s.map(\.floatValue) }
        guard p.crop == imageSize else { throw WeightLoadError(description: "\(url.path): crop \(p.crop) but the vision tower takes \(imageSize)") }
        return p
    }

    /// Text embeddings of phrases, [N, P].
    public func textEmbeddings(_ phrases: [String]) throws -> Tensor {
        let positions = model.text.config.maxPositions
        return try model.textEmbeddings(phrases.map { tokenizer.encode($0, length: positions) })
    }

    /// An image's embedding [1, P] (row-major 8-bit RGB).
    public func imageEmbedding(rgb: [UInt8], width: Int, height: Int) throws -> Tensor {
        try model.imageEmbeddings(processor(rgb: rgb, width: width, height: height))
    }

    /// An image scored against phrases: each phrase's cosine with the image embedding, and that
    /// embedding's norm (what `pareidolia clip --image` prints).
    public func score(rgb: [UInt8], width: Int, height: Int, phrases: [String]) throws -> (cosines: [Float], imageEmbeddingNorm: Double) {
        let image = try imageEmbedding(rgb: rgb, width: width, height: height)  // [1, P]
        let norm = (0..<image.count).reduce(0.0) { $0 + Double(image.pointer[$1]) * Double(image.pointer[$1]) }.squareRoot()
        return (cosineSimilarities(image, try textEmbeddings(phrases))[0], norm)
    }
}
