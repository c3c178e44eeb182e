import Checkpoints
import Foundation
import Imaging
import Models
import Tensors

/// CLIP similarity of a run's x̂₀ at every K-th evaluation with the whole prompt, each of its
/// comma-separated phrases, the negative prompt and any extra phrases — when during denoising each
/// part of the prompt is won or lost. Computed after the run from the stored x̂₀ (decoded with the
/// run's VAE), stored in the trace as `clip.safetensors` (`similarity` [K, L]) with `clip.json`.
public struct ClipSimilarity {
    public let labels: [String]
    /// Which phrase each label is: "prompt", "phrase", "negative", "extra".
    public let kinds: [String]
    public let evaluations: [Int]
    /// similarity[k][l]: cosine of x̂₀ at evaluations[k] with labels[l].
    public let similarity: [[Float]]
    public let secondsPerMeasurement: Double

    /// The prompt's comma-separated phrases (A1111 emphasis brackets and weights removed).
    public static func phrases(of prompt: String) -> [String] {
        let plain = prompt.replacingOccurrences(of: #":[0-9.]+\)"#, with: ")", options: .regularExpression)
            .filter { !"()[]".contains($0) }
        return plain.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    public init(trace: ReportTrace, scorer: CLIPScorer, vae: AutoencoderKL, every k: Int = 1, extra: [String] = [],
                progress: (Int, Int) -> Void = { _, _ in }) throws {
        guard k >= 1 else { throw ReportError("--every \(k): expected 1 or more") }
        var labels = [trace.prompt], kinds = ["prompt"]
        let parts = Self.phrases(of: trace.prompt)
        if parts.count > 1 { labels += parts; kinds += parts.map { _ in "phrase" } }
        if !trace.negativePrompt.isEmpty { labels.append(trace.negativePrompt); kinds.append("negative") }
        labels += extra; kinds += extra.map { _ in "extra" }
        let text = try scorer.textEmbeddings(labels)  // [L, P]
        var evals = Array(stride(from: k - 1, to: trace.evaluations, by: k))
        if evals.last != trace.evaluations - 1 { evals.append(trace.evaluations - 1) }  // always the last
        var rows: [[Float]] = []
        let start = Date()
        for (i, e) in evals.enumerated() {
            let z = try trace.x0(at: e)  // [1, 4, h, w]
            let image = try RGBImage(tensor: vae.decodeUNetLatent(z))  // [1, 3, H, W]
            let emb = try scorer.imageEmbedding(rgb: image.pixels, width: image.width, height: image.height)  // [1, P]
            rows.append(cosineSimilarities(emb, text)[0])
            progress(i + 1, evals.count)
        }
        secondsPerMeasurement = Date().timeIntervalSince(start) / Double(max(1, evals.count))
        (self.labels, self.kinds, self.evaluations, self.similarity) = (labels, kinds, evals, rows)
    }

    /// Writes clip.safetensors and clip.json into the trace folder (atomically, each).
    public func write(into directory: String, clipModel: String) throws {
        let t = Tensor(uninitializedShape: [similarity.count, labels.count])  // [K, L]
        for (k, row) in similarity.enumerated() { for (l, v) in row.enumerated() { t.pointer[k * labels.count + l] = v } }
        let dir = URL(fileURLWithPath: directory)
        try SafeTensorsWriter.write(["similarity": t], to: dir.appendingPathComponent("clip.safetensors").path)
        let json: [String: Any] = ["labels": labels, "kinds": kinds, "evaluations": evaluations, "clip_model": clipModel,
                                   "seconds_per_measurement": secondsPerMeasurement]
        try AtomicFile.write(JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]),
                             to: dir.appendingPathComponent("clip.json").path)
    }
}
