import Testing
@testable import Reports

@Suite("CLIP similarity phrases")
struct ClipSimilarityTests {
    @Test func phrasesAreTheCommaSeparatedPartsWithoutEmphasis() {
        #expect(ClipSimilarity.phrases(of: "photo of a witch and a robot dancing, contact improvisation, dance studio mirror")
                == ["photo of a witch and a robot dancing", "contact improvisation", "dance studio mirror"])
        #expect(ClipSimilarity.phrases(of: "(a red circle:1.3), [blue square], ((star))") == ["a red circle", "blue square", "star"])
        #expect(ClipSimilarity.phrases(of: " , ,") == [])
        #expect(ClipSimilarity.listedPhrases(" a mirror ; ;the witch") == ["a mirror", "the witch"])
        #expect(ClipSimilarity.listedPhrases(nil) == [])
    }
}
