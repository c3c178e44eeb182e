import Checkpoints
import Foundation
import Testing
@testable import Analysis
import Tensors
import TestSupport

/// Synthetic traces (TestSupport's SyntheticMergeTrace) whose two subjects' maps meet, and whose
/// maps stay apart.
@Suite("Trace word maps and merges")
struct TraceWordMapsTests {
    static func writeTrace(merging: Bool) throws -> String { try SyntheticMergeTrace.write(merging: merging) }

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

    /// The remedy's command names a whole sweep by its folder, relative to the working directory,
    /// and keeps the seed folders where they are not all of the sweep's.
    @Test func commandLineFolders() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cmdfolders-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let sweep = root + "/demo/trace"
        for seed in ["11", "22"] { try FileManager.default.createDirectory(atPath: sweep + "/" + seed, withIntermediateDirectories: true) }
        let index = #"{"format": "pareidolia-runs", "version": 1, "runs": [{"prompt": "p", "prompt_index": 0, "seed": 11, "trace": "11"}, {"prompt": "p", "prompt_index": 0, "seed": 22, "trace": "22"}]}"#
        try Data(index.utf8).write(to: URL(fileURLWithPath: sweep + "/runs.json"))
        let seeds = [sweep + "/11", sweep + "/22"]
        #expect(MergeVerdict.commandLineFolders(seeds, workingDirectory: root) == ["demo/trace"])
        #expect(MergeVerdict.commandLineFolders(seeds, workingDirectory: "/elsewhere") == [sweep])
        #expect(MergeVerdict.commandLineFolders([seeds[0]], workingDirectory: root) == ["demo/trace/11"])
        try FileManager.default.createDirectory(atPath: sweep + "/33", withIntermediateDirectories: true)
        #expect(MergeVerdict.commandLineFolders(seeds + [sweep + "/33"], workingDirectory: root) == ["demo/trace/11", "demo/trace/22", "demo/trace/33"])
    }

    @Test func notATrace() {
        #expect(throws: TraceWordMaps.Failure.self) { try TraceWordMaps(directory: "/nonexistent") }
    }
}
