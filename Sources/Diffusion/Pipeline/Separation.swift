import Foundation
import Models
import Tensors

/// A merge remedy for two (or more) subjects of one prompt: bounded regional attention
/// (`RegionalAttention`), with each subject encoded on its own. See docs/REMEDY.md.
public struct Separation: Sendable, Equatable {
    /// The channels closed, cumulatively (the ablation's three variants; `full` is the remedy).
    public enum Stage: String, Sendable, CaseIterable, Comparable {
        /// Each subject's tokens encoded in a prompt without the others (no mixing in CLIP).
        case text
        /// + each subject's tokens confined to its region in cross-attention, blended with its own prompt there.
        case cross
        /// + pixels of one region kept from attending to another's in self-attention.
        case full

        public static func < (a: Stage, b: Stage) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
    }

    /// Words or embedding triggers of the prompt, one per region, left to right.
    public var subjects: [String]
    /// Normalised boxes x0, y0, x1, y1, one per subject (see `columns`).
    public var boxes: [[Float]]
    /// The share of evaluations bounded (from the first); after it the layers run free.
    public var until: Float = Separation.defaultUntil
    /// Bounded to the end, self-attention cut at the seam tore some images apart (on the demo
    /// model, 32 seeds: alex and cora 5 with no character, alex and koko 12); released after 70%
    /// of the evaluations, 0 and 4, both apart in 7 seeds where 8 were (docs/REMEDY.md).
    public static let defaultUntil: Float = 0.7
    /// The base prompt's weight inside a region (Regional Prompter's base ratio).
    public var baseBlend: Float = 0.2
    public var stage: Stage = .full

    public init(subjects: [String], boxes: [[Float]]? = nil) {
        self.subjects = subjects
        self.boxes = boxes ?? Self.columns(subjects.count)
    }

    /// `halves`: the picture cut into equal columns, one per subject, left to right.
    public static func columns(_ n: Int) -> [[Float]] {
        (0..<n).map { i in [Float(i) / Float(n), 0, Float(i + 1) / Float(n), 1] }
    }

    /// `"A=x0,y0,x1,y1;B=…"`: a box for every subject, in any order.
    public static func parseBoxes(_ text: String, subjects: [String]) throws -> [[Float]] {
        func fail(_ s: String) -> PipelineError { PipelineError(description: "--regions \(text): \(s)") }
        var named: [String: [Float]] = [:]
        for part in text.split(separator: ";") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2 else { throw fail("expected halves or NAME=x0,y0,x1,y1;NAME=…") }
            let numbers = kv[1].split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard numbers.count == 4, numbers.allSatisfy({ $0 != nil }) else { throw fail("\(kv[0])'s box: expected four numbers x0,y0,x1,y1") }
            guard subjects.contains(where: { $0.lowercased() == kv[0].lowercased() }) else {
                throw fail("\(kv[0]) is not one of the --separate subjects (\(subjects.joined(separator: ", ")))")
            }
            named[kv[0].lowercased()] = numbers.map { $0! }
        }
        return try subjects.map { s in
            guard let b = named[s.lowercased()] else { throw fail("no box for \(s)") }
            return b
        }
    }

    /// Checks subjects, boxes and numbers (not yet against a prompt).
    public func validate() throws {
        func fail(_ s: String) -> PipelineError { PipelineError(description: s) }
        guard subjects.count >= 2 else { throw fail("--separate \(subjects.joined(separator: ",")): expected two or more subjects, comma-separated") }
        guard Set(subjects.map { $0.lowercased() }).count == subjects.count else { throw fail("--separate: a subject is named twice") }
        guard boxes.count == subjects.count else { throw fail("--regions: \(boxes.count) regions for \(subjects.count) subjects") }
        for (s, b) in zip(subjects, boxes) {
            guard b.count == 4, b.allSatisfy({ $0.isFinite && $0 >= 0 && $0 <= 1 }), b[0] < b[2], b[1] < b[3] else {
                throw fail("--regions: \(s)'s box \(b.map { String($0) }.joined(separator: ",")): expected x0,y0,x1,y1 within 0…1 with x0 < x1, y0 < y1")
            }
        }
        guard until > 0, until <= 1 else { throw fail("--separate-until \(until): expected a fraction in (0, 1]") }
        guard baseBlend >= 0, baseBlend <= 1 else { throw fail("base blend \(baseBlend): expected 0…1") }
    }

    /// Evaluations (from the first) that are bounded, of `evaluations`.
    public func boundedEvaluations(of evaluations: Int) -> Int {
        min(evaluations, max(1, Int((until * Float(evaluations)).rounded(.up))))
    }

    /// The prompt with every other subject's words removed: the prompt subject `i` is encoded in.
    public func ownPrompt(_ prompt: String, subject i: Int) -> String {
        var p = prompt
        for (j, other) in subjects.enumerated() where j != i { p = Self.replacingWord(other, in: p, with: " ") }
        return p.replacingOccurrences(of: "\\s+", with: " ", options: .regularExpression).trimmingCharacters(in: .whitespaces)
    }

    /// `text` with every whole-word `word` (case-insensitive; letters, digits and _ bound a word)
    /// replaced by `replacement`.
    public static func replacingWord(_ word: String, in text: String, with replacement: String) -> String {
        let escaped = NSRegularExpression.escapedPattern(for: word)
        let template = NSRegularExpression.escapedTemplate(for: replacement)
        return text.replacingOccurrences(of: "(?i)(?<![\\p{L}\\p{N}_])\(escaped)(?![\\p{L}\\p{N}_])", with: template, options: .regularExpression)
    }

    /// Conditioning positions of `subject` in a chunked prompt: its words' tokens and the rows its
    /// embedding's vectors fill.
    public static func positions(of subject: String, in rows: [PromptTokenRow]) -> [Int] {
        let s = subject.lowercased()
        return rows.filter { ($0.word?.lowercased() == s) || ($0.word == nil && $0.piece >= 0 && $0.text.lowercased() == s) }.map(\.position)
    }
}
