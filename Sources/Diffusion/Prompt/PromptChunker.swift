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
///
/// Triggers are matched as a unit of text wherever they stand as a word, whatever punctuation
/// touches them ("<winnie>,", "corajr's"), and the text around a trigger is tokenized on its own —
/// what diffusers does with added tokens. A1111 matches the trigger's token sequence instead,
/// which misses a trigger whose last character BPE merges with the next ("<winnie>," tokenizes
/// "winnie>," differently from "winnie>"); wherever A1111 does match, both give the same tokens.
public struct PromptChunker {
    public static let chunkLength = 75
    public static let commaBacktrack = 20
    let tokenizer: CLIPTokenizer
    let commaID: Int32
    /// Embeddings with their lowercased trigger, longest trigger first (the longest match wins).
    let triggers: [(text: [Character], embedding: PromptEmbedding)]

    public init(tokenizer: CLIPTokenizer, embeddings: [PromptEmbedding] = []) {
        self.tokenizer = tokenizer
        commaID = tokenizer.vocabulary.tokenToID[",</w>"] ?? 267
        triggers = embeddings.filter { !$0.trigger.isEmpty && !$0.ids.isEmpty }
            .map { (Array($0.trigger.lowercased()), $0) }
            .sorted { $0.text.count > $1.text.count }
    }

    /// A piece of prompt text as the chunker consumes it: a CLIP token with its word number in
    /// the piece, or an embedding trigger.
    enum Item {
        case token(CLIPToken, word: Int)
        case embedding(PromptEmbedding)
    }

    /// `text` as CLIP tokens and whole-word embedding triggers (case-insensitive: CLIP lowercases).
    func items(_ text: String) -> [Item] {
        guard !triggers.isEmpty else { return tokenizer.tokenize(text).map { .token($0, word: $0.wordIndex) } }
        let chars = Array(text.lowercased())
        func isWord(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
        var out: [Item] = []
        var plainStart = 0, i = 0, words = 0
        func flushPlain(upTo end: Int) {
            guard end > plainStart else { return }
            let tokens = tokenizer.tokenize(String(chars[plainStart..<end]))
            out += tokens.map { .token($0, word: words + $0.wordIndex) }
            words += (tokens.last?.wordIndex).map { $0 + 1 } ?? 0
        }
        while i < chars.count {
            let match = triggers.first { t in
                let end = i + t.text.count
                guard end <= chars.count, chars[i..<end].elementsEqual(t.text) else { return false }
                // A word-character edge of the trigger must not run on into another word.
                let startOK = i == 0 || !isWord(t.text[0]) || !isWord(chars[i - 1])
                let endOK = end == chars.count || !isWord(t.text[t.text.count - 1]) || !isWord(chars[end])
                return startOK && endOK
            }
            if let match {
                flushPlain(upTo: i)
                out.append(.embedding(match.embedding))
                i += match.text.count
                plainStart = i
            } else {
                i += 1
            }
        }
        flushPlain(upTo: chars.count)
        return out
    }

    /// Triggers of `embeddings` that neither `prompt` nor `negative` uses (for a warning: an
    /// embedding given but never applied changes nothing).
    public static func unusedTriggers(_ embeddings: [PromptEmbedding], prompt: String, negative: String,
                                      tokenizer: CLIPTokenizer) -> [String] {
        let chunker = PromptChunker(tokenizer: tokenizer, embeddings: embeddings)
        let used = Set([prompt, negative].flatMap { chunker.chunk($0).chunks.flatMap { $0.fixes.map(\.embedding) } })
        return embeddings.map(\.trigger).filter { !used.contains($0) }
    }

    public struct Result {
        public let pieces: [PromptParser.Piece]
        public let chunks: [PromptChunk]
        /// Content tokens (no BOS/EOS/padding), A1111's count.
        public let tokenCount: Int
        /// Each piece's CLIP tokens in order (embedding triggers left out) with their word number
        /// in the piece: what `rows` labels the chunks' positions with.
        let pieceTokens: [[(token: CLIPToken, word: Int)]]
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

        var pieceTokens: [[(token: CLIPToken, word: Int)]] = Array(repeating: [], count: pieces.count)
        for (pieceIndex, piece) in pieces.enumerated() {
            if piece.isBreak { nextChunk(); continue }
            let weight = Float(piece.weight)
            let pieceItems = items(piece.text)
            pieceTokens[pieceIndex] = pieceItems.compactMap { if case .token(let t, let w) = $0 { return (t, w) } else { return nil } }
            for item in pieceItems {
                if case .token(let t, _) = item, t.id == commaID {
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

                switch item {
                case .embedding(let e):
                    if current.ids.count + e.vectors.count > n { nextChunk() }
                    current.fixes.append(.init(position: current.ids.count, embedding: e.trigger, count: e.vectors.count))
                    current.ids += Array(repeating: 0, count: e.vectors.count)
                    current.weights += Array(repeating: weight, count: e.vectors.count)
                    current.pieceIndex += Array(repeating: pieceIndex, count: e.vectors.count)
                case .token(let token, _):
                    current.ids.append(token.id)
                    current.weights.append(weight)
                    current.pieceIndex.append(pieceIndex)
                }
            }
        }
        if !current.ids.isEmpty || chunks.isEmpty { nextChunk(isLast: true) }
        return Result(pieces: pieces, chunks: chunks, tokenCount: tokenCount, pieceTokens: pieceTokens)
    }

    /// A1111's empty chunk (`[BOS] + 76 × EOS`), used to pad the shorter of prompt and negative.
    public static var emptyChunk: PromptChunk {
        PromptChunk(ids: [CLIPVocabulary.startOfText] + Array(repeating: CLIPVocabulary.endOfText, count: chunkLength + 1),
                    weights: Array(repeating: 1, count: chunkLength + 2),
                    pieceIndex: Array(repeating: -1, count: chunkLength + 2), fixes: [])
    }
}
