import Checkpoints
import Foundation
import Testing
@testable import Analysis
import Tensors

/// Trace folders (as copied from another machine) that read outside their maps or would loop
/// without end; the trace target of Tools/fuzz.sh reads them, these tests keep them read safely.
@Suite("Fuzz regressions: trace folders")
struct TraceFuzzRegressionTests {
    func trace(rows: [[String: Any]], cross: Tensor) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try JSONSerialization.data(withJSONObject: ["tokens": rows]).write(to: dir.appendingPathComponent("run.json"))
        try SafeTensorsWriter.write(["cross": cross], to: dir.appendingPathComponent("attention.safetensors").path)
        return dir.path
    }

    @Test("negative token positions are skipped, not read before the maps (was an out-of-bounds read)")
    func negativePosition() throws {
        let dir = try trace(rows: [["position": -100, "id": 49406, "piece": -1],
                                   ["position": -5, "piece": 0, "word": "cat", "word_index": 0],
                                   ["position": 1, "piece": 0, "word": "hat", "word_index": 1]],
                            cross: Tensor(shape: [2, 3, 2, 2], repeating: 1))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let maps = try TraceWordMaps(directory: dir)
        #expect(maps.words.map(\.label) == ["hat"])
        #expect(maps.specialMaps.isEmpty)
    }

    @Test("a position named by many rows counts once (rows cannot multiply the maps' memory)")
    func repeatedPosition() throws {
        let rows = (0..<1000).map { i -> [String: Any] in ["position": 1, "piece": 0, "word": "w\(i)", "word_index": i] }
        let dir = try trace(rows: rows, cross: Tensor(shape: [2, 3, 2, 2], repeating: 1))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(try TraceWordMaps(directory: dir).words.count == 1)
    }

    @Test("maps of a zero size are refused: [10^18, 3, 0, 0] holds no bytes but would loop 10^18 times")
    func zeroSizedMaps() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-fuzz-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try JSONSerialization.data(withJSONObject: ["tokens": [["position": 1, "piece": 0, "word": "a", "word_index": 0]]])
            .write(to: dir.appendingPathComponent("run.json"))
        let header = #"{"cross":{"dtype":"F32","shape":[1000000000000000000,3,0,0],"data_offsets":[0,0]}}"#
        var data = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
        data.append(Data(header.utf8))
        try data.write(to: dir.appendingPathComponent("attention.safetensors"))
        #expect(throws: TraceWordMaps.Failure.self) { try TraceWordMaps(directory: dir.path) }
    }
}
