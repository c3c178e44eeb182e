import Analysis
import Foundation

/// Traces of more than one prompt, or of one prompt with and without the merge remedy, laid out
/// for a comparison: a row per prompt and remedy stage (plain runs of a prompt first, then its
/// remedy stages in order; prompts in the order the traces came), a column per seed (or per
/// position, when the rows' seeds differ); each later row's words aligned with the first's; and
/// the pairs of runs whose parting is measured (each later row's run against the first row's in
/// the same column).
struct Comparison {
    let traces: [ReportTrace]
    /// Each row's prompt (rows of one prompt differ in their remedy).
    let prompts: [String]
    /// Each row's remedy stage (text, cross or full; nil: plain runs).
    let stages: [String?]
    /// cells[p][c]: the index into `traces` of row p's run in column c, if it has one.
    let cells: [[Int?]]
    /// Each row's words, as its word maps (or its token rows) label them.
    let words: [[String]]
    /// diffs[p]: row p's words against row 0's (diffs[0] is row 0 against itself).
    let diffs: [PromptDiff]
    let pairs: [Pair]

    struct Pair {
        let base: Int, other: Int  // indices into traces
        let prompt: Int, column: Int  // prompt: the row of `other`
    }

    /// A word of the comparison: where it is in each row (nil: not there).
    struct Word {
        let label: String
        let index: [Int?]
        /// What the diff says: shared by every row, or which rows lack it or added it.
        let kind: String
    }

    /// What makes a row: the prompt, and the remedy's stage when the run had one.
    static func rowKey(_ t: ReportTrace) -> String { t.prompt + (t.remedy.map { "\u{1F}remedy " + $0.stage } ?? "") }

    /// Different prompts, or a prompt with and without the remedy, make a comparison; one
    /// prompt's seeds make a sweep.
    static func isComparison(_ traces: [ReportTrace]) -> Bool { Set(traces.map(rowKey)).count > 1 }

    init(traces: [ReportTrace]) throws {
        let first = traces[0]
        for t in traces.dropFirst() {
            let sameModel = first.modelHash.isEmpty || t.modelHash.isEmpty ? first.modelPath == t.modelPath : first.modelHash == t.modelHash
            let sameSize = (first.width, first.height) == (t.width, t.height) && (first.latentWidth, first.latentHeight) == (t.latentWidth, t.latentHeight)
            guard sameModel && sameSize else {
                func what(_ r: ReportTrace) -> String {
                    [sameModel ? nil : "model \(URL(fileURLWithPath: r.modelPath).lastPathComponent) [\(r.modelHash)]",
                     sameSize ? nil : "\(r.width)×\(r.height)"].compactMap { $0 }.joined(separator: ", ")
                }
                throw ReportError("\(t.directory) (\(what(t))) and \(first.directory) (\(what(first))): a comparison of prompts needs one model and one size")
            }
        }
        self.traces = traces
        var keys: [String] = [], runs: [[Int]] = []
        for (i, t) in traces.enumerated() {
            if let p = keys.firstIndex(of: Self.rowKey(t)) { runs[p].append(i) } else { keys.append(Self.rowKey(t)); runs.append([i]) }
        }
        // A prompt's plain row first, then its remedy stages as they build on each other.
        var order: [String] = []
        for t in traces where !order.contains(t.prompt) { order.append(t.prompt) }
        let stageOrder = ["text", "cross", "full"]
        func rank(_ row: [Int]) -> (Int, Int) {
            let t = traces[row[0]]
            return (order.firstIndex(of: t.prompt)!, t.remedy.map { (stageOrder.firstIndex(of: $0.stage) ?? stageOrder.count) + 1 } ?? 0)
        }
        runs = runs.enumerated().sorted {
            let (a, b) = (rank($0.element), rank($1.element))
            return (a.0, a.1, $0.offset) < (b.0, b.1, $1.offset)
        }.map(\.element)
        prompts = runs.map { traces[$0[0]].prompt }
        stages = runs.map { traces[$0[0]].remedy?.stage }
        // Columns by seed when every row ran the same seeds once each; else by position.
        let seeds = runs.map { $0.map { traces[$0].seed } }
        if seeds.allSatisfy({ Set($0) == Set(seeds[0]) && Set($0).count == $0.count }) {
            cells = runs.map { row in seeds[0].map { s in row.first { traces[$0].seed == s } } }
        } else {
            let width = runs.map(\.count).max() ?? 0
            cells = runs.map { row in (0..<width).map { $0 < row.count ? row[$0] : nil } }
        }
        let words = runs.map { row in
            let t = traces[row[0]]
            return t.wordMaps?.words.map(\.label) ?? RunCard.words(t.tokens).map(\.text)
        }
        self.words = words
        diffs = words.map { PromptDiff(words[0], $0) }
        var pairs: [Pair] = []
        for p in cells.indices.dropFirst() {
            for c in cells[p].indices {
                if let base = cells[0][c], let other = cells[p][c] { pairs.append(Pair(base: base, other: other, prompt: p, column: c)) }
            }
        }
        self.pairs = pairs
    }

    /// Every word once, in reading order: the first prompt's words, each later prompt's added
    /// words after the word of the first they follow.
    var alignedWords: [Word] {
        let n = prompts.count
        var after = [[Word]](repeating: [], count: words[0].count + 1)  // after[i + 1]: added after word i of prompt 0
        for p in 1..<max(1, n) {
            var last = -1
            for step in diffs[p].steps {
                switch step {
                case let .shared(a, _), let .removed(a): last = a
                case let .added(b):
                    var index = [Int?](repeating: nil, count: n)
                    index[p] = b
                    after[last + 1].append(Word(label: words[p][b], index: index, kind: "added in \(rowLabel(p))"))
                }
            }
        }
        var out = after[0]
        for (i, label) in words[0].enumerated() {
            let index = (0..<n).map { $0 == 0 ? i : diffs[$0].counterpart(ofA: i) }
            let missing = (0..<n).filter { index[$0] == nil }
            let kind = missing.isEmpty ? "shared" : n == 2 ? "removed in \(rowLabel(1))"
                : hasRemedy ? "not in " + missing.map(rowLabel).joined(separator: ", ")
                : "not in prompt\(missing.count > 1 ? "s" : "") \(missing.map { String($0 + 1) }.joined(separator: ", "))"
            out.append(Word(label: label, index: index, kind: kind))
            out += after[i + 1]
        }
        return out
    }

    enum Change { case same, added, removed }

    /// Prompt p's words with what changed against the first prompt, its removed words in place.
    func diffWords(_ p: Int) -> [(text: String, change: Change)] {
        guard p > 0 else { return words[0].map { ($0, .same) } }
        let d = diffs[p]
        return d.steps.map { step in
            switch step {
            case let .shared(_, b): return (d.b[b], .same)
            case let .removed(a): return (d.a[a], .removed)
            case let .added(b): return (d.b[b], .added)
            }
        }
    }

    /// Consecutive words of one change as one piece of text (so a marked phrase reads as one), and
    /// whether a space comes before it.
    static func pieces(_ words: [(text: String, change: Change)]) -> [(text: String, change: Change, space: Bool)] {
        var out: [(text: String, change: Change, space: Bool)] = [], run: [String] = []
        for (i, w) in words.enumerated() {
            run.append(w.text)
            guard i + 1 == words.count || words[i + 1].change != w.change else { continue }
            let first = words[i + 1 - run.count].text
            out.append((PromptDiff.joined(run), w.change, i + 1 > run.count && !PromptDiff.isPunctuation(first)))
            run = []
        }
        return out
    }

    /// The row of trace i.
    func row(of i: Int) -> Int { cells.firstIndex { $0.contains(i) } ?? 0 }

    var hasRemedy: Bool { stages.contains { $0 != nil } }

    /// Row p's prompt's number among the distinct prompts (1-based).
    func promptNumber(_ p: Int) -> Int {
        var seen: [String] = []
        for q in 0...p where !seen.contains(prompts[q]) { seen.append(prompts[q]) }
        return seen.count
    }

    /// "prompt 2"; with remedy rows what the row ran ("before", "remedy: text encoding only", …),
    /// after its prompt's number when the prompts differ too. `short`: "remedy: text" (PDF labels).
    func rowLabel(_ p: Int) -> String { rowLabel(p, short: false) }
    func rowLabel(_ p: Int, short: Bool) -> String {
        guard hasRemedy else { return "prompt \(p + 1)" }
        let stage = stages[p].map { short ? "remedy: \($0)" : Self.stageName($0) } ?? "before"
        return Set(prompts).count > 1 ? "prompt \(promptNumber(p)) · \(stage)" : stage
    }

    /// A remedy stage as a row says it.
    static func stageName(_ stage: String) -> String {
        ["text": "remedy: text encoding only", "cross": "remedy: + cross-attention", "full": "remedy: full (bounded regional attention)"][stage]
            ?? "remedy: \(stage)"
    }

    /// "prompt 2 against 1"; with remedy rows "remedy: full against before".
    func against(_ p: Int) -> String { hasRemedy ? "\(rowLabel(p, short: true)) against \(rowLabel(0, short: true))" : "prompt \(p + 1) against 1" }

    /// What the run of row p did besides its words: the remedy, channel by channel (nil: plain).
    func remedyNote(_ p: Int) -> String? {
        guard let i = cells[p].compactMap({ $0 }).first, let r = traces[i].remedy else { return nil }
        let rank = ["text": 1, "cross": 2, "full": 3][r.stage] ?? 3
        var closed = ["each encoded without the other's words"]
        if rank >= 2 { closed.append("confined to its region in cross-attention") }
        if rank >= 3 { closed.append("regions kept apart in self-attention") }
        let e = traces[i].evaluations
        let bounded = r.boundedEvaluations.map { $0 < e ? "; the first \($0) of \(e) evaluations bounded" : "" } ?? ""
        return "merge remedy on \(r.subjects.joined(separator: " and ")): " + closed.joined(separator: ", ") + bounded
    }

    /// What row p changes against row 0, in words: the word diff, and the remedy where it differs.
    func difference(_ p: Int) -> String {
        let d = diffs[p]
        let remedy = stages[p] != stages[0] ? (remedyNote(p) ?? "no merge remedy") : nil
        if d.isEmpty {
            if let remedy { return "the same words; \(remedy)" }
            return "the same words (the prompts differ in emphasis, spacing or case)"
        }
        return d.wordDiff + (remedy.map { "; \($0)" } ?? "")
    }

    /// "prompt 2 · seed 5", "remedy: full · seed 5".
    func runLabel(_ i: Int) -> String { "\(rowLabel(row(of: i), short: true)) · seed \(traces[i].seed)" }

    /// A file-name part for run i: "prompt2-seed5", "full-seed5" (and its column when that is not
    /// unique).
    func runName(_ i: Int) -> String {
        let p = row(of: i)
        let stage = hasRemedy ? (stages[p] ?? "before") : nil
        let prompt = !hasRemedy || Set(prompts).count > 1 ? "prompt\(promptNumber(p))" : nil
        let name = ([prompt, stage].compactMap { $0 } + ["seed\(traces[i].seed)"]).joined(separator: "-")
        let twins = traces.indices.filter { $0 != i && row(of: $0) == p && traces[$0].seed == traces[i].seed }
        return twins.isEmpty ? name : name + "-\(cells[p].firstIndex(of: i).map { $0 + 1 } ?? 0)"
    }

    /// "2 prompts × 1 seed (5)"; "1 prompt, 4 rows (1 plain, 3 with the remedy) × 4 seeds (…)".
    var shape: String {
        var seeds: [UInt64] = []
        for t in traces where !seeds.contains(t.seed) { seeds.append(t.seed) }
        let columns = cells.first?.count ?? 0
        let n = Set(prompts).count, remedied = stages.compactMap { $0 }.count
        let rows = hasRemedy ? "\(n) prompt\(n == 1 ? "" : "s"), \(prompts.count) rows (\(prompts.count - remedied) plain, \(remedied) with the remedy)"
            : "\(prompts.count) prompts"
        return "\(rows) × \(columns) seed\(columns == 1 ? "" : "s") (\(seeds.map(String.init).joined(separator: ", ")))"
    }
}
