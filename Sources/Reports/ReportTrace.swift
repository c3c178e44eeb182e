import Analysis
import Checkpoints
import Foundation
import Imaging
import Tensors

/// One recorded run as a report reads it (docs/TRACE.md): the settings from run.json, the latents
/// and x̂₀ of every evaluation, the word maps, the final image.
public struct ReportTrace {
    public let directory: String
    public let run: [String: Any]
    public let settings: [String: Any]
    public let tokens: [[String: Any]]
    public let seed: UInt64
    public let prompt: String, negativePrompt: String
    public let sampler: String
    public let steps: Int, width: Int, height: Int
    public let guidance: Double
    public let timesteps: [Double], sigmas: [Double]
    public let evaluationSeconds: [Double]
    /// Evaluations recorded (an interrupted run has fewer than planned).
    public let evaluations: Int
    public let modelPath: String, modelHash: String, modelSummary: String
    /// latents [E+1, 4, h, w], x0 [E, 4, h, w]
    public let latents: Tensor, x0: Tensor
    /// nil when the run was traced with --trace-attention off.
    public let wordMaps: TraceWordMaps?
    /// The decoded image (image.png), nil if the run stopped before it.
    public let image: RGBImage?
    /// Where the conditioning changed (run.json's `conditioning`: prompt editing, alternation, AND):
    /// from which evaluation on, which texts; empty for a plain prompt.
    public var conditioning: [(from: Int, prompts: [String], negative: String)] {
        (run["conditioning"] as? [[String: Any]] ?? []).compactMap { c in
            guard let from = (c["from_evaluation"] as? NSNumber)?.intValue, let prompts = c["prompts"] as? [String] else { return nil }
            return (from, prompts, c["negative"] as? String ?? "")
        }
    }

    /// The texts evaluation `e` was conditioned on, and whether they changed there.
    public func conditioning(at e: Int) -> (text: String, changed: Bool)? {
        let c = conditioning
        guard let current = c.last(where: { $0.from <= e }) else { return nil }
        return (current.prompts.map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " AND "), current.from == e && e > 0)
    }

    /// The merge remedy the run was made with (run.json's `remedy`), nil for a plain run.
    public let remedy: Remedy?

    /// run.json's `remedy` (docs/REMEDY.md): which channels were closed, on whom, where.
    public struct Remedy {
        /// text, cross or full (Separation.Stage).
        public let stage: String
        public let subjects: [String]
        /// Normalised x0, y0, x1, y1, one per subject.
        public let boxes: [[Double]]
        public let boundedEvaluations: Int?
    }

    public init(directory: String) throws {
        self.directory = directory
        let dir = URL(fileURLWithPath: directory)
        let runURL = dir.appendingPathComponent("run.json")
        guard let data = try? Data(contentsOf: runURL) else { throw ReportError("\(runURL.path): missing; expected a trace folder (pareidolia generate --trace DIR)") }
        guard let run = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let settings = run["settings"] as? [String: Any], let tokens = run["tokens"] as? [[String: Any]]
        else { throw ReportError("\(runURL.path): not a Pareidolia trace (expected JSON with settings and tokens)") }
        self.run = run
        self.settings = settings
        self.tokens = tokens
        seed = (run["seed"] as? NSNumber)?.uint64Value ?? 0
        prompt = settings["prompt"] as? String ?? ""
        negativePrompt = settings["negative_prompt"] as? String ?? ""
        sampler = settings["sampler"] as? String ?? "?"
        steps = settings["steps"] as? Int ?? 0
        width = settings["width"] as? Int ?? 0
        height = settings["height"] as? Int ?? 0
        guidance = (settings["guidance"] as? NSNumber)?.doubleValue ?? 0
        timesteps = (run["timesteps"] as? [NSNumber])?.map(\.doubleValue) ?? []
        sigmas = (run["sigmas"] as? [NSNumber])?.map(\.doubleValue) ?? []
        evaluationSeconds = (run["evaluation_seconds"] as? [NSNumber])?.map(\.doubleValue) ?? []
        let model = run["model"] as? [String: Any] ?? [:]
        modelPath = model["path"] as? String ?? ""
        modelHash = model["hash"] as? String ?? ""
        modelSummary = model["summary"] as? String ?? ""
        remedy = (run["remedy"] as? [String: Any]).map { r in
            Remedy(stage: r["stage"] as? String ?? "full", subjects: r["subjects"] as? [String] ?? [],
                   boxes: (r["boxes"] as? [[NSNumber]])?.map { $0.map(\.doubleValue) } ?? [],
                   boundedEvaluations: r["bounded_evaluations"] as? Int)
        }

        let latentsPath = dir.appendingPathComponent("latents.safetensors").path
        do {
            let file = try SafeTensorsFile(path: latentsPath)
            guard let l = file.tensors["latents"], let x = file.tensors["x0"] else { throw ReportError("has no latents or x0") }
            latents = try l.float32()
            x0 = try x.float32()
        } catch { throw ReportError("\(latentsPath): \(error)") }
        // No zero size: a huge evaluation count in zero bytes would drive every loop of the report.
        guard x0.rank == 4, latents.rank == 4, latents.shape[0] == x0.shape[0] + 1, !(x0.shape + latents.shape).contains(0) else {
            throw ReportError("\(latentsPath): latents \(latents.shape) and x0 \(x0.shape) do not fit [E+1, 4, h, w] and [E, 4, h, w]")
        }
        let stored = x0.shape[0]
        evaluations = (run["steps_completed"] as? Int).map { min($0, stored) } ?? stored
        guard evaluations > 0 else { throw ReportError("\(directory): the trace holds no evaluations") }
        let hasAttention = FileManager.default.fileExists(atPath: dir.appendingPathComponent("attention.safetensors").path)
        wordMaps = hasAttention ? try TraceWordMaps(directory: directory) : nil
        let imagePath = dir.appendingPathComponent("image.png").path
        image = FileManager.default.fileExists(atPath: imagePath) ? try readPNG(imagePath) : nil
    }

    /// Latent size.
    public var latentHeight: Int { x0.shape[2] }
    public var latentWidth: Int { x0.shape[3] }

    /// One evaluation's x̂₀ or latent as [1, 4, h, w].
    public func x0(at e: Int) throws -> Tensor { try slice(x0, index: e) }
    /// x_t after evaluation e−1 (e = 0: the initial noise), the latent evaluation e sees.
    public func latent(at e: Int) throws -> Tensor { try slice(latents, index: e) }

    private func slice(_ t: Tensor, index e: Int) throws -> Tensor {
        let n = t.count / t.shape[0]
        let out = Tensor(uninitializedShape: [1] + Array(t.shape.dropFirst()))  // [1, 4, h, w]
        out.pointer.update(from: t.pointer + e * n, count: n)
        return out
    }

    /// The words' weights as parsed (A1111 emphasis), by word label, from the token rows.
    public func weight(ofWordAt positions: [Int]) -> Double {
        let rows = tokens.filter { positions.contains(($0["position"] as? Int) ?? -1) }
        let w = rows.compactMap { ($0["weight"] as? NSNumber)?.doubleValue }
        return w.isEmpty ? 1 : w.reduce(0, +) / Double(w.count)
    }
}
