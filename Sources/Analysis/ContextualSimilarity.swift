import Diffusion
import Foundation
import Models
import Tensors

/// What the text encoder makes of subjects in context: the final hidden states (the UNet's
/// conditioning rows) at a subject's positions in a prompt, averaged over its rows. Input vectors
/// can sit far apart while the encoder maps both subjects onto one; this measures it.
public struct ContextualStates {
    public let encoder: PromptEncoder
    public let tokenizer: CLIPTokenizer

    public init(textEncoder: CLIPTextModel, tokenizer: CLIPTokenizer, embeddings: [PromptEmbedding]) {
        encoder = PromptEncoder(model: textEncoder, tokenizer: tokenizer, embeddings: embeddings)
        self.tokenizer = tokenizer
    }

    /// The mean conditioning row of each subject in `prompt`: an embedding trigger's rows, or a
    /// word's sub-tokens (nil where the subject does not occur).
    public func states(of subjects: [String], in prompt: String) throws -> [[Float]?] {
        let (z, result) = try encoder.encode(prompt)  // [1, 77·n, D]
        let d = z.shape[2]
        let rows = result.rows(tokenizer: tokenizer)
        let wordsOfSubject = subjects.map { s in Set(tokenizer.tokenize(s).map(\.word)) }
        return subjects.enumerated().map { i, subject in
            let positions = rows.filter { r in
                r.piece >= 0 && (r.text == subject && r.word == nil || r.word.map { wordsOfSubject[i].contains($0) } ?? false)
            }.map(\.position)
            guard !positions.isEmpty else { return nil }
            var mean = [Double](repeating: 0, count: d)
            for p in positions { for c in 0..<d { mean[c] += Double(z.pointer[p * d + c]) } }
            return mean.map { Float($0 / Double(positions.count)) }
        }
    }

    /// Each class word's state in "a photo of a WORD" (the template SD users write).
    public func classStates(_ classes: [String]) throws -> [[Float]?] {
        try classes.map { try states(of: [$0], in: "a photo of a \($0)")[0] }
    }
}
