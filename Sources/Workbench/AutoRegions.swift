import Analysis
import Diffusion
import Foundation
import Models
import Probes

/// `--regions auto`: the remedy's boxes from a run of the same seed and settings in which each
/// subject is named by its class word ("alex and cora" → "person and person"): the class words'
/// DAAM map (every occurrence, summed over evaluations) split into one instance per subject
/// (`InstanceRegions`), left to right; the default halves when it shows fewer instances.
public enum AutoRegions {
    public struct Found: Sendable {
        public let boxes: [[Float]]
        /// "auto (blobs of 'person')", or why the halves were kept.
        public let source: String
        /// The class-word run's trace.
        public let trace: String
    }

    /// `classes`: the class words (nil: each embedding's nearest vocabulary word, a plain word itself).
    /// The class-word run's trace is written to `trace`.
    public static func find(model: StableDiffusionModel, modelPath: String, settings: GenerationSettings,
                            subjects: [String], classes given: [String]?, embeddingFiles: [String], trace: String,
                            observers: [GenerationObserver] = [], shouldStop: () -> Bool = { false }) throws -> Found {
        let classes = try given ?? classWords(model: model, subjects: subjects, embeddingFiles: embeddingFiles)
        var s = settings
        s.separation = nil
        for (subject, word) in zip(subjects, classes) {
            s.prompt = Separation.replacingWord(subject, in: s.prompt, with: word)
        }
        var request = GenerationRun.Request(prompts: [s.prompt], seeds: [s.seed], settings: s, output: trace + ".png", modelPath: modelPath)
        request.trace = trace
        request.embeddingFiles = embeddingFiles
        try GenerationRun(model: model, request: request).run(observers: { _ in observers }, shouldStop: shouldStop)
        let maps = try TraceWordMaps(directory: trace)
        let wanted = Set(classes.map { $0.lowercased() })
        var map = [Float](repeating: 0, count: maps.height * maps.width)
        for (w, word) in maps.words.enumerated() where wanted.contains(word.label.lowercased()) {
            for e in maps.maps[w] { for i in map.indices { map[i] += e[i] } }
        }
        let names = wanted.sorted().joined(separator: "', '")
        guard let split = InstanceRegions.split(map, height: maps.height, width: maps.width, count: subjects.count) else {
            return Found(boxes: Separation.columns(subjects.count), source: "halves (the map of '\(names)' shows one instance)", trace: trace)
        }
        return Found(boxes: split.boxes, source: "auto (\(split.method) of '\(names)')", trace: trace)
    }

    /// Each subject's class word: an embedding's nearest vocabulary word, a plain word itself.
    public static func classWords(model: StableDiffusionModel, subjects: [String], embeddingFiles: [String]) throws -> [String] {
        let embeddings = try embeddingFiles.map { try EmbeddingLoader.load($0, tokenizer: model.tokenizer, width: model.textEncoder.config.hiddenSize) }
        let study = try EmbeddingStudy(model: model, embeddings: embeddings, words: [], top: 5, prompt: nil, classes: [])
        return subjects.map { s in
            guard let v = study.vectors.first(where: { $0.group.lowercased() == s.lowercased() }) else { return s }
            return v.nearest.map { $0.text.trimmingCharacters(in: .whitespaces) }.first { $0.count > 1 && $0.allSatisfy(\.isLetter) } ?? s
        }
    }
}
