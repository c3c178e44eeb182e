import ArgumentParser
import Diffusion
import Foundation
import Models

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how a prompt becomes tokens: ids (as HF CLIPTokenizer), A1111 weights and 75-token chunks.")

    @Option(name: .long, help: "A diffusers folder (its tokenizer/ is used) or tokenizer folder; default: the bundled CLIP vocabulary.")
    var model: String?

    @Flag(name: .long, help: "Print JSON: {\"tokens\": [{position, id, text, weight, word, chunk, ...}], \"chunks\": [...]}.")
    var json = false

    @Option(name: .long, help: "A textual-inversion file ([word=]PATH; repeatable): shows the positions its vectors fill.")
    var embedding: [String] = []

    @Argument(help: "The prompt (A1111 syntax: (word), [word], (word:1.3), BREAK).")
    var prompt: String

    func run() throws {
        let tokenizer = try loadTokenizer()
        let embeddings: [PromptEmbedding]
        do { embeddings = try embedding.map { try EmbeddingLoader.load($0, tokenizer: tokenizer, width: nil) } } catch { throw CLIError("\(error)") }
        let result = PromptChunker(tokenizer: tokenizer, embeddings: embeddings).chunk(prompt)
        // Where each embedding landed: (trigger, chunk, first conditioning row, rows).
        let placed = result.chunks.enumerated().flatMap { c, chunk in chunk.fixes.map { (trigger: $0.embedding, chunk: c, row: c * 77 + $0.position, count: $0.count) } }
        for e in embeddings where !placed.contains(where: { $0.trigger == e.trigger }) {
            FileHandle.standardError.write(Data("warning: --embedding: '\(e.trigger)' appears nowhere in the prompt\n".utf8))
        }
        let rows = result.rows(tokenizer: tokenizer).filter { $0.piece >= 0 }  // content tokens only
        if json {
            let tokens: [[String: Any]] = rows.map {
                ["position": $0.position, "id": Int($0.id), "text": $0.text, "weight": Double($0.weight),
                 "word": $0.word ?? "", "word_index": $0.wordIndex ?? -1, "chunk": $0.chunk]
            }
            let chunks: [[String: Any]] = result.chunks.enumerated().map { c, chunk in
                ["index": c, "ids": chunk.ids.map(Int.init), "weights": chunk.weights.map(Double.init)]
            }
            let fills: [[String: Any]] = placed.map { ["trigger": $0.trigger, "chunk": $0.chunk, "row": $0.row, "vectors": $0.count] }
            let object: [String: Any] = ["prompt": prompt, "tokens": tokens, "chunks": chunks, "token_count": result.tokenCount,
                                         "embeddings": fills]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("  pos     id  text              weight  word")
        var lastChunk = -1
        for r in rows {
            if r.chunk != lastChunk {
                print("-- chunk \(r.chunk): [BOS] + 75 + [EOS], conditioning rows \(r.chunk * 77)..<\(r.chunk * 77 + 77) --")
                lastChunk = r.chunk
            }
            print(String(format: "%5d  %5d  %@  %6.3f  %@", r.position, r.id,
                         r.text.padding(toLength: 16, withPad: " ", startingAt: 0), r.weight, r.word ?? ""))
        }
        for p in placed {
            print("embedding \(p.trigger): \(p.count) vector\(p.count == 1 ? "" : "s") at conditioning row\(p.count == 1 ? "" : "s") \(p.row)\(p.count == 1 ? "" : "–\(p.row + p.count - 1)") (chunk \(p.chunk))")
        }
        let n = result.chunks.count
        print("\(rows.count) tokens in \(n) chunk\(n == 1 ? "" : "s") (each encoded as 77 with start/end tokens and padding; A1111 shows \(result.tokenCount)/\(n * 75))")
    }

    private func loadTokenizer() throws -> CLIPTokenizer {
        guard let model else { return CLIPTokenizer() }
        let url = URL(fileURLWithPath: model)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw CLIError("--model \(model): no such file or folder")
        }
        guard isDir.boolValue else { return CLIPTokenizer() }  // single-file checkpoints use the bundled vocabulary
        let sub = url.appendingPathComponent("tokenizer")
        let folder = FileManager.default.fileExists(atPath: sub.path) ? sub : url
        do { return try CLIPTokenizer(folder: folder) } catch { throw CLIError("--model \(model): \(error)") }
    }
}
