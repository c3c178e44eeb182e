import Diffusion
import Foundation
import Models
import Probes

/// Where a set of embedding vectors (and words' token vectors) sit: norms and their vocabulary
/// percentile, nearest vocabulary tokens, cosines between vectors and between each embedding's
/// mean, and what the text encoder makes of the subjects in one prompt. What `pareidolia
/// embeddings` prints and the report's embeddings section draws.
public struct EmbeddingStudy {
    public struct Vector {
        public let label: String
        /// The embedding trigger or word it belongs to.
        public let group: String
        public let vector: [Float]
        public let norm: Float
        /// Share of vocabulary rows with a smaller norm, 0…1.
        public let normPercentile: Double
        public let nearest: [VocabularyNeighbours.Neighbour]
    }

    public let vocabularySize: Int, width: Int
    public let vectors: [Vector]
    /// cosine[i][j] between vectors.
    public let cosine: [[Float]]
    /// Embeddings then words, each one group; groupCosine between their mean vectors.
    public let groups: [String]
    public let groupCosine: [[Float]]
    /// The prompt the subjects were encoded in (nil: fewer than two groups and none given).
    public let context: String?
    /// Each group's mean final state in `context` (nil where it does not occur).
    public let subjectStates: [[Float]?]
    public let classes: [String]
    /// Each class word's state in "a photo of a WORD".
    public let classStates: [[Float]?]
    public let searchMilliseconds: Double

    public init(model sd: StableDiffusionModel, embeddings: [PromptEmbedding], words: [String] = [], top: Int = 8,
                prompt: String? = nil, classes: [String] = ["person", "man", "woman", "cat", "dog"]) throws {
        let table = try VocabularyNeighbours(textEncoder: sd.textEncoder, tokenizer: sd.tokenizer)
        var entries: [(label: String, group: String, vector: [Float])] = []
        for e in embeddings {
            for (i, v) in e.vectors.enumerated() { entries.append((e.vectors.count == 1 ? e.trigger : "\(e.trigger)[\(i)]", e.trigger, v)) }
        }
        for w in words {
            for t in try table.vectors(ofWord: w, textEncoder: sd.textEncoder) { entries.append(("\(t.token) (#\(t.id))", w, t.vector)) }
        }
        let t0 = DispatchTime.now().uptimeNanoseconds
        let neighbours = try table.nearest(entries.map(\.vector), top: top)
        searchMilliseconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-6
        vectors = entries.enumerated().map { i, e in
            let n = vectorNorm(e.vector)
            return Vector(label: e.label, group: e.group, vector: e.vector, norm: n, normPercentile: table.normPercentile(n), nearest: neighbours[i])
        }
        vocabularySize = table.vocabularySize
        width = table.width
        cosine = cosineMatrix(entries.map(\.vector))
        let triggers = embeddings.map(\.trigger)
        groups = triggers + words.filter { !triggers.contains($0) }
        groupCosine = cosineMatrix(groups.map { g in meanVector(entries.filter { $0.group == g }.map(\.vector)) })
        self.classes = classes
        let context = prompt ?? (groups.count >= 2 ? "a photo of \(groups[0]) and \(groups[1])" : nil)
        self.context = context
        let contextual = ContextualStates(textEncoder: sd.textEncoder, tokenizer: sd.tokenizer, embeddings: embeddings)
        let subjects = groups
        subjectStates = try context.map { try contextual.states(of: subjects, in: $0) } ?? []
        classStates = context == nil ? [] : try contextual.classStates(classes)
    }

    /// Index of a group by name.
    public func group(_ name: String) -> Int? { groups.firstIndex(of: name) }

    /// Cosine of two groups' mean input vectors.
    public func inputCosine(_ a: Int, _ b: Int) -> Float { groupCosine[a][b] }

    /// Cosine of two groups' final states in the context prompt (nil if either is absent).
    public func contextualCosine(_ a: Int, _ b: Int) -> Float? {
        guard a < subjectStates.count, b < subjectStates.count, let x = subjectStates[a], let y = subjectStates[b] else { return nil }
        return cosineMatrix([x, y])[0][1]
    }

    /// Cosine of a group's contextual state with class word `c`'s.
    public func classCosine(_ a: Int, _ c: Int) -> Float? {
        guard a < subjectStates.count, c < classStates.count, let x = subjectStates[a], let y = classStates[c] else { return nil }
        return cosineMatrix([x, y])[0][1]
    }
}

/// The one-paragraph answer to "why did A and B become one?": attention overlap over time,
/// input cosine, contextual cosine.
public struct MergeVerdict {
    public let a: String, b: String
    /// Per trace (seed): the timeline of the two words' maps.
    public let timelines: [MergeTimeline]
    public let inputCosine: Float?
    public let contextualCosine: Float?
    public let context: String?

    public init(a: String, b: String, timelines: [MergeTimeline], inputCosine: Float?, contextualCosine: Float?, context: String?) {
        (self.a, self.b, self.timelines, self.inputCosine, self.contextualCosine, self.context) = (a, b, timelines, inputCosine, contextualCosine, context)
    }

    public var mergedCount: Int { timelines.filter { $0.mergedFrom != nil }.count }

    /// Where the two compete for one region in some seed: the command that re-runs these traces
    /// with the merge remedy (bounded regional attention) and its ablation, for a before/after.
    public func remedyCommand(traces: [String]) -> String? {
        guard mergedCount > 0 else { return nil }
        func quoted(_ s: String) -> String {
            s.allSatisfy { $0.isLetter || $0.isNumber || "/._-+=,".contains($0) } ? s : "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }
        return (["pareidolia", "remedy"] + traces.map(quoted) + ["--pair", quoted("\(a),\(b)"), "--ablate"]).joined(separator: " ")
    }

    /// Trace folders as one would type them into that command: the seed folders of one sweep as
    /// the sweep's folder (where its run index lists exactly them), and a path under the working
    /// directory relative to it (a report page shows the command, not this machine's layout).
    public static func commandLineFolders(_ folders: [String], workingDirectory: String = FileManager.default.currentDirectoryPath) -> [String] {
        let absolute = folders.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
        var named = absolute
        let parents = Set(absolute.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path })
        if absolute.count > 1, parents.count == 1, let sweep = parents.first,
           let index = try? RunIndex.read(folder: sweep),
           Set(index.traceFolders(in: sweep).map { URL(fileURLWithPath: $0).standardizedFileURL.path }) == Set(absolute) {
            named = [sweep]
        }
        return named.map { DisplayPath.of($0, workingDirectory: workingDirectory) }
    }

    /// E.g. "alex and cora compete for one region from evaluation 4 on in 3 of 4 seeds; their
    /// vectors' cosine is 0.93; in context the encoder puts them at 0.98."
    public var sentence: String {
        var parts: [String] = []
        let n = timelines.count
        if n == 1, let t = timelines.first {
            if let k = t.mergedFrom {
                parts.append("\(a) and \(b) compete for one region from evaluation \(k + 1) on")
            } else {
                let last = t.overlaps.last
                parts.append("\(a) and \(b) end on separate regions (IoU \(String(format: "%.2f", last?.iou ?? 0)), correlation \(String(format: "%.2f", last?.pearson ?? 0)))")
            }
        } else {
            let starts = timelines.compactMap(\.mergedFrom).map { $0 + 1 }
            let from = starts.isEmpty ? "" : starts.min() == starts.max() ? " (from evaluation \(starts[0]) on)" : " (from evaluation \(starts.min()!)–\(starts.max()!) on)"
            parts.append("\(a) and \(b) compete for one region in \(mergedCount) of \(n) seeds" + from)
        }
        // "+0.00", never "-0.00".
        func f(_ c: Float) -> String { let s = String(format: "%.2f", c); return s == "-0.00" ? "0.00" : s }
        if let c = inputCosine { parts.append("their vectors' cosine is \(f(c))") }
        if let c = contextualCosine { parts.append("in context (\"\(context ?? "")\") the encoder puts them at \(f(c))") }
        return parts.joined(separator: "; ") + "."
    }
}
