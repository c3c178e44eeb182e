import Foundation
import Testing
@testable import Models

/// Golden ids from HF `CLIPTokenizer` (slow, with ftfy) written by Tools/reference/make_fixtures.py.
@Suite("CLIP tokenizer parity with HF")
struct TokenizerParityTests {
    struct Case: Decodable {
        let prompt: String
        let ids: [Int32]
        let unpadded: [Int32]
    }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tokenizer_cases.json")
        guard let data = try? Data(contentsOf: url), let cases = try? JSONDecoder().decode([Case].self, from: data) else { return [] }
        return cases
    }()

    @Test("fixture present")
    func fixturePresent() { #expect(Self.cases.count >= 40) }

    @Test("same ids as HF CLIPTokenizer, padded to 77 and unpadded")
    func parity() {
        let tokenizer = CLIPTokenizer()
        var checked = 0
        for c in Self.cases {
            #expect(tokenizer.encode(c.prompt) == c.ids, "prompt: \(c.prompt)")
            let unpadded = [CLIPVocabulary.startOfText] + tokenizer.tokenize(c.prompt).map(\.id) + [CLIPVocabulary.endOfText]
            #expect(unpadded == c.unpadded, "prompt: \(c.prompt)")
            checked += 1
        }
        #expect(checked == Self.cases.count)
    }

    @Test("decode: words, and byte fragments of a character shown in hex")
    func decodeShowsFragmentsInHex() {
        let tokenizer = CLIPTokenizer()
        #expect(tokenizer.decode(518) == ("the", true))  // "the</w>"
        #expect(tokenizer.decode(513) == ("th", false))
        #expect(tokenizer.decode(558) == ("<f0 9f>", false))  // "ðŁ": the first half of an emoji's bytes
        #expect(tokenizer.decode(49406).text == "<|startoftext|>")
    }

    @Test("diffusers tokenizer folder gives the same ids as the bundled vocabulary")
    func folderVocabulary() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tiny-sd/tokenizer")
        let fromFolder = try CLIPTokenizer(folder: folder)
        let bundled = CLIPTokenizer()
        #expect(fromFolder.vocabulary.idToToken == bundled.vocabulary.idToToken)
        for c in Self.cases.prefix(10) { #expect(fromFolder.encode(c.prompt) == bundled.encode(c.prompt)) }
    }
}
