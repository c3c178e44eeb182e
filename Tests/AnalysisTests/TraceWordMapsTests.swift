import Checkpoints
import Foundation
import Testing
@testable import Analysis
import Tensors

/// Synthetic traces (run.json + attention.safetensors as generate --trace writes them) whose two
/// subjects' maps meet, and whose maps stay apart.
@Suite("Trace word maps and merges")
struct TraceWordMapsTests {
    /// Positions: 0 BOS, 1 "a", 2–3 embedding "alex" (two vectors), 4 "and", 5 "co", 6 "ra" (one word), 7 EOS.
    static func writeTrace(merging: Bool) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-merge-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let rows: [[String: Any]] = [
            ["position": 0, "text": "<|startoftext|>", "piece": -1],
            ["position": 1, "text": "a", "piece": 0, "word": "a", "word_index": 0],
            ["position": 2, "text": "alex", "piece": 0], ["position": 3, "text": "alex", "piece": 0],
            ["position": 4, "text": "and", "piece": 0, "word": "and", "word_index": 1],
            ["position": 5, "text": "co", "piece": 0, "word": "cora", "word_index": 2],
            ["position": 6, "text": "ra", "piece": 0, "word": "cora", "word_index": 2],
            ["position": 7, "text": "<|endoftext|>", "piece": -1],
        ]
        try JSONSerialization.data(withJSONObject: ["tokens": rows]).write(to: dir.appendingPathComponent("run.json"))
        let (e, t, side) = (8, 8, 12)
        let cross = Tensor(zeros: [e, t, side, side])  // [E, T, h, w]
        func blob(_ ev: Int, _ pos: Int, _ cx: Double) {
            for p in 0..<(side * side) {
                let dx = Double(p % side) - cx, dy = Double(p / side) - 6
                cross.pointer[(ev * t + pos) * side * side + p] += Float(exp(-(dx * dx + dy * dy) / 8))
            }
        }
        for ev in 0..<e {
            let together = merging && ev >= 5
            blob(ev, 2, together ? 6 : 2); blob(ev, 3, together ? 6 : 2.5)   // alex's two vectors
            blob(ev, 5, together ? 6.5 : 10); blob(ev, 6, together ? 6 : 9.5)  // cora's sub-tokens
            for pos in [1, 4] { for p in 0..<(side * side) { cross.pointer[(ev * t + pos) * side * side + p] = 0.05 } }
        }
        try SafeTensorsWriter.write(["cross": cross], to: dir.appendingPathComponent("attention.safetensors").path)
        return dir.path
    }

    /// The maps of a synthetic trace; its folder is removed once they are read.
    static func maps(merging: Bool) throws -> TraceWordMaps {
        let dir = try writeTrace(merging: merging)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        return try TraceWordMaps(directory: dir)
    }

    @Test func wordsAndMaps() throws {
        let maps = try Self.maps(merging: false)
        #expect(maps.words.map(\.label) == ["a", "alex", "and", "cora"])
        #expect(maps.words.map(\.positions) == [[1], [2, 3], [4], [5, 6]])
        #expect(maps.evaluations == 8 && maps.height == 12 && maps.width == 12)
        #expect(maps.index(of: "Cora") == 3)
    }

    @Test func mergingAndApart() throws {
        for merging in [true, false] {
            let maps = try Self.maps(merging: merging)
            let timeline = MergeTimeline(a: maps.maps[1], b: maps.maps[3])
            #expect(timeline.mergedFrom == (merging ? 5 : nil), "merging \(merging): \(timeline.overlaps.map(\.iou))")
        }
    }

    @Test func pairStudyVerdict() throws {
        let together = try Self.writeTrace(merging: true), apart = try Self.writeTrace(merging: false)
        defer { for d in [together, apart] { try? FileManager.default.removeItem(atPath: d) } }
        let one = try PairStudy(folders: [together], a: "alex", b: "cora")
        #expect(one.verdict.mergedCount == 1)
        #expect(one.verdict.sentence.hasPrefix("alex and cora compete for one region from evaluation 6 on"))
        // The synthetic run.json names no model: the verdict says so instead of giving cosines.
        #expect(one.verdict.inputCosine == nil && one.note != nil)
        let sweep = try PairStudy(folders: [together, apart], a: "alex", b: "cora")
        #expect(sweep.verdict.mergedCount == 1 && sweep.timelines.count == 2)
        #expect(sweep.verdict.sentence.contains("in 1 of 2 seeds (from evaluation 6 on)"))
        #expect(sweep.shares.allSatisfy { $0.count == 8 })
        #expect(throws: PairStudy.Failure.self) { try PairStudy(folders: [apart], a: "alex", b: "nobody") }
    }

    @Test func notATrace() {
        #expect(throws: TraceWordMaps.Failure.self) { try TraceWordMaps(directory: "/nonexistent") }
    }
}
