@testable import Diffusion
import Testing

/// Inputs the fuzz targets (Tools/fuzz.sh) found crashing or stalling the prompt readers, kept
/// so the fixes stay fixed.
@Suite("Fuzz regressions: prompts")
struct PromptFuzzRegressionTests {
    @Test("a step far past Int's range is clamped, not converted (schedule target: \\t[a:1e308])")
    func hugeStep() {
        #expect(PromptSchedule("[a:1e308]", steps: 10).texts == [""])
        #expect(PromptSchedule("[a:-1e308]", steps: 10).texts == ["a"])
        #expect(PromptSchedule("[a:b:9223372036854775807]", steps: 10).texts == ["a"])
    }

    @Test("100 000 nested brackets: no stack overflow, the deep part read as text")
    func deepBrackets() {
        let n = 100_000
        let square = String(repeating: "[", count: n) + "a" + String(repeating: "]", count: n)
        #expect(PromptSchedule(square, steps: 10).texts.count == 1)
        // Only the innermost edits, within the limit, still read as edits.
        let edits = String(repeating: "[a:", count: 5_000) + "b" + String(repeating: ":1]", count: 5_000)
        #expect(PromptSchedule(edits, steps: 10).texts.count == 2)
        // Within the limit the grammar still reads nested edits.
        let shallow = String(repeating: "[", count: 20) + "[a:b:5]" + String(repeating: "]", count: 20)
        #expect(PromptSchedule(shallow, steps: 10).texts.count == 2)
    }

    @Test("many literal brackets join into one text item in linear time")
    func manyLiteralBrackets() {
        let prompt = String(repeating: "]", count: 200_000)
        #expect(ScheduleParser(prompt).parse() == [.text(prompt)])
    }
}

@Suite("Fuzz regressions: infotext")
struct InfotextFuzzRegressionTests {
    @Test("a value holding a carriage return is quoted on one line (infotext target)")
    func carriageReturnInValue() {
        let text = "a witch\nSteps: 4, Sampler: euler_a, CFG scale: 7.5, Seed: 1, Size: 64x96, Pareidolia remedy: \"alex,cora; boxes 0,0,0.5,1; unti\\r1; stage full\""
        let parsed = Infotext.parse(text)
        #expect(parsed.value("Pareidolia remedy")?.contains("\r") == true)
        do { _ = try Separation(infotext: parsed.value("Pareidolia remedy") ?? "") } catch {
            #expect(!"\(error)".contains("\r") && "\(error)".contains("\\r"))
        }
        #expect(!Infotext.ReadError(description: "a\nb\rc").description.contains("\n"))
    }
}

@Suite("Fuzz regressions: emphasis")
struct EmphasisFuzzRegressionTests {
    @Test("100 000 brackets of emphasis parse without recursion (prompt target)")
    func manyBrackets() {
        let n = 100_000
        let pieces = PromptParser.parse(String(repeating: "(", count: n) + "a" + String(repeating: ")", count: n))
        #expect(pieces.map(\.text) == ["a"])
        #expect(PromptParser.parse(String(repeating: "[", count: n)).map(\.text) == [""])
    }
}
