import Analysis
import ArgumentParser
import Diffusion
import Foundation
import Models
import Tensors

struct Embeddings: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where embedding vectors sit: norms, nearest vocabulary tokens by cosine, and their cosines with each other.")

    @Option(name: .long, help: "An SD 1.x model (diffusers folder or single file): its text encoder's token-embedding table.")
    var model: String

    @Option(name: .long, help: "A textual-inversion file ([word=]PATH; repeatable).")
    var embedding: [String] = []

    @Option(name: .long, help: "Nearest tokens to list per vector.")
    var top = 8

    @Flag(name: .long, help: "Print JSON instead of tables.")
    var json = false

    @Argument(help: "Words whose token vectors to show beside the embeddings (each sub-token is one vector).")
    var words: [String] = []

    /// One vector to report: its label and where it came from.
    struct Entry {
        let label: String
        let group: String
        let vector: [Float]
    }

    func run() throws {
        try BLAS.load()
        guard top >= 1 else { throw CLIError("--top \(top): expected 1 or more") }
        guard !embedding.isEmpty || !words.isEmpty else { throw CLIError("nothing to show: give --embedding FILE or words") }
        let sd: StableDiffusionModel
        do { sd = try StableDiffusionModel.load(model, vaeEncoder: false, fast: []) } catch { throw CLIError("\(error)") }
        let width = sd.textEncoder.config.hiddenSize
        let loaded: [PromptEmbedding]
        do { loaded = try embedding.map { try EmbeddingLoader.load($0, tokenizer: sd.tokenizer, width: width) } } catch { throw CLIError("\(error)") }
        let table = try VocabularyNeighbours(textEncoder: sd.textEncoder, tokenizer: sd.tokenizer)

        var entries: [Entry] = []
        for e in loaded {
            for (i, v) in e.vectors.enumerated() {
                entries.append(Entry(label: e.vectors.count == 1 ? e.trigger : "\(e.trigger)[\(i)]", group: e.trigger, vector: v))
            }
        }
        for w in words {
            for t in try table.vectors(ofWord: w, textEncoder: sd.textEncoder) {
                entries.append(Entry(label: "\(t.token) (#\(t.id))", group: w, vector: t.vector))
            }
        }
        let neighbours = try table.nearest(entries.map(\.vector), top: top)
        let cosines = cosineMatrix(entries.map(\.vector))
        // Per embedding (and word): the mean of its vectors.
        let groups = loaded.map(\.trigger) + words.filter { !loaded.map(\.trigger).contains($0) }
        let means = groups.map { g in meanVector(entries.filter { $0.group == g }.map(\.vector)) }
        let groupCosines = cosineMatrix(means)

        if json {
            let vectors: [[String: Any]] = entries.enumerated().map { i, e in
                let n = vectorNorm(e.vector)
                return ["label": e.label, "group": e.group, "norm": Double(n), "norm_percentile": table.normPercentile(n) * 100,
                        "nearest": neighbours[i].map { ["id": Int($0.id), "token": $0.text, "cosine": Double($0.cosine)] }]
            }
            let object: [String: Any] = [
                "model": model, "vocabulary": table.vocabularySize, "width": width, "vectors": vectors,
                "cosine": ["labels": entries.map(\.label), "matrix": cosines.map { $0.map(Double.init) }],
                "mean_cosine": ["labels": groups, "matrix": groupCosines.map { $0.map(Double.init) }],
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }

        print("Token-embedding table: \(table.vocabularySize) × \(width). Norm percentile: share of vocabulary rows with a smaller norm.")
        let labelWidth = min(24, max(8, entries.map(\.label.count).max() ?? 8))
        func cell(_ s: String, _ w: Int) -> String { s.count >= w ? String(s.prefix(w)) : s.padding(toLength: w, withPad: " ", startingAt: 0) }
        print("\(cell("vector", labelWidth))    norm  pctl  nearest tokens (cosine)")
        for (i, e) in entries.enumerated() {
            let n = vectorNorm(e.vector)
            let list = neighbours[i].map { "\($0.text.isEmpty ? "·" : $0.text) \(String(format: "%.3f", $0.cosine))" }.joined(separator: ", ")
            print("\(cell(e.label, labelWidth))  \(String(format: "%6.3f  %3.0f%%", n, table.normPercentile(n) * 100))  \(list)")
        }
        // Columns numbered (labels are longer than a cosine), rows "#k label".
        func matrix(_ title: String, _ labels: [String], _ m: [[Float]]) {
            guard labels.count > 1 else { return }
            print("\n\(title)")
            let w = 4 + min(24, max(6, labels.map(\.count).max() ?? 6))
            print(cell("", w) + labels.indices.map { i -> String in let h = "#\(i + 1)"; return String(repeating: " ", count: max(1, 8 - h.count)) + h }.joined())
            for (i, row) in m.enumerated() {
                print(cell("#\(i + 1) \(labels[i])", w) + row.map { String(format: "%8.3f", $0) }.joined())
            }
        }
        matrix("Cosine between vectors:", entries.map(\.label), cosines)
        if groups.count > 1 && groups.count < entries.count { matrix("Cosine between mean vectors:", groups, groupCosines) }
    }
}
