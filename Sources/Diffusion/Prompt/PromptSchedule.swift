import Foundation

/// A1111's prompt editing and alternation, turned into the texts a run is conditioned on:
///
/// - `[to:when]` adds `to` after step `when`, `[from::when]` removes `from` after it,
///   `[from:to:when]` swaps; `when` is a step (a whole number) or, with a decimal point, a share
///   of the steps (A1111 ≥ 1.6's rule: `0.5` = half, `3` = step 3);
/// - `[a|b|…]` alternates the texts step by step;
/// - `AND` composes prompts (`a cat AND a hat :0.6`), each with its weight (composable diffusion).
///
/// The grammar is A1111's (emphasis brackets and weights are kept as text for the prompt parser;
/// brackets that fit no rule stay literal, and a prompt the grammar cannot read at all — a bare
/// `|` — is used as written). `texts(at:)` follows A1111's `reconstruct_cond_batch`: at model call
/// `k` (0-based) the first entry whose end step is ≥ k, else the first entry.
public struct PromptSchedule: Equatable, Sendable {
    /// (end step, text): the text is used up to and including `end`.
    public let entries: [Entry]

    public struct Entry: Equatable, Sendable {
        public let end: Int
        public let text: String
    }

    public init(_ prompt: String, steps: Int) {
        let parsed = ScheduleParser(prompt).parse()
        guard let items = parsed else {
            entries = [Entry(end: steps, text: prompt)]
            return
        }
        var ends: Set<Int> = [steps]
        Self.collect(items, steps: steps, into: &ends)
        entries = ends.sorted().map { Entry(end: $0, text: Self.render(items, step: $0, steps: steps)) }
    }

    /// The text at model call `call` (0-based), as A1111 picks it.
    public func text(at call: Int) -> String {
        (entries.first { call <= $0.end } ?? entries[0]).text
    }

    /// Every text the schedule uses, once, in order.
    public var texts: [String] {
        var seen: [String] = []
        for e in entries where !seen.contains(e.text) { seen.append(e.text) }
        return seen
    }

    /// A1111's `when`: a decimal point makes it a share of the steps; clamped to `steps`, truncated.
    static func step(_ number: String, steps: Int) -> Int {
        let v = Double(number) ?? 0
        let s = number.contains(".") ? v * Double(steps) : v
        // Past ±2^62 (1e308, inf) only the sign matters, and Int(s) would trap.
        guard s.isFinite, abs(s) < 0x1p62 else { return s > 0 ? steps : Int.min / 2 }
        return min(steps, Int(s.rounded(.towardZero)))
    }

    static func collect(_ items: [ScheduleParser.Item], steps: Int, into ends: inout Set<Int>) {
        for item in items {
            switch item {
            case .text: break
            case let .group(_, inner, _): collect(inner, steps: steps, into: &ends)
            case let .emphasis(first, second):
                collect(first, steps: steps, into: &ends)
                collect(second ?? [], steps: steps, into: &ends)
            case let .scheduled(before, after, number):
                let w = step(number, steps: steps)
                if w >= 1 { ends.insert(w) }
                collect(before ?? [], steps: steps, into: &ends)
                collect(after, steps: steps, into: &ends)
            case let .alternate(options):
                ends.formUnion(1...max(1, steps))
                for o in options { collect(o, steps: steps, into: &ends) }
            }
        }
    }

    static func render(_ items: [ScheduleParser.Item], step s: Int, steps: Int) -> String {
        var out = ""
        for item in items {
            switch item {
            case let .text(t): out += t
            case let .group(open, inner, close): out += open + render(inner, step: s, steps: steps) + close
            case let .emphasis(first, second):
                out += "(" + render(first, step: s, steps: steps) + (second.map { ":" + render($0, step: s, steps: steps) } ?? "") + ")"
            case let .scheduled(before, after, number):
                out += s <= step(number, steps: steps) ? render(before ?? [], step: s, steps: steps) : render(after, step: s, steps: steps)
            case let .alternate(options):
                out += render(options[(s - 1 + options.count * 1000) % options.count], step: s, steps: steps)
            }
        }
        return out
    }
}

/// `AND`-composed prompts: each part's text and weight (A1111's `get_multicond_prompt_list`:
/// split at the whole word AND, a trailing `:number` is the weight, the text keeps its spaces).
public struct ComposedPrompt: Equatable, Sendable {
    public struct Part: Equatable, Sendable {
        public let text: String
        public let weight: Float
    }
    public let parts: [Part]

    public init(_ prompt: String) {
        parts = Self.split(prompt).map { piece in
            let ns = piece as NSString
            guard let m = Self.weightPattern.firstMatch(in: piece, range: NSRange(location: 0, length: ns.length)) else {
                return Part(text: piece, weight: 1)
            }
            let text = m.range(at: 1).location == NSNotFound ? piece : ns.substring(with: m.range(at: 1))
            let weight = m.range(at: 2).location == NSNotFound ? 1 : Float(ns.substring(with: m.range(at: 2))) ?? 1
            return Part(text: text, weight: weight)
        }
    }

    private static let andPattern = try! NSRegularExpression(pattern: #"\bAND\b"#)
    private static let weightPattern = try! NSRegularExpression(pattern: #"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$"#,
                                                                options: [.dotMatchesLineSeparators])

    static func split(_ prompt: String) -> [String] {
        let ns = prompt as NSString
        var out: [String] = [], start = 0
        for m in andPattern.matches(in: prompt, range: NSRange(location: 0, length: ns.length)) {
            out.append(ns.substring(with: NSRange(location: start, length: m.range.location - start)))
            start = m.range.location + m.range.length
        }
        out.append(ns.substring(from: start))
        return out
    }
}
