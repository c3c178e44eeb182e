import Foundation

/// One BPE token of a prompt.
public struct CLIPToken: Sendable, Equatable {
    public let id: Int32
    /// The token's text, readable: bytes decoded, `</w>` dropped.
    public let text: String
    /// True when the token ends a word (its vocabulary entry ends in `</w>`).
    public let endsWord: Bool
    /// Index of the pre-tokenised word this token came from, and that word.
    public let wordIndex: Int
    public let word: String
}

/// The CLIP tokenizer of SD 1.x, giving the same ids as HF `CLIPTokenizer`:
/// clean-up, lower-casing, CLIP's pre-tokenising pattern, byte-level BPE with `</w>`.
///
/// Known difference: HF runs `ftfy.fix_text` first; we port the fixes that matter for typed
/// prompts (`TextCleanup`) but not its mojibake repair.
public final class CLIPTokenizer: @unchecked Sendable {
    public let vocabulary: CLIPVocabulary
    public static let contextLength = 77
    private var cache: [String: [Int32]] = [:]
    private let lock = NSLock()

    public init(vocabulary: CLIPVocabulary = .bundled) {
        self.vocabulary = vocabulary
    }

    /// Loads `vocab.json` + `merges.txt` (or `tokenizer.json`) from a diffusers `tokenizer/` folder.
    public convenience init(folder: URL) throws {
        let vocab = folder.appendingPathComponent("vocab.json")
        let merges = folder.appendingPathComponent("merges.txt")
        let fast = folder.appendingPathComponent("tokenizer.json")
        let fm = FileManager.default
        if fm.fileExists(atPath: vocab.path), fm.fileExists(atPath: merges.path) {
            let mergesText = String(decoding: try Data(contentsOf: merges), as: UTF8.self)
            try self.init(vocabulary: CLIPVocabulary(vocabJSON: Data(contentsOf: vocab), mergesText: mergesText, source: folder.path))
        } else if fm.fileExists(atPath: fast.path) {
            try self.init(vocabulary: CLIPVocabulary(tokenizerJSON: Data(contentsOf: fast), source: fast.path))
        } else {
            throw CLIPVocabulary.LoadError(description: "\(folder.path): expected vocab.json and merges.txt, or tokenizer.json")
        }
    }

    /// The prompt's tokens, without start/end tokens or padding.
    public func tokenize(_ text: String) -> [CLIPToken] {
        var out: [CLIPToken] = []
        for (wordIndex, word) in Self.preTokenize(Self.normalize(text)).enumerated() {
            for id in bpeIDs(word) {
                let (piece, endsWord) = decode(id)
                out.append(CLIPToken(id: id, text: piece, endsWord: endsWord, wordIndex: wordIndex, word: word))
            }
        }
        return out
    }

    /// `[BOS] + ids + [EOS]`, truncated to `length` (keeping the final EOS) and padded with EOS,
    /// as SD 1.x calls HF's tokenizer (`padding="max_length"`, `truncation=True`).
    public func encode(_ text: String, length: Int = CLIPTokenizer.contextLength) -> [Int32] {
        let content = tokenize(text).map(\.id).prefix(max(0, length - 2))
        var ids = [CLIPVocabulary.startOfText] + content + [CLIPVocabulary.endOfText]
        ids += Array(repeating: CLIPVocabulary.endOfText, count: max(0, length - ids.count))
        return ids
    }

    /// Readable text of a token id and whether it ends a word. A token that is only part of a
    /// character (byte-level BPE splits emoji and other multi-byte characters) is shown as its
    /// bytes in hex, `<f0 9f>`, rather than as replacement characters.
    public func decode(_ id: Int32) -> (text: String, endsWord: Bool) {
        guard id >= 0, Int(id) < vocabulary.idToToken.count else { return ("", false) }
        var token = vocabulary.idToToken[Int(id)]
        if id >= CLIPVocabulary.startOfText { return (token, true) }
        let endsWord = token.hasSuffix("</w>")
        if endsWord { token.removeLast(4) }
        var bytes: [UInt8] = []
        for ch in token.unicodeScalars { if let b = ByteEncoder.byteForScalar[ch] { bytes.append(b) } }
        if let text = String(validating: bytes, as: UTF8.self) { return (text, endsWord) }
        return ("<" + bytes.map { String(format: "%02x", $0) }.joined(separator: " ") + ">", endsWord)
    }

    // MARK: - Text clean-up and pre-tokenising

    /// ftfy-style clean-up, whitespace runs collapsed to one space, trimmed, lower-cased.
    static func normalize(_ text: String) -> String {
        let nfc = TextCleanup.fixText(text)
        var out = ""
        var pendingSpace = false
        for scalar in nfc.unicodeScalars {
            if isSpace(scalar) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.unicodeScalars.append(scalar)
            }
        }
        return out.lowercased()
    }

    /// CLIP's pattern: `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`,
    /// tried in that order at each position; unmatched characters (whitespace) are skipped.
    static func preTokenize(_ text: String) -> [String] {
        let s = Array(text.unicodeScalars)
        var words: [String] = []
        var i = 0
        func take(_ n: Int) { words.append(String(String.UnicodeScalarView(s[i..<(i + n)]))); i += n }
        func hasPrefix(_ p: String) -> Bool {
            let ps = Array(p.unicodeScalars)
            return i + ps.count <= s.count && Array(s[i..<(i + ps.count)]) == ps
        }
        outer: while i < s.count {
            for special in ["<|startoftext|>", "<|endoftext|>"] where hasPrefix(special) {
                take(special.unicodeScalars.count); continue outer
            }
            if s[i] == "'" {
                for suffix in ["s", "t", "re", "ve", "m", "ll", "d"] where hasPrefix("'" + suffix) {
                    take(1 + suffix.unicodeScalars.count); continue outer
                }
            }
            let c = s[i]
            if isLetter(c) {
                var j = i + 1
                while j < s.count, isLetter(s[j]) { j += 1 }
                take(j - i)
            } else if isNumber(c) {
                take(1)
            } else if !isSpace(c) {
                var j = i + 1
                while j < s.count, !isSpace(s[j]), !isLetter(s[j]), !isNumber(s[j]) { j += 1 }
                take(j - i)
            } else {
                i += 1
            }
        }
        return words
    }

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// Python's `str.isspace` / `\s`: Unicode White_Space plus the ASCII separators 0x1C–0x1F.
    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c.properties.isWhitespace || (0x1C...0x1F).contains(c.value)
    }

    // MARK: - BPE

    private func bpeIDs(_ word: String) -> [Int32] {
        lock.lock()
        if let hit = cache[word] { lock.unlock(); return hit }
        lock.unlock()
        let ids: [Int32]
        if let special = vocabulary.tokenToID[word], word.hasPrefix("<|") {
            ids = [special]
        } else {
            let encoded = Array(word.utf8).map { ByteEncoder.symbols[Int($0)] }
            ids = bpe(encoded).map { vocabulary.tokenToID[$0] ?? CLIPVocabulary.endOfText }
        }
        lock.lock(); cache[word] = ids; lock.unlock()
        return ids
    }

    /// Merges the lowest-ranked adjacent pair everywhere it occurs, left to right, until no pair
    /// has a rank. The last symbol carries `</w>`.
    private func bpe(_ symbols: [String]) -> [String] {
        guard var word = Optional(symbols), !word.isEmpty else { return [] }
        word[word.count - 1] += "</w>"
        while word.count > 1 {
            var best: (rank: Int, pair: CLIPVocabulary.BytePair)?
            for k in 0..<(word.count - 1) {
                let pair = CLIPVocabulary.BytePair(left: word[k], right: word[k + 1])
                if let r = vocabulary.mergeRanks[pair], r < (best?.rank ?? .max) { best = (r, pair) }
            }
            guard let (_, pair) = best else { break }
            var merged: [String] = []
            merged.reserveCapacity(word.count)
            var k = 0
            while k < word.count {
                if k < word.count - 1, word[k] == pair.left, word[k + 1] == pair.right {
                    merged.append(pair.left + pair.right); k += 2
                } else {
                    merged.append(word[k]); k += 1
                }
            }
            word = merged
        }
        return word
    }
}

extension ByteEncoder {
    static let byteForScalar: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for b in 0..<256 { map[symbols[b].unicodeScalars.first!] = UInt8(b) }
        return map
    }()
}
