import Testing
@testable import Diffusion
import Models

@Suite("A1111 prompt syntax")
struct PromptParserTests {
    func pairs(_ s: String) -> [(String, Double)] { PromptParser.parse(s).map { ($0.text, $0.weight) } }

    func expectPieces(_ prompt: String, _ expected: [(String, Double)], sourceLocation: SourceLocation = #_sourceLocation) {
        let got = pairs(prompt)
        #expect(got.count == expected.count, "\(prompt): \(got)", sourceLocation: sourceLocation)
        for (g, e) in zip(got, expected) {
            #expect(g.0 == e.0 && abs(g.1 - e.1) < 1e-9, "\(prompt): got \(got)", sourceLocation: sourceLocation)
        }
    }

    @Test("A1111's doctest cases")
    func doctests() {
        // From modules/prompt_parser.py's docstring.
        expectPieces("normal text", [("normal text", 1)])
        expectPieces("an (important) word", [("an ", 1), ("important", 1.1), (" word", 1)])
        expectPieces("(unbalanced", [("unbalanced", 1.1)])
        expectPieces("\\(literal\\]", [("(literal]", 1)])
        expectPieces("(unnecessary)(parens)", [("unnecessaryparens", 1.1)])
        expectPieces("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).", [
            ("a ", 1), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1), (" a ", 1.1), ("hill", 0.55),
            (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1),
        ])
    }

    @Test("weights, escapes, unmatched brackets, BREAK")
    func rules() {
        expectPieces("(pale green eyes:1.1)", [("pale green eyes", 1.1)])
        expectPieces("[faded]", [("faded", 1 / 1.1)])
        expectPieces("((sky))", [("sky", 1.2100000000000002)])
        expectPieces("a ( cat : 1.5 ) b", [("a ", 1), (" cat ", 1.5), (" b", 1)])
        expectPieces("a) b]", [("a) b]", 1)])
        expectPieces("ratio 3:2 photo", [("ratio 3:2 photo", 1)])
        expectPieces("cat BREAK dog", [("cat", 1), ("BREAK", -1), ("dog", 1)])
        expectPieces("BREAKFAST", [("BREAKFAST", 1)])
        expectPieces("", [("", 1)])
    }
}

@Suite("A1111 chunking")
struct PromptChunkerTests {
    let chunker = PromptChunker(tokenizer: CLIPTokenizer())

    @Test("short prompt: one chunk equal to the tokenizer's padded ids")
    func short() {
        let r = chunker.chunk("a photo of a cat")
        #expect(r.chunks.count == 1)
        #expect(r.chunks[0].ids == CLIPTokenizer().encode("a photo of a cat"))
        #expect(r.chunks[0].weights.allSatisfy { $0 == 1 })
        #expect(r.tokenCount == 5)
    }

    @Test("weights follow their tokens; BREAK starts a chunk")
    func weightsAndBreak() {
        let r = chunker.chunk("a (cat:1.5) BREAK dog")
        #expect(r.chunks.count == 2)
        #expect(r.chunks[0].ids.prefix(4) == [49406, 320, 2368, 49407])
        #expect(r.chunks[0].weights.prefix(4) == [1, 1, 1.5, 1])
        #expect(r.chunks[1].ids.prefix(3) == [49406, 1929, 49407])
    }

    @Test("long prompts: 75-token chunks, comma backtrack within 20 tokens")
    func longPrompt() {
        // 70 single-token words, a comma, then 10 more: the chunk fills at 75 and the 4 words after
        // the comma move to the next chunk.
        let prompt = Array(repeating: "cat", count: 70).joined(separator: " ") + ", " + Array(repeating: "dog", count: 10).joined(separator: " ")
        let r = chunker.chunk(prompt)
        #expect(r.chunks.count == 2)
        #expect(r.chunks.allSatisfy { $0.ids.count == 77 && $0.ids.first == 49406 && $0.ids.last == 49407 })
        #expect(r.chunks[0].ids[71] == 267)       // the comma ends chunk 0's content
        #expect(r.chunks[0].ids[72] == 49407)     // then padding
        #expect(Array(r.chunks[1].ids[1...10]) == Array(repeating: 1929, count: 10))
        // Without a nearby comma the split is hard at 75.
        let hard = chunker.chunk(Array(repeating: "cat", count: 80).joined(separator: " "))
        #expect(hard.chunks.count == 2 && hard.chunks[1].ids[1...5].allSatisfy { $0 == 2368 } && hard.chunks[1].ids[6] == 49407)
    }

    @Test("embedding triggers become placeholder rows with fixes")
    func embeddings() {
        let tokenizer = CLIPTokenizer()
        let e = PromptEmbedding(trigger: "corajr", ids: tokenizer.tokenize("corajr").map(\.id), vectors: [[Float](repeating: 0, count: 4), [Float](repeating: 1, count: 4)])
        let r = PromptChunker(tokenizer: tokenizer, embeddings: [e]).chunk("photo of (corajr:1.2)")
        #expect(r.chunks[0].fixes == [PromptChunk.EmbeddingFix(position: 3, embedding: "corajr", count: 2)])
        let rows = r.rows(tokenizer: tokenizer)
        #expect(rows[3].text == "corajr" && rows[4].text == "corajr" && rows[3].wordIndex == nil)
        #expect(rows[1].word == "photo" && rows[1].wordIndex == 0 && rows[2].wordIndex == 1)
        #expect(Array(r.chunks[0].ids[3...4]) == [0, 0])
        #expect(Array(r.chunks[0].weights[3...4]) == [1.2, 1.2])
    }
}
