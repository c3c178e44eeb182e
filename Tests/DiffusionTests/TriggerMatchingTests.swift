import Testing
@testable import Diffusion
import Models

/// Textual-inversion triggers are matched as a unit of text, as diffusers matches added tokens,
/// whatever punctuation touches them.
@Suite("Embedding triggers")
struct TriggerMatchingTests {
    let tokenizer = CLIPTokenizer()

    func embedding(_ trigger: String, vectors: Int) -> PromptEmbedding {
        PromptEmbedding(trigger: trigger, ids: tokenizer.tokenize(trigger).map(\.id),
                        vectors: Array(repeating: Array(repeating: 0.5, count: 4), count: vectors))
    }

    /// The fixes of the first chunk as (position, trigger, rows), and its content ids.
    func chunk(_ prompt: String, _ embeddings: [PromptEmbedding]) -> (fixes: [PromptChunk.EmbeddingFix], ids: [Int32], weights: [Float]) {
        let c = PromptChunker(tokenizer: tokenizer, embeddings: embeddings).chunk(prompt).chunks[0]
        return (c.fixes, c.ids, c.weights)
    }

    @Test("next to punctuation: , . ; : ! ? ( ) > and at either end", arguments: [",", ".", ";", ":", "!", "?", "(", ")", ">"])
    func besidePunctuation(_ mark: String) {
        let winnie = embedding("<winnie>", vectors: 1), cora = embedding("corajr", vectors: 2)
        for prompt in ["their white cat, <winnie>\(mark) in a garden", "\(mark)<winnie>\(mark)corajr\(mark)", "corajr\(mark) <winnie>"] {
            let (fixes, ids, _) = chunk(prompt, [winnie, cora])
            let expected = Set(["<winnie>", "corajr"].filter { prompt.contains($0) })
            #expect(Set(fixes.map(\.embedding)) == expected && fixes.count == expected.count, "\(prompt): \(fixes)")
            for f in fixes { #expect(ids[f.position..<(f.position + f.count)].allSatisfy { $0 == 0 }, "\(prompt): placeholders") }
        }
    }

    /// The case the any-trigger issue reported: A1111's token-sequence rule misses it, because
    /// BPE merges ">," into one token.
    @Test func diffusersTriggerBeforeComma() {
        let winnie = embedding("<winnie>", vectors: 1)
        let (fixes, ids, _) = chunk("their white cat, <winnie>, in a garden", [winnie])
        #expect(fixes.count == 1)
        // The text around the trigger is tokenized on its own: "their white cat," then ", in a garden".
        let before = tokenizer.tokenize("their white cat,").map(\.id), after = tokenizer.tokenize(", in a garden").map(\.id)
        let expected = [CLIPVocabulary.startOfText] + before + [0] + after
        #expect(Array(ids.prefix(expected.count)) == expected)
        #expect(fixes.first?.position == 1 + before.count)
    }

    @Test("inside A1111 weighting, with the piece's weight")
    func insideWeighting() {
        let cora = embedding("corajr", vectors: 2)
        let (fixes, ids, weights) = chunk("a photo of (corajr:1.2) and [corajr]", [cora])
        #expect(fixes.map(\.embedding) == ["corajr", "corajr"] && fixes.map(\.count) == [2, 2])
        #expect(weights[fixes[0].position] == 1.2 && weights[fixes[0].position + 1] == 1.2)
        #expect(abs(weights[fixes[1].position] - 1 / 1.1) < 1e-6)
        #expect(ids[fixes[0].position] == 0)
    }

    @Test("only whole words: not inside other words; case-insensitive as CLIP")
    func wholeWords() {
        let cora = embedding("corajr", vectors: 1)
        #expect(chunk("corajrs and xcorajr", [cora]).fixes.isEmpty)
        #expect(chunk("CoraJR's hat", [cora]).fixes.count == 1)
        #expect(chunk("corajr_2", [cora]).fixes.isEmpty)
        // The longest trigger wins where two start at one place.
        let pair = embedding("corajr-alex", vectors: 1)
        #expect(chunk("corajr-alex dancing", [cora, pair]).fixes.map(\.embedding) == ["corajr-alex"])
    }

    /// `tokenize` and the trace label positions from the chunker's own tokens: what follows an
    /// embedding keeps its words.
    @Test func rowsAfterAnEmbedding() {
        let result = PromptChunker(tokenizer: tokenizer, embeddings: [embedding("<winnie>", vectors: 2)])
            .chunk("their white cat, <winnie>, in a garden")
        let rows = result.rows(tokenizer: tokenizer).filter { $0.piece >= 0 }
        #expect(rows.map(\.text) == ["their", "white", "cat", ",", "<winnie>", "<winnie>", ",", "in", "a", "garden"])
        #expect(rows.map(\.wordIndex) == [0, 1, 2, 3, nil, nil, 4, 5, 6, 7])
    }

    @Test("triggers used nowhere are reported")
    func unused() {
        let e = [embedding("corajr", vectors: 1), embedding("<winnie>", vectors: 1), embedding("kokocat", vectors: 1)]
        #expect(PromptChunker.unusedTriggers(e, prompt: "corajr in a garden", negative: "blurry, <winnie>", tokenizer: tokenizer) == ["kokocat"])
    }
}
