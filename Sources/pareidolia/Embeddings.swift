import Analysis
import ArgumentParser
import Diffusion
import Foundation
import Models
import Tensors

struct Embeddings: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where embedding vectors sit: norms, nearest vocabulary tokens by cosine, and their cosines with each other.")

    @Option(name: .long, help: "An SD 1.x model (diffusers folder or single file): its text encoder's token-embedding table. Default: the embedded Shapes-world model.")
    var model: String?

    @Option(name: .long, help: "A textual-inversion file ([word=]PATH; repeatable).")
    var embedding: [String] = []

    @Option(name: .long, help: "Nearest tokens to list per vector.")
    var top = 8

    @Flag(name: .long, help: "Print JSON instead of tables.")
    var json = false

    @Option(name: .long, help: "Prompt for the contextual comparison (default \"a photo of A and B\" with the first two embeddings or words).")
    var prompt: String?

    @Option(name: .long, help: "Class words to compare the subjects' contextual states with.")
    var classes = "person,man,woman,cat,dog"

    @Argument(help: "Words whose token vectors to show beside the embeddings (each sub-token is one vector).")
    var words: [String] = []

    func run() throws {
        try BLAS.load()
        guard top >= 1 else { throw CLIError("--top \(top): expected 1 or more") }
        guard !embedding.isEmpty || !words.isEmpty else { throw CLIError("nothing to show: give --embedding FILE or words") }
        let sd: StableDiffusionModel
        let model = try modelPath(self.model)
        let embedding = try embeddingFiles(self.embedding, model: self.model)
        do { sd = try StableDiffusionModel.load(model, vaeEncoder: false, fast: []) } catch { throw CLIError("\(error)") }
        let width = sd.textEncoder.config.hiddenSize
        let loaded: [PromptEmbedding]
        do { loaded = try embedding.map { try EmbeddingLoader.load($0, tokenizer: sd.tokenizer, width: width) } } catch { throw CLIError("\(error)") }
        let classList = classes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let study = try EmbeddingStudy(model: sd, embeddings: loaded, words: words, top: top, prompt: prompt, classes: classList)
        let entries = study.vectors, groups = study.groups, context = study.context
        let cosines = study.cosine, groupCosines = study.groupCosine
        func cos(_ i: Int, _ j: Int) -> Float? { study.contextualCosine(i, j) }

        if json {
            let vectors: [[String: Any]] = entries.map { e in
                ["label": e.label, "group": e.group, "norm": Double(e.norm), "norm_percentile": e.normPercentile * 100,
                 "nearest": e.nearest.map { ["id": Int($0.id), "token": $0.text, "cosine": Double($0.cosine)] }]
            }
            var object: [String: Any] = [
                "model": model, "vocabulary": study.vocabularySize, "width": width, "vectors": vectors,
                "cosine": ["labels": entries.map(\.label), "matrix": cosines.map { $0.map(Double.init) }],
                "mean_cosine": ["labels": groups, "matrix": groupCosines.map { $0.map(Double.init) }],
            ]
            if let context {
                object["contextual"] = [
                    "prompt": context,
                    "subjects": groups.enumerated().map { i, g -> [String: Any] in
                        ["subject": g, "found": study.subjectStates[i] != nil,
                         "cosine": groups.indices.map { j -> Any in cos(i, j).map { Double($0) as Any } ?? NSNull() },
                         "classes": Dictionary(uniqueKeysWithValues: classList.enumerated().map { c, name in
                             (name, study.classCosine(i, c).map { Double($0) as Any } ?? NSNull()) })]
                    },
                ] as [String: Any]
            }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }

        print("Token-embedding table: \(study.vocabularySize) × \(width); nearest tokens of \(entries.count) vectors in \(String(format: "%.1f", study.searchMilliseconds)) ms. Norm percentile: share of vocabulary rows with a smaller norm.")
        let labelWidth = min(24, max(8, entries.map(\.label.count).max() ?? 8))
        func cell(_ s: String, _ w: Int) -> String { s.count >= w ? String(s.prefix(w)) : s.padding(toLength: w, withPad: " ", startingAt: 0) }
        print("\(cell("vector", labelWidth))    norm  pctl  nearest tokens (cosine)")
        for e in entries {
            let list = e.nearest.map { "\($0.text.isEmpty ? "·" : $0.text) \(String(format: "%.3f", $0.cosine))" }.joined(separator: ", ")
            print("\(cell(e.label, labelWidth))  \(String(format: "%6.3f  %3.0f%%", e.norm, e.normPercentile * 100))  \(list)")
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
        if let context {
            print("\nIn context, \"\(context)\": cosine of the encoder's final states at each subject (mean over its rows)")
            let found = groups.indices.filter { study.subjectStates[$0] != nil }
            for g in groups.indices where study.subjectStates[g] == nil { print("  \(groups[g]): not in the prompt") }
            if found.count > 1 {
                matrix("Subjects:", found.map { groups[$0] }, found.map { i in found.map { j in cos(i, j) ?? 0 } })
            }
            for i in found {
                let list = classList.indices.map { c in "\(classList[c]) \(study.classCosine(i, c).map { String(format: "%.3f", $0) } ?? "–")" }
                print("  \(groups[i]) vs class words (each in \"a photo of a WORD\"): " + list.joined(separator: ", "))
            }
        }
    }
}
