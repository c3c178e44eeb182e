import Checkpoints
import Foundation
import Tensors

/// A synthetic trace folder (run.json + attention.safetensors as `generate --trace` writes them)
/// of "a alex and cora", whose two subjects' maps meet from evaluation 6 on (`merging`) or stay
/// apart: for the merge verdict's tests and the merge page's. The caller removes the folder.
public enum SyntheticMergeTrace {
    /// Positions: 0 BOS, 1 "a", 2–3 embedding "alex" (two vectors), 4 "and", 5 "co", 6 "ra" (one word), 7 EOS.
    public static func write(merging: Bool) throws -> String {
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
}
