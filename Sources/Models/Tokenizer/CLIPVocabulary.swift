import CAssets
import Foundation

/// Token ↔ id tables and BPE merge ranks of the CLIP tokenizer.
///
/// Sources, all giving the same 49 408 ids for SD 1.x: OpenAI's `bpe_simple_vocab_16e6.txt.gz`
/// (embedded in the binary), a diffusers `tokenizer/` folder (`vocab.json` + `merges.txt`), or
/// an HF `tokenizer.json`.
public struct CLIPVocabulary: Sendable {
    public let tokenToID: [String: Int32]
    public let idToToken: [String]
    /// Rank of each merge "left right" (lower merges first).
    let mergeRanks: [BytePair: Int]

    public static let startOfText: Int32 = 49406
    public static let endOfText: Int32 = 49407

    struct BytePair: Hashable, Sendable {
        let left: String
        let right: String
    }

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    /// SD 1.x uses the first 48 894 merges (49 152 − 256 − 2) of the 262 145 in the file.
    static let mergeCount = 49152 - 256 - 2

    /// The vocabulary embedded in the binary.
    public static let bundled: CLIPVocabulary = {
        var size = 0
        let base = pd_asset_clip_vocab_gz(&size)!
        do {
            let data = try Gzip.decompress(UnsafeRawBufferPointer(start: base, count: size), what: "embedded CLIP vocabulary")
            return try CLIPVocabulary(openAIMerges: String(decoding: data, as: UTF8.self), source: "embedded CLIP vocabulary")
        } catch {
            fatalError("\(error)")  // the asset is part of the binary, not user input
        }
    }()

    /// Builds the vocabulary as OpenAI's `SimpleTokenizer` does: 256 byte symbols, the same with
    /// `</w>`, one token per merge, then the two special tokens.
    public init(openAIMerges text: String, source: String) throws {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard lines.count > Self.mergeCount else {
            throw LoadError(description: "\(source): expected at least \(Self.mergeCount) merges, found \(lines.count - 1)")
        }
        let merges = try lines[1...Self.mergeCount].map { try Self.parseMerge($0, source: source) }
        var tokens = ByteEncoder.symbolsInOrder
        tokens += ByteEncoder.symbolsInOrder.map { $0 + "</w>" }
        tokens += merges.map { $0.left + $0.right }
        tokens += ["<|startoftext|>", "<|endoftext|>"]
        try self.init(tokens: tokens, merges: merges, source: source)
    }

    /// From a diffusers/HF `vocab.json` and `merges.txt`.
    public init(vocabJSON: Data, mergesText: String, source: String) throws {
        guard let map = try? JSONSerialization.jsonObject(with: vocabJSON) as? [String: Int] else {
            throw LoadError(description: "\(source)/vocab.json: expected a JSON object of token → id")
        }
        let lines = mergesText.split(separator: "\n", omittingEmptySubsequences: true)
        let body = lines.first?.hasPrefix("#version") == true ? lines.dropFirst() : lines[...]
        let merges = try body.prefix(Self.mergeCount).map { try Self.parseMerge($0, source: source + "/merges.txt") }
        try self.init(map: map, merges: merges, source: source)
    }

    /// From an HF fast-tokenizer `tokenizer.json` (`model.vocab`, `model.merges`).
    public init(tokenizerJSON: Data, source: String) throws {
        guard let root = try? JSONSerialization.jsonObject(with: tokenizerJSON) as? [String: Any],
              let model = root["model"] as? [String: Any],
              let vocab = model["vocab"] as? [String: Int],
              let rawMerges = model["merges"] as? [Any]
        else { throw LoadError(description: "\(source): expected a BPE tokenizer.json with model.vocab and model.merges") }
        let merges: [BytePair] = try rawMerges.prefix(Self.mergeCount).map { item in
            if let s = item as? String { return try Self.parseMerge(Substring(s), source: source) }
            if let pair = item as? [String], pair.count == 2 { return BytePair(left: pair[0], right: pair[1]) }
            throw LoadError(description: "\(source): unreadable merge entry")
        }
        try self.init(map: vocab, merges: merges, source: source)
    }

    private init(map: [String: Int], merges: [BytePair], source: String) throws {
        var tokens = [String](repeating: "", count: map.count)
        for (token, id) in map {
            guard id >= 0, id < tokens.count else {
                throw LoadError(description: "\(source): token id \(id) outside 0..<\(map.count)")
            }
            tokens[id] = token
        }
        try self.init(tokens: tokens, merges: merges, source: source)
    }

    private init(tokens: [String], merges: [BytePair], source: String) throws {
        guard tokens.count == 49408, tokens[Int(Self.startOfText)] == "<|startoftext|>",
              tokens[Int(Self.endOfText)] == "<|endoftext|>"
        else {
            throw LoadError(description: "\(source): expected the 49 408-token CLIP vocabulary with <|startoftext|> = 49406, found \(tokens.count) tokens")
        }
        idToToken = tokens
        var ids = [String: Int32](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() { ids[t] = Int32(i) }
        tokenToID = ids
        var ranks = [BytePair: Int](minimumCapacity: merges.count)
        for (i, m) in merges.enumerated() where ranks[m] == nil { ranks[m] = i }
        mergeRanks = ranks
    }

    private static func parseMerge(_ line: Substring, source: String) throws -> BytePair {
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 2 else { throw LoadError(description: "\(source): malformed merge line '\(line)'") }
        return BytePair(left: String(parts[0]), right: String(parts[1]))
    }
}

/// GPT-2/CLIP byte ↔ printable-symbol map: printable Latin-1 bytes map to themselves, the other
/// 68 bytes to U+0100 onwards, so every byte sequence becomes a string without spaces or controls.
enum ByteEncoder {
    static let symbols: [String] = {
        var table = [String](repeating: "", count: 256)
        var next = 256
        for b in 0..<256 {
            if isPrintable(b) {
                table[b] = String(UnicodeScalar(UInt8(b)))
            } else {
                table[b] = String(UnicodeScalar(UInt32(next))!)
                next += 1
            }
        }
        return table
    }()

    /// Vocabulary order: the printable bytes ascending, then the remapped ones.
    static let symbolsInOrder: [String] =
        (0..<256).filter(isPrintable).map { symbols[$0] } + (0..<256).filter { !isPrintable($0) }.map { symbols[$0] }

    private static func isPrintable(_ b: Int) -> Bool {
        (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
    }
}
