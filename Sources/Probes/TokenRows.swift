import Diffusion
import Models

/// The prompt's conditioning positions as run.json rows: position, id, text, weight, chunk,
/// word and word index (absent for start/end/padding), piece.
public enum TokenRows {
    public static func rows(_ r: PromptChunker.Result, tokenizer: CLIPTokenizer) -> [[String: Any]] {
        r.rows(tokenizer: tokenizer).map { t in
            var row: [String: Any] = ["position": t.position, "id": Int(t.id), "text": t.text,
                                      "weight": Double(t.weight), "chunk": t.chunk, "piece": t.piece]
            if let w = t.word, let i = t.wordIndex { row["word"] = w; row["word_index"] = i }
            return row
        }
    }
}
