import Checkpoints
import Diffusion
import Foundation
import Imaging
import Tensors

/// Records a generation into a trace folder: `run.json` (settings, seed, tokens, timesteps,
/// sigmas, timings) and `latents.safetensors` (`latents` [E+1, 4, h, w]: index 0 the initial
/// latent, index i the latent after evaluation i; `x0` [E, 4, h, w]: the sampler's denoised
/// estimate at each evaluation). Files are rewritten atomically after every evaluation, so an
/// interrupted run leaves a valid trace of the evaluations done (`steps_completed`).
public final class TraceRecorder: GenerationObserver {
    public static let formatVersion = 1
    public let directory: URL
    let engineVersion: String
    var settings: GenerationSettings?
    var extra: [String: Any]
    var latents: [Tensor] = []
    var predictions: [Tensor] = []
    var timesteps: [Float] = []
    var sigmas: [Float] = []
    var seconds: [Double] = []
    var evaluations = 0

    /// Creates the folder (or checks an existing one is writable) before any work starts.
    public init(directory path: String, engineVersion: String, extra: [String: Any] = [:]) throws {
        directory = URL(fileURLWithPath: path)
        self.engineVersion = engineVersion
        self.extra = extra
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw TraceError(description: "--trace \(path): cannot create the folder (\(error.localizedDescription))")
        }
        guard FileManager.default.isWritableFile(atPath: directory.path) else {
            throw TraceError(description: "--trace \(path): the folder is not writable")
        }
    }

    public struct TraceError: Error, CustomStringConvertible { public let description: String }

    /// Extra top-level keys for run.json (tokens, model fingerprint…), merged on the next write.
    public func set(_ key: String, _ value: Any) { extra[key] = value }

    public func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
        self.settings = settings
        self.evaluations = evaluations
        self.timesteps = timesteps
        self.sigmas = sigmas
        latents = [initialLatent.copy()]
    }

    public func didEvaluate(_ record: EvaluationRecord) {
        latents.append(record.latent.copy())
        if let x0 = record.predictedOriginal { predictions.append(x0.copy()) }
        seconds.append(record.seconds)
        do { try flush() } catch { if lastError == nil { lastError = error } }
    }

    /// The first write failure, if any (reported by the caller at the end).
    public private(set) var lastError: Error?

    public func flush() throws {
        guard !latents.isEmpty else { return }
        var tensors = ["latents": Self.stack(latents)]  // [E+1, 4, h, w]
        if predictions.count == latents.count - 1, !predictions.isEmpty { tensors["x0"] = Self.stack(predictions) }  // [E, 4, h, w]
        try SafeTensorsWriter.write(tensors, metadata: ["format_version": "\(Self.formatVersion)"],
                                    to: directory.appendingPathComponent("latents.safetensors").path)
        try writeRunJSON()
    }

    /// [N, …] from N tensors of shape [1, …].
    static func stack(_ items: [Tensor]) -> Tensor {
        let out = Tensor(uninitializedShape: [items.count] + items[0].shape.dropFirst())
        for (i, t) in items.enumerated() { (out.pointer + i * t.count).update(from: t.pointer, count: t.count) }
        return out
    }

    func writeRunJSON() throws {
        var run: [String: Any] = extra
        run["format_version"] = Self.formatVersion
        run["engine_version"] = engineVersion
        if let s = settings {
            run["seed"] = s.seed
            run["settings"] = [
                "prompt": s.prompt, "negative_prompt": s.negativePrompt, "seed": s.seed, "steps": s.steps,
                "guidance": s.guidance, "sampler": s.sampler.rawValue, "width": s.width, "height": s.height,
                "rng": s.rng.rawValue, "clip_skip": s.clipSkip,
            ] as [String: Any]
        }
        run["evaluations"] = evaluations
        run["steps_completed"] = latents.count - 1
        run["timesteps"] = timesteps
        run["sigmas"] = sigmas
        run["evaluation_seconds"] = seconds
        let data = try JSONSerialization.data(withJSONObject: run, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: directory.appendingPathComponent("run.json").path)
    }
}
