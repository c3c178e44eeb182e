import Analysis
import Diffusion
import Foundation
import Models
import Tensors

/// What a trace's run.json says was run — settings, model, embeddings, arithmetic — so the same
/// run can be made again (with a remedy, say).
public struct RecordedRun {
    public let folder: String
    public var settings: GenerationSettings
    public let modelPath: String
    /// `trigger=FILE` specs of the embeddings the run used.
    public let embeddingFiles: [String]
    public let precision: Precision
    public let fast: FastMath

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public init(folder: String) throws {
        let url = URL(fileURLWithPath: folder).appendingPathComponent("run.json")
        func fail(_ s: String) -> Failure { Failure(description: "\(url.path): \(s)") }
        guard let data = try? Data(contentsOf: url) else { throw fail("missing; expected a trace folder (pareidolia generate --trace DIR)") }
        guard let run = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let s = run["settings"] as? [String: Any], let prompt = s["prompt"] as? String else {
            throw fail("not a Pareidolia trace (expected JSON with settings)")
        }
        var settings = GenerationSettings(prompt: prompt)
        settings.negativePrompt = s["negative_prompt"] as? String ?? ""
        guard let seed = (s["seed"] as? NSNumber)?.uint64Value, let steps = (s["steps"] as? NSNumber)?.intValue,
              let width = (s["width"] as? NSNumber)?.intValue, let height = (s["height"] as? NSNumber)?.intValue,
              let guidance = (s["guidance"] as? NSNumber)?.floatValue, let sampler = s["sampler"] as? String else {
            throw fail("settings lack seed, steps, size, guidance or sampler")
        }
        settings.seed = seed
        settings.steps = steps
        settings.width = width
        settings.height = height
        settings.guidance = guidance
        do {
            settings.samplerChoice = try SamplerChoice.parse(sampler, schedule: s["schedule"] as? String)
            if case var .a1111(a) = settings.samplerChoice {
                a.ensd = (s["ensd"] as? NSNumber)?.uint64Value ?? 0
                if let u = s["unipc"] as? [String: Any] {
                    // Absent keys keep A1111's defaults; a value the engine does not know is an error.
                    if let v = u["variant"] as? String {
                        guard let variant = UniPCOptions.Variant(rawValue: v) else { throw fail("unipc variant \(v): expected bh1 or bh2") }
                        a.unipc.variant = variant
                    }
                    if let v = u["skip_type"] as? String {
                        guard let skip = UniPCOptions.SkipType(rawValue: v) else { throw fail("unipc skip_type \(v): expected time_uniform, time_quadratic or logSNR") }
                        a.unipc.skipType = skip
                    }
                    if let v = (u["order"] as? NSNumber)?.intValue { a.unipc.order = v }
                    if let v = u["lower_order_final"] as? Bool { a.unipc.lowerOrderFinal = v }
                }
                settings.a1111 = a
            }
        } catch { throw fail("sampler: \(error)") }
        settings.rng = RNGKind(rawValue: s["rng"] as? String ?? "cpu") ?? .cpu
        settings.clipSkip = (s["clip_skip"] as? NSNumber)?.intValue ?? 1
        guard let model = (run["model"] as? [String: Any])?["path"] as? String, !model.isEmpty else { throw fail("names no model") }
        let arithmetic = run["arithmetic"] as? [String: Any] ?? [:]
        self.folder = folder
        self.settings = settings
        self.modelPath = model
        self.embeddingFiles = PairStudy.recordedEmbeddings(run)
        precision = Precision(rawValue: arithmetic["precision"] as? String ?? "fp32") ?? .fp32
        fast = (try? FastMath(parsing: arithmetic["fast"] as? String ?? "winograd")) ?? .default
    }
}
