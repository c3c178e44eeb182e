import Models

/// One 77-token window of a prompt as A1111 encodes it: `[BOS] + 75 + [EOS]`.
public struct PromptChunk: Sendable, Equatable {
    public var ids: [Int32] = []
    public var weights: [Float] = []
    /// For each token: the index of the parsed piece, or -1 for BOS/EOS/padding.
    public var pieceIndex: [Int] = []
    /// Textual-inversion vectors to place at a token position (0…76, BOS at 0).
    public var fixes: [EmbeddingFix] = []

    public struct EmbeddingFix: Sendable, Equatable {
        public let position: Int
        public let embedding: String
        /// How many rows (vectors) it fills from `position`.
        public var count: Int = 1
    }
}

/// A textual-inversion embedding as the prompt sees it: the word that triggers it, its token
/// ids, and the vectors that replace them.
public struct PromptEmbedding: Sendable {
    public let trigger: String
    public let ids: [Int32]
    public let vectors: [[Float]]
}

/// A1111's `tokenize_line`: pieces are tokenized separately, packed into chunks of 75, `BREAK`
/// starts a new chunk, a full chunk moves the words after a comma within the last 20 tokens
/// into the next chunk, and embedding triggers are replaced by their vectors.
public struct PromptChunker {
    public static let chunkLength = 75
    public static let commaBacktrack = 20
    let tokenizer: CLIPTokenizer
    let commaID: Int32
    /// first token id → embeddings starting with it, longest trigger first.
    let embeddingsByFirstID: [Int32: [PromptEmbedding]]

    public init(tokenizer: CLIPTokenizer, embeddings: [PromptEmbedding] = []) {
        self.tokenizer = tokenizer
        commaID = tokenizer.vocabulary.tokenToID[",</w>"] ?? 267
        var map: [Int32: [PromptEmbedding]] = [:]
        for e in embeddings where !e.ids.isEmpty { map[e.ids[0], default: []].append(e) }
        embeddingsByFirstID = map.mapValues { $0.sorted { $0.ids.count > $1.ids.count } }
    }

    public struct Result {
        public let pieces: [PromptParser.Piece]
        public let chunks: [PromptChunk]
        /// Content tokens (no BOS/EOS/padding), A1111's count.
        public let tokenCount: Int
    }

    public func chunk(_ prompt: String) -> Result {
        let pieces = PromptParser.parse(prompt)
        var chunks: [PromptChunk] = []
        var current = PromptChunk()
        var tokenCount = 0
        var lastComma = -1
        let n = Self.chunkLength

        func nextChunk(isLast: Bool = false) {
            tokenCount += isLast ? current.ids.count : n
            let pad = n - current.ids.count
            if pad > 0 {
                current.ids += Array(repeating: CLIPVocabulary.endOfText, count: pad)
                current.weights += Array(repeating: 1, count: pad)
                current.pieceIndex += Array(repeating: -1, count: pad)
            }
            current.ids = [CLIPVocabulary.startOfText] + current.ids + [CLIPVocabulary.endOfText]
            current.weights = [1] + current.weights + [1]
            current.pieceIndex = [-1] + current.pieceIndex + [-1]
            current.fixes = current.fixes.map { .init(position: $0.position + 1, embedding: $0.embedding, count: $0.count) }
            lastComma = -1
            chunks.append(current)
            current = PromptChunk()
        }

        for (pieceIndex, piece) in pieces.enumerated() {
            if piece.isBreak { nextChunk(); continue }
            let tokens = tokenizer.tokenize(piece.text).map(\.id)
            let weight = Float(piece.weight)
            var position = 0
            while position < tokens.count {
                let token = tokens[position]
                if token == commaID {
                    lastComma = current.ids.count
                } else if current.ids.count == n, lastComma != -1, current.ids.count - lastComma <= Self.commaBacktrack {
                    // Move what follows the last comma into the next chunk.
                    let cut = lastComma + 1
                    let moved = (Array(current.ids[cut...]), Array(current.weights[cut...]), Array(current.pieceIndex[cut...]))
                    current.ids.removeSubrange(cut...)
                    current.weights.removeSubrange(cut...)
                    current.pieceIndex.removeSubrange(cut...)
                    nextChunk()
                    (current.ids, current.weights, current.pieceIndex) = moved
                }
                if current.ids.count == n { nextChunk() }

                if let e = embedding(at: position, in: tokens) {
                    if current.ids.count + e.vectors.count > n { nextChunk() }
                    current.fixes.append(.init(position: current.ids.count, embedding: e.trigger, count: e.vectors.count))
                    current.ids += Array(repeating: 0, count: e.vectors.count)
                    current.weights += Array(repeating: weight, count: e.vectors.count)
                    current.pieceIndex += Array(repeating: pieceIndex, count: e.vectors.count)
                    position += e.ids.count
                } else {
                    current.ids.append(token)
                    current.weights.append(weight)
                    current.pieceIndex.append(pieceIndex)
                    position += 1
                }
            }
        }
        if !current.ids.isEmpty || chunks.isEmpty { nextChunk(isLast: true) }
        return Result(pieces: pieces, chunks: chunks, tokenCount: tokenCount)
    }

    private func embedding(at position: Int, in tokens: [Int32]) -> PromptEmbedding? {
        guard let candidates = embeddingsByFirstID[tokens[position]] else { return nil }
        return candidates.first { e in
            position + e.ids.count <= tokens.count && Array(tokens[position..<(position + e.ids.count)]) == e.ids
        }
    }

    /// A1111's empty chunk (`[BOS] + 76 × EOS`), used to pad the shorter of prompt and negative.
    public static var emptyChunk: PromptChunk {
        PromptChunk(ids: [CLIPVocabulary.startOfText] + Array(repeating: CLIPVocabulary.endOfText, count: chunkLength + 1),
                    weights: Array(repeating: 1, count: chunkLength + 2),
                    pieceIndex: Array(repeating: -1, count: chunkLength + 2), fixes: [])
    }
}
