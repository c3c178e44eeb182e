import Testing
@testable import Analysis

/// The word alignment a comparison report draws: shared, added and removed words, repeated words
/// matched as a longest common subsequence does, and git's word-diff text.
@Suite("Prompt diff")
struct PromptDiffTests {
    static func words(_ s: String) -> [String] { s.split(separator: " ").map(String.init) }

    @Test func addedAtTheEnd() {
        let d = PromptDiff(Self.words("photo of a witch and a robot dancing"), Self.words("photo of a witch and a robot dancing , the robot mirrors her gesture"))
        #expect(d.shared.map(\.a) == Array(0..<8) && d.shared.map(\.b) == Array(0..<8))
        #expect(d.removed.isEmpty && d.added == Array(8..<14))
        #expect(d.wordDiff == "photo of a witch and a robot dancing {+, the robot mirrors her gesture+}")
        #expect(!d.isEmpty)
    }

    @Test func replacedInTheMiddle() {
        let d = PromptDiff(Self.words("a witch and her black cat"), Self.words("a witch and her white cat dancing"))
        #expect(d.steps == [.shared(a: 0, b: 0), .shared(a: 1, b: 1), .shared(a: 2, b: 2), .shared(a: 3, b: 3),
                            .removed(a: 4), .added(b: 4), .shared(a: 5, b: 5), .added(b: 6)])
        #expect(d.wordDiff == "a witch and her [-black-] {+white+} cat {+dancing+}")
        #expect(d.counterpart(ofA: 5) == 5 && d.counterpart(ofA: 4) == nil)
    }

    @Test("repeated words pair up as the longest alignment needs")
    func repeatedWords() {
        // "a … and a" is the longest common part; the subjects swap places.
        let swapped = PromptDiff(Self.words("a witch and a robot"), Self.words("a robot and a witch"))
        #expect(swapped.steps == [.shared(a: 0, b: 0), .removed(a: 1), .added(b: 1), .shared(a: 2, b: 2), .shared(a: 3, b: 3),
                                  .removed(a: 4), .added(b: 4)])
        #expect(swapped.wordDiff == "a [-witch-] {+robot+} and a [-robot-] {+witch+}")
        // A repeated phrase removed: the first "a cat" stays matched, the rest goes.
        let shorter = PromptDiff(Self.words("a cat and a cat"), Self.words("a cat"))
        #expect(shorter.shared.map { [$0.a, $0.b] } == [[0, 0], [1, 1]] && shorter.removed == [2, 3, 4])
        // "robot" twice in the first prompt, once in the second: the second "the robot" is kept,
        // because "mirrors" follows it.
        let d = PromptDiff(Self.words("the robot , the robot mirrors"), Self.words("the robot mirrors"))
        #expect(d.shared.count == 3 && d.removed.count == 3 && d.added.isEmpty)
        #expect(d.counterpart(ofA: 5) == 2)
    }

    @Test func caseAndEdges() {
        #expect(PromptDiff(["Witch"], ["witch"]).steps == [.shared(a: 0, b: 0)])
        #expect(PromptDiff([], ["a"]).steps == [.added(b: 0)])
        #expect(PromptDiff(["a"], []).steps == [.removed(a: 0)])
        #expect(PromptDiff([], []).steps.isEmpty && PromptDiff(["a", "b"], ["a", "b"]).isEmpty)
        #expect(PromptDiff.joined(["red", ",", "blue", "."]) == "red, blue.")
    }

    /// The longest common subsequence by plain recursion, for checking small cases.
    static func lcs(_ a: ArraySlice<String>, _ b: ArraySlice<String>) -> Int {
        guard let x = a.first, let y = b.first else { return 0 }
        if x == y { return 1 + lcs(a.dropFirst(), b.dropFirst()) }
        return max(lcs(a.dropFirst(), b), lcs(a, b.dropFirst()))
    }

    @Test("every word is used once, in order, and the shared ones are a longest common subsequence")
    func randomPrompts() {
        var state: UInt64 = 12345
        func next(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        let vocabulary = ["a", "the", "cat", "witch", ","]  // few words, so many repeats
        for _ in 0..<200 {
            let a = (0..<next(8)).map { _ in vocabulary[next(vocabulary.count)] }
            let b = (0..<next(8)).map { _ in vocabulary[next(vocabulary.count)] }
            let d = PromptDiff(a, b)
            let usedA = d.steps.compactMap { s -> Int? in if case let .shared(i, _) = s { return i }; if case let .removed(i) = s { return i }; return nil }
            let usedB = d.steps.compactMap { s -> Int? in if case let .shared(_, j) = s { return j }; if case let .added(j) = s { return j }; return nil }
            #expect(usedA == Array(a.indices) && usedB == Array(b.indices), "\(a) → \(b): \(d.steps)")
            #expect(d.shared.allSatisfy { a[$0.a] == b[$0.b] })
            #expect(d.shared.count == Self.lcs(a[...], b[...]), "\(a) → \(b)")
        }
    }
}
