import Analysis
import Foundation

/// Traces of more than one prompt, laid out for a comparison: a row per prompt (in the order the
/// traces came), a column per seed (or per position, when the prompts' seeds differ); each later
/// prompt's words aligned with the first's; and the pairs of runs whose parting is measured (each
/// later prompt's run against the first prompt's in the same column).
struct Comparison {
    let traces: [ReportTrace]
    let prompts: [String]
    /// cells[p][c]: the index into `traces` of prompt p's run in column c, if it has one.
    let cells: [[Int?]]
    /// Each prompt's words, as its word maps (or its token rows) label them.
    let words: [[String]]
    /// diffs[p]: prompt p against prompt 0 (diffs[0] is prompt 0 against itself).
    let diffs: [PromptDiff]
    let pairs: [Pair]

    struct Pair {
        let base: Int, other: Int  // indices into traces
        let prompt: Int, column: Int
    }

    /// A word of the comparison: where it is in each prompt (nil: not there).
    struct Word {
        let label: String
        let index: [Int?]
        /// What the diff says: shared by every prompt, or which prompts lack it or added it.
        let kind: String
    }

    /// Different prompts make a comparison; one prompt's seeds make a sweep.
    static func isComparison(_ traces: [ReportTrace]) -> Bool { Set(traces.map(\.prompt)).count > 1 }

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
        var prompts: [String] = [], runs: [[Int]] = []
        for (i, t) in traces.enumerated() {
            if let p = prompts.firstIndex(of: t.prompt) { runs[p].append(i) } else { prompts.append(t.prompt); runs.append([i]) }
        }
        self.prompts = prompts
        // Columns by seed when every prompt ran the same seeds once each; else by position.
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
                    after[last + 1].append(Word(label: words[p][b], index: index, kind: "added in prompt \(p + 1)"))
                }
            }
        }
        var out = after[0]
        for (i, label) in words[0].enumerated() {
            let index = (0..<n).map { $0 == 0 ? i : diffs[$0].counterpart(ofA: i) }
            let missing = (0..<n).filter { index[$0] == nil }.map { String($0 + 1) }
            let kind = missing.isEmpty ? "shared" : n == 2 ? "removed in prompt 2" : "not in prompt\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", "))"
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

    /// "prompt 2 · seed 5".
    func runLabel(_ i: Int) -> String {
        let p = prompts.firstIndex(of: traces[i].prompt) ?? 0
        return "prompt \(p + 1) · seed \(traces[i].seed)"
    }

    /// A file-name part for run i: "prompt2-seed5" (and its column when that is not unique).
    func runName(_ i: Int) -> String {
        let p = prompts.firstIndex(of: traces[i].prompt) ?? 0
        let name = "prompt\(p + 1)-seed\(traces[i].seed)"
        let twins = traces.indices.filter { $0 != i && traces[$0].prompt == traces[i].prompt && traces[$0].seed == traces[i].seed }
        return twins.isEmpty ? name : name + "-\(cells[p].firstIndex(of: i).map { $0 + 1 } ?? 0)"
    }

    /// "2 prompts × 1 seed (5)".
    var shape: String {
        var seeds: [UInt64] = []
        for t in traces where !seeds.contains(t.seed) { seeds.append(t.seed) }
        let columns = cells.first?.count ?? 0
        return "\(prompts.count) prompts × \(columns) seed\(columns == 1 ? "" : "s") (\(seeds.map(String.init).joined(separator: ", ")))"
    }
}
