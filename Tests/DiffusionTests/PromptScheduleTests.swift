import Foundation
import Testing
import TestSupport
@testable import Diffusion

/// Prompt editing, alternation and AND against A1111's own parser (Tests/Fixtures/prompt_schedules.json:
/// its documented examples and 600 random prompts of brackets, colons, bars and numbers, at 10 and
/// 20 steps).
@Suite("A1111 prompt editing and AND")
struct PromptScheduleTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            let prompt: String
            let steps: Int
            let schedule: [[Value]]
        }
        /// A JSON pair's member: a number (end step, weight) or a text.
        enum Value: Decodable {
            case number(Double), text(String)
            init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let d = try? c.decode(Double.self) { self = .number(d) } else { self = .text(try c.decode(String.self)) }
            }
        }
        struct And: Decodable {
            let prompt: String
            let parts: [[Value]]
        }
        let schedules: [Case]
        let and: [And]
    }

    static let golden: Golden? = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("prompt_schedules.json")) else { return nil }
        return try? JSONDecoder().decode(Golden.self, from: data)
    }()

    @Test("every schedule as A1111's parser makes it")
    func schedules() throws {
        let golden = try #require(Self.golden)
        var wrong: [String] = []
        for c in golden.schedules {
            let expected: [PromptSchedule.Entry] = c.schedule.compactMap { pair in
                guard case let .number(end) = pair[0], case let .text(text) = pair[1] else { return nil }
                return PromptSchedule.Entry(end: Int(end), text: text)
            }
            let got = PromptSchedule(c.prompt, steps: c.steps).entries
            if got != expected { wrong.append("\(c.prompt.debugDescription) @\(c.steps): \(got.map { "\($0.end):\($0.text.debugDescription)" }) vs \(expected.map { "\($0.end):\($0.text.debugDescription)" })") }
        }
        #expect(wrong.isEmpty, "\(wrong.count) of \(golden.schedules.count) differ, e.g. \(wrong.prefix(5).joined(separator: "; "))")
        #expect(golden.schedules.count > 1000)
    }

    @Test("AND parts and weights as A1111 splits them")
    func and() throws {
        let golden = try #require(Self.golden)
        for c in golden.and {
            let expected = c.parts.compactMap { p -> ComposedPrompt.Part? in
                guard case let .text(t) = p[0], case let .number(w) = p[1] else { return nil }
                return ComposedPrompt.Part(text: t, weight: Float(w))
            }
            #expect(ComposedPrompt(c.prompt).parts == expected, "\(c.prompt.debugDescription)")
        }
    }

    @Test("the text at each model call follows A1111's reconstruct_cond_batch")
    func calls() {
        let s = PromptSchedule("a [b:3]", steps: 10)  // [3: "a "], [10: "a b"]
        #expect((0...3).map(s.text(at:)) == ["a ", "a ", "a ", "a "])
        #expect(s.text(at: 4) == "a b" && s.text(at: 9) == "a b")
        #expect(s.text(at: 11) == "a ")  // past the last end: the first entry, as A1111
        #expect(s.texts == ["a ", "a b"])
        #expect(PromptSchedule("plain text, (emphasis:1.2)", steps: 20).entries == [.init(end: 20, text: "plain text, (emphasis:1.2)")])
    }
}
