import Foundation

/// Two prompts' words aligned as a text diff aligns lines: a longest common subsequence of the
/// words (as a trace's word maps label them, compared case-insensitively) is shared; the first
/// prompt's other words were removed, the second's added. A comparison aligns each later prompt
/// with the first.
public struct PromptDiff: Sendable, Equatable {
    public enum Step: Sendable, Equatable {
        /// Word `a` of the first prompt is word `b` of the second.
        case shared(a: Int, b: Int)
        /// Word `a` of the first prompt has no counterpart in the second.
        case removed(a: Int)
        /// Word `b` of the second prompt has no counterpart in the first.
        case added(b: Int)
    }

    public let a: [String], b: [String]
    /// In reading order; where both prompts change, the removed words come first.
    public let steps: [Step]

    public init(_ a: [String], _ b: [String]) {
        (self.a, self.b) = (a, b)
        let x = a.map { $0.lowercased() }, y = b.map { $0.lowercased() }
        // lcs[i][j]: the longest common subsequence of x[i...] and y[j...].
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: y.count + 1), count: x.count + 1)
        for i in stride(from: x.count - 1, through: 0, by: -1) {
            for j in stride(from: y.count - 1, through: 0, by: -1) {
                lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        // Equal words are always matched: some longest subsequence takes them (a repeated "a"
        // pairs with the earliest one that keeps the alignment longest).
        var steps: [Step] = [], i = 0, j = 0
        while i < x.count || j < y.count {
            if i < x.count, j < y.count, x[i] == y[j] {
                steps.append(.shared(a: i, b: j)); i += 1; j += 1
            } else if j == y.count || (i < x.count && lcs[i + 1][j] >= lcs[i][j + 1]) {
                steps.append(.removed(a: i)); i += 1
            } else {
                steps.append(.added(b: j)); j += 1
            }
        }
        self.steps = steps
    }

    public var shared: [(a: Int, b: Int)] { steps.compactMap { if case let .shared(a, b) = $0 { return (a, b) }; return nil } }
    public var removed: [Int] { steps.compactMap { if case let .removed(a) = $0 { return a }; return nil } }
    public var added: [Int] { steps.compactMap { if case let .added(b) = $0 { return b }; return nil } }
    /// True when the prompts have the same words.
    public var isEmpty: Bool { removed.isEmpty && added.isEmpty }

    /// Word `a`'s counterpart in the second prompt, nil when it was removed.
    public func counterpart(ofA index: Int) -> Int? {
        for case let .shared(a, b) in steps where a == index { return b }
        return nil
    }

    /// git's word-diff form: "a witch and a robot [-dancing-] {+mirrors her gesture+}".
    public var wordDiff: String {
        var out: [String] = [], run: [String] = [], kind = ""
        func flush() {
            guard !run.isEmpty else { return }
            out.append(kind == "-" ? "[-\(Self.joined(run))-]" : "{+\(Self.joined(run))+}")
            run = []
        }
        for s in steps {
            switch s {
            case let .shared(_, j): flush(); out.append(b[j])
            case let .removed(i): if kind != "-" { flush() }; kind = "-"; run.append(a[i])
            case let .added(j): if kind != "+" { flush() }; kind = "+"; run.append(b[j])
            }
        }
        flush()
        return Self.joined(out)
    }

    /// Words as text: spaces between them, none before punctuation (CLIP makes "," a word).
    public static func joined(_ words: [String]) -> String {
        var s = ""
        for w in words {
            if !s.isEmpty && !isPunctuation(w) { s += " " }
            s += w
        }
        return s
    }

    /// A word of punctuation only, written without a space before it.
    public static func isPunctuation(_ word: String) -> Bool {
        !word.isEmpty && word.unicodeScalars.allSatisfy { CharacterSet.punctuationCharacters.contains($0) }
    }
}
