import Checkpoints
import Foundation
import Models

/// Loads textual-inversion files for a prompt: A1111 `.pt`, kohya/A1111 `.safetensors`,
/// diffusers learned embeddings.
public enum EmbeddingLoader {
    public struct Failure: Error, CustomStringConvertible { public let description: String }

    /// `spec` is `path` or `word=path`. The trigger word is the file name without extension
    /// (A1111's rule), the stored token for diffusers files, or the word given. `width`: the text
    /// encoder's, which the vectors must have (nil: any, for showing a prompt without a model).
    public static func load(_ spec: String, tokenizer: CLIPTokenizer, width: Int?) throws -> PromptEmbedding {
        var word: String?, path = spec
        if let eq = spec.firstIndex(of: "="), !FileManager.default.fileExists(atPath: spec) {
            word = String(spec[..<eq])
            path = String(spec[spec.index(after: eq)...])
        }
        let file = URL(fileURLWithPath: path).lastPathComponent
        let archive: CheckpointArchive
        do { archive = try Checkpoint.open(path) } catch {
            throw Failure(description: "--embedding \(spec): \(error)")
        }
        let ti: TextualInversionEmbedding
        do { ti = try TextualInversionEmbedding(archive) } catch {
            throw Failure(description: "--embedding \(spec): \(error)")
        }
        if let width, ti.width != width {
            throw Failure(description: "\(file): embedding vectors are \(ti.width) wide but this text encoder needs \(width) (an SD 2/SDXL embedding?)")
        }
        let stem = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let trigger = word ?? (ti.layout == .diffusers ? (ti.token ?? stem) : stem)
        let ids = tokenizer.tokenize(trigger).map(\.id)
        guard !ids.isEmpty else { throw Failure(description: "--embedding \(spec): the trigger word '\(trigger)' has no tokens") }
        let vectors = try ti.float32Vectors()  // [n, width]
        let rows = (0..<ti.vectorCount).map { r in Array(UnsafeBufferPointer(start: vectors.pointer + r * ti.width, count: ti.width)) }
        return PromptEmbedding(trigger: trigger, ids: ids, vectors: rows)
    }
}
