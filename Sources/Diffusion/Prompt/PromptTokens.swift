import Models

/// One position of a prompt's conditioning, as `tokenize` prints it and traces store it.
public struct PromptTokenRow: Sendable {
    /// Row of the conditioning tensor (chunk · 77 + index in the chunk; BOS at 0).
    public let position: Int
    public let chunk: Int
    public let id: Int32
    public let text: String
    public let weight: Float
    /// The word (CLIP pre-token) this token belongs to, numbered across the prompt; nil for
    /// start/end/padding and embedding vectors.
    public let word: String?
    public let wordIndex: Int?
    /// Index of the parsed prompt piece, -1 for start/end/padding.
    public let piece: Int
}

extension PromptChunker.Result {
    /// Every conditioning position with its token, weight and word.
    public func rows(tokenizer: CLIPTokenizer) -> [PromptTokenRow] {
        // The running word number at each piece's start (the chunker kept each piece's tokens).
        var wordBase: [Int: Int] = [:]
        var words = 0
        for (i, piece) in pieces.enumerated() where !piece.isBreak {
            wordBase[i] = words
            words += (pieceTokens[i].last?.word).map { $0 + 1 } ?? 0
        }
        var cursor: [Int: Int] = [:]
        var rows: [PromptTokenRow] = []
        for (c, chunk) in chunks.enumerated() {
            // Rows filled by embedding vectors carry the trigger word, not a vocabulary token.
            var embeddingAt: [Int: String] = [:]
            for fix in chunk.fixes { for r in 0..<fix.count { embeddingAt[fix.position + r] = fix.embedding } }
            for (k, id) in chunk.ids.enumerated() {
                let piece = chunk.pieceIndex[k]
                var token: (token: CLIPToken, word: Int)?
                if piece >= 0, embeddingAt[k] == nil {
                    let n = cursor[piece, default: 0]
                    cursor[piece] = n + 1
                    token = n < pieceTokens[piece].count ? pieceTokens[piece][n] : nil
                }
                let text = embeddingAt[k] ?? token?.token.text ?? tokenizer.decode(id).text
                rows.append(PromptTokenRow(position: c * chunk.ids.count + k, chunk: c, id: id, text: text,
                                           weight: chunk.weights[k], word: token?.token.word,
                                           wordIndex: token.map { $0.word + (wordBase[piece] ?? 0) }, piece: piece))
            }
        }
        return rows
    }
}
