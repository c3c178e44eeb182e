import ArgumentParser
import Foundation
import Models

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show how CLIP splits a prompt into tokens (ids as HF CLIPTokenizer gives them).")

    @Option(name: .long, help: "A diffusers folder (its tokenizer/ is used) or tokenizer folder; default: the bundled CLIP vocabulary.")
    var model: String?

    @Flag(name: .long, help: "Print JSON: {\"tokens\": [{position, id, text, weight, word, chunk}], \"chunks\": [...]}.")
    var json = false

    @Argument(help: "The prompt.")
    var prompt: String

    func run() throws {
        let tokenizer = try loadTokenizer()
        let tokens = tokenizer.tokenize(prompt)
        // Chunks of 75 content tokens, each encoded as BOS + 75 + EOS (A1111's long-prompt rule).
        let chunkSize = 75
        if json {
            let rows: [[String: Any]] = tokens.enumerated().map { i, t in
                ["position": i, "id": Int(t.id), "text": t.text, "weight": 1.0, "word": t.word,
                 "word_index": t.wordIndex, "chunk": i / chunkSize]
            }
            let chunks = stride(from: 0, to: max(tokens.count, 1), by: chunkSize).map { start in
                ["start": start, "end": min(start + chunkSize, tokens.count)]
            }
            let object: [String: Any] = ["prompt": prompt, "tokens": rows, "chunks": chunks]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("pos     id  text              weight  word")
        for (i, t) in tokens.enumerated() {
            if i % chunkSize == 0 && tokens.count > chunkSize { print("-- chunk \(i / chunkSize) (tokens \(i)..<\(min(i + chunkSize, tokens.count))) --") }
            let text = t.text + (t.endsWord ? "" : "…")
            print(String(format: "%3d  %5d  %@  %6.2f  %@", i, t.id,
                         text.padding(toLength: 16, withPad: " ", startingAt: 0), 1.0, t.word))
        }
        let chunks = max(1, (tokens.count + chunkSize - 1) / chunkSize)
        print("\(tokens.count) tokens, \(chunks) chunk\(chunks == 1 ? "" : "s") of 75 (each encoded as 77 with start/end tokens)")
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
