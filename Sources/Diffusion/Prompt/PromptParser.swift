/// A1111's emphasis syntax (`modules/prompt_parser.py::parse_prompt_attention`), rule for rule:
/// `(text)` ×1.1, `[text]` ÷1.1, `(text:1.3)` ×1.3 (replacing the 1.1), nesting multiplies,
/// `\(` `\)` `\[` `\]` `\\` are literal, unmatched `)` `]` are text, unclosed brackets still apply
/// to the end, `BREAK` (a whole word) starts a new 75-token chunk; adjacent pieces with equal
/// weights are merged.
public enum PromptParser {
    public struct Piece: Equatable, Sendable {
        public var text: String
        /// The emphasis multiplier; `isBreak` pieces carry -1 as A1111 does.
        public var weight: Double
        public var isBreak: Bool { text == "BREAK" && weight == -1 }
        public init(_ text: String, _ weight: Double) {
            self.text = text
            self.weight = weight
        }
    }

    public static func parse(_ prompt: String) -> [Piece] {
        var res: [Piece] = []
        var round: [Int] = [], square: [Int] = []
        func multiply(from start: Int, _ m: Double) { for p in start..<res.count { res[p].weight *= m } }
        func appendText(_ text: String) {
            for (i, part) in splitOnBreak(text).enumerated() {
                if i > 0 { res.append(Piece("BREAK", -1)) }
                res.append(Piece(part, 1.0))
            }
        }

        let s = Array(prompt)
        var i = 0
        while i < s.count {
            let c = s[i]
            switch c {
            case "\\":
                // `\(`, `\)`, `\[`, `\]`, `\\` give the character; a lone `\` gives nothing.
                if i + 1 < s.count, "()[]\\".contains(s[i + 1]) {
                    res.append(Piece(String(s[i + 1]), 1.0)); i += 2
                } else {
                    res.append(Piece("", 1.0)); i += 1
                }
            case "(":
                round.append(res.count); i += 1
            case "[":
                square.append(res.count); i += 1
            case ":":
                if let (weight, end) = explicitWeight(s, at: i) {
                    if !round.isEmpty, let w = Double(weight) {
                        multiply(from: round.removeLast(), w)
                    } else {
                        appendText(String(s[i..<end]))
                    }
                    i = end
                } else {
                    appendText(":"); i += 1
                }
            case ")":
                if let start = round.popLast() { multiply(from: start, 1.1) } else { appendText(")") }
                i += 1
            case "]":
                if let start = square.popLast() { multiply(from: start, 1 / 1.1) } else { appendText("]") }
                i += 1
            default:
                var j = i
                while j < s.count, !"\\()[]:".contains(s[j]) { j += 1 }
                appendText(String(s[i..<j]))
                i = j
            }
        }
        for start in round { multiply(from: start, 1.1) }
        for start in square { multiply(from: start, 1 / 1.1) }
        if res.isEmpty { res = [Piece("", 1.0)] }
        var k = 0
        while k + 1 < res.count {
            if res[k].weight == res[k + 1].weight {
                res[k].text += res[k + 1].text
                res.remove(at: k + 1)
            } else {
                k += 1
            }
        }
        return res
    }

    /// Matches `:\s*([+-]?[.\d]+)\s*\)` at `i`; returns the number's text and the end index.
    private static func explicitWeight(_ s: [Character], at i: Int) -> (String, Int)? {
        var j = i + 1
        while j < s.count, s[j].isWhitespace { j += 1 }
        let numberStart = j
        if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
        let digitsStart = j
        while j < s.count, s[j] == "." || s[j].isASCII && s[j].isNumber { j += 1 }
        guard j > digitsStart else { return nil }
        let number = String(s[numberStart..<j])
        while j < s.count, s[j].isWhitespace { j += 1 }
        guard j < s.count, s[j] == ")" else { return nil }
        return (number, j + 1)
    }

    /// `re.split(r"\s*\bBREAK\b\s*", text)`.
    static func splitOnBreak(_ text: String) -> [String] {
        let s = Array(text)
        var parts: [String] = []
        var current: [Character] = []
        var i = 0
        func isWord(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" }
        while i < s.count {
            if i + 5 <= s.count, String(s[i..<(i + 5)]) == "BREAK",
               i == 0 || !isWord(s[i - 1]), i + 5 == s.count || !isWord(s[i + 5]) {
                while let last = current.last, last.isWhitespace { current.removeLast() }
                parts.append(String(current))
                current = []
                i += 5
                while i < s.count, s[i].isWhitespace { i += 1 }
            } else {
                current.append(s[i]); i += 1
            }
        }
        parts.append(String(current))
        return parts
    }
}
