import Checkpoints
import Foundation
import Imaging
import Models
import Tensors

/// CLIP similarity of a run's x̂₀ at every K-th evaluation with the whole prompt, each of its
/// comma-separated phrases, the negative prompt and any extra phrases — when during denoising each
/// part of the prompt is won or lost. Computed after the run from the stored x̂₀ (decoded with the
/// run's VAE), stored in the trace as `clip.safetensors` (`similarity` [K, L]) with `clip.json`.
///
/// CLIP sees a picture only `size` pixels across (224 for ViT-L/14), so x̂₀ can be decoded from a
/// latent first shrunk to `size`/8 on its short side (antialiased) instead of decoded whole and
/// shrunk by the preprocessor: the VAE's cost falls with the square of the size. It is not the
/// default: on the demo model (256-px runs, its 128-px CLIP) it moved cosines by 0.10 on average
/// and up to 0.52 (`pareidolia-bench clip`), as the VAE draws a shrunk latent's small objects badly.
public struct ClipSimilarity {
    /// How x̂₀ is decoded for CLIP.
    public enum Decode: String, CaseIterable, Sendable {
        /// The whole latent, as the run's image (the preprocessor shrinks it).
        case full
        /// The latent shrunk to the CLIP's input size / 8 on its short side, when it is larger.
        case reduced
    }
    public let labels: [String]
    /// Which phrase each label is: "prompt", "phrase", "negative", "extra".
    public let kinds: [String]
    public let evaluations: [Int]
    /// similarity[k][l]: cosine of x̂₀ at evaluations[k] with labels[l].
    public let similarity: [[Float]]
    /// Wall time per measurement, and of it the decode's share (the rest is CLIP: preprocessing,
    /// vision tower, cosines).
    public let secondsPerMeasurement: Double, decodeSecondsPerMeasurement: Double
    /// The decode used and the size of the picture CLIP's preprocessor was given.
    public let decode: Decode, decodedHeight: Int, decodedWidth: Int

    /// Phrases given on the command line, separated by ';' (blank ones dropped).
    public static func listedPhrases(_ list: String?) -> [String] {
        (list ?? "").split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The prompt's comma-separated phrases (A1111 emphasis brackets and weights removed).
    public static func phrases(of prompt: String) -> [String] {
        let plain = prompt.replacingOccurrences(of: #":[0-9.]+\)"#, with: ")", options: .regularExpression)
            .filter { !"()[]".contains($0) }
        return plain.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// The latent size decoded for CLIP: the run's, or its short side shrunk to ⌈size / factor⌉
    /// (the long one in proportion, rounded) when `reduced` and that is smaller.
    public static func latentSize(height h: Int, width w: Int, clipSize: Int, factor: Int = 8, decode: Decode) -> (height: Int, width: Int) {
        let target = (clipSize + factor - 1) / factor, short = min(h, w)
        guard decode == .reduced, target < short else { return (h, w) }
        func scaled(_ n: Int) -> Int { n == short ? target : max(target, Int((Double(n) * Double(target) / Double(short)).rounded())) }
        return (scaled(h), scaled(w))
    }

    public init(trace: ReportTrace, scorer: CLIPScorer, vae: AutoencoderKL, every k: Int = 1, extra: [String] = [],
                decode: Decode = .full, progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard k >= 1 else { throw ReportError("--every \(k): expected 1 or more") }
        var labels = [trace.prompt], kinds = ["prompt"]
        let parts = Self.phrases(of: trace.prompt)
        if parts.count > 1 { labels += parts; kinds += parts.map { _ in "phrase" } }
        if !trace.negativePrompt.isEmpty { labels.append(trace.negativePrompt); kinds.append("negative") }
        labels += extra; kinds += extra.map { _ in "extra" }
        let text = try scorer.textEmbeddings(labels)  // [L, P]
        var evals = Array(stride(from: k - 1, to: trace.evaluations, by: k))
        if evals.last != trace.evaluations - 1 { evals.append(trace.evaluations - 1) }  // always the last
        let size = Self.latentSize(height: trace.latentHeight, width: trace.latentWidth, clipSize: scorer.processor.size,
                                   factor: vae.config.downFactor, decode: decode)
        let reduced = size != (trace.latentHeight, trace.latentWidth)
        var rows: [[Float]] = [], pictureSize = (0, 0), decoding = 0.0
        let start = Date()
        for (i, e) in evals.enumerated() {
            var z = try trace.x0(at: e)  // [1, 4, h, w]
            if reduced {
                z = try resizeBilinearAntialiased(z, height: size.height, width: size.width)  // [1, 4, h', w']
            }
            let decodeStart = Date()
            let image = try RGBImage(tensor: vae.decodeUNetLatent(z))  // [1, 3, 8h', 8w']
            decoding += Date().timeIntervalSince(decodeStart)
            pictureSize = (image.height, image.width)
            let emb = try scorer.imageEmbedding(rgb: image.pixels, width: image.width, height: image.height)  // [1, P]
            rows.append(cosineSimilarities(emb, text)[0])
            progress(i + 1, evals.count)
        }
        secondsPerMeasurement = Date().timeIntervalSince(start) / Double(max(1, evals.count))
        decodeSecondsPerMeasurement = decoding / Double(max(1, evals.count))
        (self.labels, self.kinds, self.evaluations, self.similarity) = (labels, kinds, evals, rows)
        (self.decode, decodedHeight, decodedWidth) = (reduced ? .reduced : .full, pictureSize.0, pictureSize.1)
    }

    /// Writes clip.safetensors and clip.json into the trace folder (atomically, each). Both carry
    /// one `measurement` id, so a reader can tell a pair from two different measurements (a write
    /// stopped between the two files) and ignore it.
    public func write(into directory: String, clipModel: String) throws {
        let t = Tensor(uninitializedShape: [similarity.count, labels.count])  // [K, L]
        for (k, row) in similarity.enumerated() { for (l, v) in row.enumerated() { t.pointer[k * labels.count + l] = v } }
        let dir = URL(fileURLWithPath: directory)
        let id = UUID().uuidString
        try SafeTensorsWriter.write(["similarity": t], metadata: ["measurement": id], to: dir.appendingPathComponent("clip.safetensors").path)
        let json: [String: Any] = ["measurement": id, "labels": labels, "kinds": kinds, "evaluations": evaluations, "clip_model": clipModel,
                                   "seconds_per_measurement": secondsPerMeasurement,
                                   "decode_seconds_per_measurement": decodeSecondsPerMeasurement, "decode": decode.rawValue,
                                   "decoded_size": [decodedHeight, decodedWidth]]
        try AtomicFile.write(JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
                             to: dir.appendingPathComponent("clip.json").path)
    }
}

/// A trace's stored CLIP measurement (docs/TRACE.md), as the report reads it; nil when the trace
/// has none, or when clip.json and clip.safetensors come from two measurements (a write stopped
/// between the two files), whose halves must not be drawn as one.
struct StoredClip {
    let labels: [String]
    /// One per label: "prompt", "phrase", "negative", "extra" (older files: the first is the prompt).
    let kinds: [String]
    let evaluations: [Int]
    /// similarity[k][l]: cosine of x̂₀ at evaluations[k] with labels[l].
    let similarity: [[Float]]
    /// The CLIP folder it was measured with (absolute), "" when not recorded.
    let clipModel: String

    init?(directory: String) {
        let dir = URL(fileURLWithPath: directory)
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("clip.json")),
              let o = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let labels = o["labels"] as? [String], let evals = o["evaluations"] as? [Int],
              let file = try? SafeTensorsFile(path: dir.appendingPathComponent("clip.safetensors").path),
              let sim = try? file.tensors["similarity"]?.float32(), sim.count == labels.count * evals.count,
              file.metadata["measurement"] == o["measurement"] as? String  // one measurement, not halves of two
        else { return nil }
        let stored = o["kinds"] as? [String] ?? []
        kinds = stored.count == labels.count ? stored : labels.indices.map { $0 == 0 ? "prompt" : "phrase" }
        similarity = evals.indices.map { k in (0..<labels.count).map { sim.pointer[k * labels.count + $0] } }
        (self.labels, evaluations, clipModel) = (labels, evals, o["clip_model"] as? String ?? "")
    }
}
