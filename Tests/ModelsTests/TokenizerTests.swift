import Foundation
import Testing
@testable import Models

@Suite("CLIP tokenizer")
struct TokenizerTests {
    let tokenizer = CLIPTokenizer()

    @Test("known id sequences (openai/CLIP and HF agree on these)")
    func knownSequences() {
        #expect(tokenizer.encode("a photo of a cat", length: 7) == [49406, 320, 1125, 539, 320, 2368, 49407])
        #expect(Array(tokenizer.encode("A photograph of an astronaut riding a horse").prefix(10))
            == [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407])
        #expect(Array(tokenizer.encode("hello, world!! 123").prefix(9))
            == [49406, 3306, 267, 1002, 748, 272, 273, 274, 49407])
    }

    @Test("padding and truncation to 77")
    func paddingAndTruncation() {
        let ids = tokenizer.encode("a cat")
        #expect(ids.count == 77)
        #expect(ids[3...].allSatisfy { $0 == 49407 })
        let long = tokenizer.encode(String(repeating: "cat ", count: 100))
        #expect(long.count == 77 && long[0] == 49406 && long[76] == 49407 && long[75] == 2368)
    }

    @Test("pre-tokenising pattern")
    func preTokenize() {
        #expect(CLIPTokenizer.preTokenize("it's 8k, f/2.8!!") == ["it", "'s", "8", "k", ",", "f", "/", "2", ".", "8", "!!"])
        #expect(CLIPTokenizer.normalize("  A   Photo\tOF\n\n a cat ") == "a photo of a cat")
    }
}
