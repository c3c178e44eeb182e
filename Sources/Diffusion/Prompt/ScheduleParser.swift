/// A recursive-descent reader of A1111's prompt-editing grammar:
///
///     start:       (prompt | any run of [ ] ( ) :)*
///     prompt:      (emphasized | scheduled | alternate | plain | whitespace)*
///     emphasized:  "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
///     scheduled:   "[" [prompt ":"] prompt ":" [ws] NUMBER [ws] "]"
///     alternate:   "[" prompt ("|" [prompt])+ "]"
///     plain:       (any character but \ [ ] ( ) : | , or \ and any character)+
///
/// A bracket that fits no rule is literal text at the top level (never inside another bracket);
/// a top-level `|` or a lone trailing `\` means the grammar cannot read the prompt (nil).
/// Brackets nested deeper than `maxDepth` fit no rule either: the recursion (and the rendering
/// of its items) stays shallow however many brackets a prompt opens.
/// Checked against A1111's own parser on its documented examples and on random prompts
/// (Tests/Fixtures/prompt_schedules.json).
struct ScheduleParser {
    indirect enum Item: Equatable {
        case text(String)
        /// `[inner]` kept as written (emphasis for the prompt parser).
        case group(String, [Item], String)
        /// `(first)` or `(first:second)`, kept as written.
        case emphasis([Item], [Item]?)
        case scheduled(before: [Item]?, after: [Item], number: String)
        case alternate([[Item]])
    }

    let chars: [Character]
    static let maxDepth = 32
    init(_ text: String) { chars = Array(text) }

    /// The items of the whole prompt, or nil when the grammar cannot read it.
    func parse() -> [Item]? {
        var i = 0, items: [Item] = []
        while i < chars.count {
            if let (inner, next) = prompt(from: i, nonEmpty: true) {
                items += inner
                i = next
            } else if "[]():".contains(chars[i]) {
                items.append(.text(String(chars[i])))
                i += 1
            } else {
                return nil  // `|` or a lone `\`
            }
        }
        return merged(items)
    }

    /// A `prompt` starting at `i`: its items and the index after it (it may be empty unless
    /// `nonEmpty`). Stops at the first character no item can start with.
    func prompt(from start: Int, nonEmpty: Bool = false, depth: Int = 0) -> ([Item], Int)? {
        var i = start, items: [Item] = []
        while i < chars.count {
            let c = chars[i]
            if c == "(" {
                guard depth < Self.maxDepth, let (item, next) = emphasized(at: i, depth: depth + 1) else { break }
                items.append(item); i = next
            } else if c == "[" {
                guard depth < Self.maxDepth, let (item, next) = bracket(at: i, depth: depth + 1) else { break }
                items.append(item); i = next
            } else if let next = plain(from: i) {
                items.append(.text(String(chars[i..<next]))); i = next
            } else {
                break
            }
        }
        if nonEmpty && i == start { return nil }
        return (items, i)
    }

    /// plain+ (whitespace included): characters but `\ [ ] ( ) : |`, or `\` and the next one.
    func plain(from start: Int) -> Int? {
        var i = start
        while i < chars.count {
            let c = chars[i]
            if c == "\\" {
                guard i + 1 < chars.count else { break }
                i += 2
            } else if "[]():|".contains(c) {
                break
            } else {
                i += 1
            }
        }
        return i > start ? i : nil
    }

    func emphasized(at i: Int, depth: Int) -> (Item, Int)? {
        guard let (first, j) = prompt(from: i + 1, depth: depth), j < chars.count else { return nil }
        if chars[j] == ")" { return (.emphasis(first, nil), j + 1) }
        guard chars[j] == ":", let (second, k) = prompt(from: j + 1, depth: depth), k < chars.count, chars[k] == ")" else { return nil }
        return (.emphasis(first, second), k + 1)
    }

    /// `[` … `]`: scheduled (with or without a first prompt), alternate, or emphasized.
    func bracket(at i: Int, depth: Int) -> (Item, Int)? {
        guard let (first, j) = prompt(from: i + 1, depth: depth), j < chars.count else { return nil }
        switch chars[j] {
        case "]":
            return (.group("[", first, "]"), j + 1)
        case "|":
            var options = [first], k = j
            while k < chars.count, chars[k] == "|" {
                guard let (next, after) = prompt(from: k + 1, depth: depth) else { return nil }
                options.append(next); k = after
            }
            guard k < chars.count, chars[k] == "]" else { return nil }
            return (.alternate(options), k + 1)
        case ":":
            // [to:when]: a number and the closing bracket right after the colon.
            if let (number, end) = numberAndClose(from: j + 1) { return (.scheduled(before: nil, after: first, number: number), end) }
            // [from:to:when]
            guard let (second, k) = prompt(from: j + 1, depth: depth), k < chars.count, chars[k] == ":",
                  let (number, end) = numberAndClose(from: k + 1) else { return nil }
            return (.scheduled(before: first, after: second, number: number), end)
        default:
            return nil
        }
    }

    /// `[ws] NUMBER [ws] "]"`: the number's text and the index after the bracket.
    func numberAndClose(from start: Int) -> (String, Int)? {
        var i = start
        while i < chars.count, chars[i].isWhitespace { i += 1 }
        for end in numberEnds(from: i).reversed() {
            var k = end
            while k < chars.count, chars[k].isWhitespace { k += 1 }
            if k < chars.count, chars[k] == "]" { return (String(chars[i..<end]), k + 1) }
        }
        return nil
    }

    /// Every index where a SIGNED_NUMBER starting at `i` can end (lark's common.SIGNED_NUMBER:
    /// [+-] then digits, digits "." digits?, or "." digits, with an optional exponent).
    func numberEnds(from start: Int) -> [Int] {
        var i = start
        if i < chars.count, chars[i] == "+" || chars[i] == "-" { i += 1 }
        func digits(_ from: Int) -> Int { var k = from; while k < chars.count, chars[k].isASCII, chars[k].isNumber { k += 1 }; return k }
        var ends: [Int] = []
        let intEnd = digits(i)
        var mantissaEnds: [Int] = []
        if intEnd > i { mantissaEnds.append(intEnd) }
        if intEnd < chars.count, chars[intEnd] == "." {
            let fracEnd = digits(intEnd + 1)
            if intEnd > i || fracEnd > intEnd + 1 { mantissaEnds.append(fracEnd) }
        }
        for m in mantissaEnds {
            ends.append(m)
            if m < chars.count, chars[m] == "e" || chars[m] == "E" {
                var e = m + 1
                if e < chars.count, chars[e] == "+" || chars[e] == "-" { e += 1 }
                let expEnd = digits(e)
                if expEnd > e { ends.append(expEnd) }
            }
        }
        return ends.sorted()
    }

    /// Adjacent text items joined (the renderer does not care; tests read better).
    /// The run of text is gathered apart and joined once: replacing the last item with `prev + t`
    /// copies the run each time, quadratic in a prompt of many literal brackets.
    func merged(_ items: [Item]) -> [Item] {
        var out: [Item] = [], run: String?
        for item in items {
            if case let .text(t) = item {
                if run == nil { run = t } else { run! += t }  // in place
            } else {
                if let r = run { out.append(.text(r)); run = nil }
                out.append(item)
            }
        }
        if let r = run { out.append(.text(r)) }
        return out
    }
}
