import Diffusion
import Foundation
import Models

/// Two subjects of a traced prompt (words or embedding triggers), over one trace or a sweep:
/// their attention overlap at every evaluation, each one's share of the image, and — when the
/// run's model can be loaded — the cosine of their input vectors and of the encoder's final
/// states at them in the run's own prompt. What `pareidolia merge` prints and the report draws.
public struct PairStudy {
    public let a: String, b: String
    public let folders: [String]
    /// Per trace: the overlap timeline, and per evaluation the area share of a and of b.
    public let timelines: [MergeTimeline]
    public let shares: [[(a: Double, b: Double)]]
    public let verdict: MergeVerdict
    /// Why cosines are missing, when they are.
    public let note: String?

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    /// `model`: where the run's text encoder is (nil: run.json's path; no cosines if it is gone).
    public init(folders: [String], a: String, b: String, threshold: Float = 0.4, model: String? = nil) throws {
        (self.a, self.b, self.folders) = (a, b, folders)
        var timelines: [MergeTimeline] = [], shares: [[(Double, Double)]] = []
        for folder in folders {
            let t = try TraceWordMaps(directory: folder)
            guard let ia = t.index(of: a), let ib = t.index(of: b) else {
                throw Failure(description: "\(folder): the prompt has no word '\(t.index(of: a) == nil ? a : b)' (its words: \(t.words.map(\.label).joined(separator: ", ")))")
            }
            timelines.append(MergeTimeline(a: t.maps[ia], b: t.maps[ib], threshold: threshold))
            shares.append((0..<t.evaluations).map { e in
                let s = areaShares(t.maps.map { $0[e] })
                return (s[ia], s[ib])
            })
        }
        self.timelines = timelines
        self.shares = shares.map { $0.map { (a: $0.0, b: $0.1) } }

        // Cosines: from the run's model, embeddings and prompt.
        var inputCos: Float?, contextCos: Float?, context: String?, note: String?
        do {
            let run = try Self.runJSON(folders[0])
            let prompt = (run["settings"] as? [String: Any])?["prompt"] as? String ?? ""
            guard let path = model ?? (run["model"] as? [String: Any])?["path"] as? String, FileManager.default.fileExists(atPath: path) else {
                throw Failure(description: "the run's model is not there (pass --model)")
            }
            let sd = try StableDiffusionModel.load(path, vaeEncoder: false, fast: [])
            let embeddings = try Self.recordedEmbeddings(run).map { try EmbeddingLoader.load($0, tokenizer: sd.tokenizer, width: sd.textEncoder.config.hiddenSize) }
            let triggers = Set(embeddings.map(\.trigger))
            let words = [a, b].filter { !triggers.contains($0) }
            let study = try EmbeddingStudy(model: sd, embeddings: embeddings, words: words, top: 1, prompt: prompt, classes: [])
            if let ga = study.group(a), let gb = study.group(b) {
                inputCos = study.inputCosine(ga, gb)
                contextCos = study.contextualCosine(ga, gb)
                context = prompt
            }
        } catch {
            note = "no cosines: \(error)"
        }
        self.note = note
        verdict = MergeVerdict(a: a, b: b, timelines: timelines, inputCosine: inputCos, contextualCosine: contextCos, context: context)
    }

    /// The `--embedding` files a run used, as `trigger=FILE` specs (run.json's `embeddings`).
    public static func recordedEmbeddings(_ run: [String: Any]) -> [String] {
        (run["embeddings"] as? [[String: Any]] ?? []).compactMap { e in
            guard let trigger = e["trigger"] as? String, let file = e["file"] as? String else { return nil }
            return "\(trigger)=\(file)"
        }
    }

    static func runJSON(_ folder: String) throws -> [String: Any] {
        let url = URL(fileURLWithPath: folder).appendingPathComponent("run.json")
        guard let data = try? Data(contentsOf: url), let run = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "\(url.path): unreadable")
        }
        return run
    }
}
