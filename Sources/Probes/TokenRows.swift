import Diffusion

/// The prompt's tokens as rows for run.json: position in the conditioning, id, text, weight,
/// chunk and word index.
public enum TokenRows {
    public static func rows(_ r: PromptChunker.Result, tokenizer: (Int32) -> String) -> [[String: Any]] {
        var rows: [[String: Any]] = []
        for (c, chunk) in r.chunks.enumerated() {
            for (i, id) in chunk.ids.enumerated() {
                let piece = chunk.pieceIndex[i]
                rows.append([
                    "position": c * chunk.ids.count + i, "id": Int(id), "text": tokenizer(id),
                    "weight": Double(chunk.weights[i]), "chunk": c, "piece": piece,
                ])
            }
        }
        return rows
    }
}
