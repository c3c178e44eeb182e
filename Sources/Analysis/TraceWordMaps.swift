import Checkpoints
import Foundation
import Probes
import Tensors

/// A trace's cross-attention maps per prompt word, per evaluation (docs/TRACE.md): the DAAM
/// aggregate `cross` [E, T, h, w] averaged over each word's sub-token positions; an embedding
/// trigger is one word (all the rows its vectors fill). Start, end and padding are left out.
public struct TraceWordMaps {
    public let directory: String
    /// Words in prompt order: the label ("witch", or the trigger "corajr") and its positions.
    public let words: [(label: String, positions: [Int])]
    /// maps[word][evaluation] = [h·w]
    public let maps: [[[Float]]]
    public let height: Int, width: Int
    public var evaluations: Int { maps.first?.count ?? 0 }
    /// The start token's and the first end token's maps per evaluation, [evaluation][h·w]: DAAM
    /// shows them apart from the words (the start token soaks up most of the attention).
    public let specialMaps: [(label: String, maps: [[Float]])]

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public init(directory: String) throws {
        self.directory = directory
        let runURL = URL(fileURLWithPath: directory).appendingPathComponent("run.json")
        guard let data = try? Data(contentsOf: runURL),
              let run = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let tokens = run["tokens"] as? [[String: Any]]
        else { throw Failure(description: "\(runURL.path): not a Pareidolia trace (expected run.json with tokens)") }
        let attentionPath = URL(fileURLWithPath: directory).appendingPathComponent("attention.safetensors").path
        let cross: Tensor
        do {
            let file = try SafeTensorsFile(path: attentionPath)
            guard let entry = file.tensors["cross"] else { throw CheckpointError(file: "attention.safetensors", "has no tensor 'cross'") }
            cross = try entry.float32()
        } catch {
            throw Failure(description: "\(attentionPath): no cross-attention maps (was the run traced with --trace-attention off?): \(error)")
        }
        // No zero size: [10^18, 77, 0, 0] holds no bytes, yet the loops below would run 10^18 times.
        guard cross.rank == 4, !cross.shape.contains(0) else {
            throw Failure(description: "\(attentionPath): cross is \(cross.shape), expected [E, T, h, w] with no zero size")
        }
        let (e, t, h, w) = (cross.shape[0], cross.shape[1], cross.shape[2], cross.shape[3])

        // Group content positions into words: by word index, or by the trigger for embedding rows.
        var order: [String] = [], positions: [String: [Int]] = [:], labels: [String: String] = [:]
        // A run.json from elsewhere is checked against the maps: each position inside them and in
        // one word only (rows naming one position many times would multiply the maps' memory).
        var taken = Set<Int>()
        for row in tokens {
            guard let p = row["position"] as? Int, let piece = row["piece"] as? Int, piece >= 0, (0..<t).contains(p),
                  taken.insert(p).inserted else { continue }
            let key: String, label: String
            if let wi = row["word_index"] as? Int, let word = row["word"] as? String {
                (key, label) = ("w\(wi)", word)
            } else if let text = row["text"] as? String {
                (key, label) = ("e\(text)#\(piece)", text)  // an embedding's rows
            } else { continue }
            if positions[key] == nil { order.append(key); labels[key] = label }
            positions[key, default: []].append(p)
        }
        words = order.map { (labels[$0]!, positions[$0]!) }
        maps = words.map { word in
            (0..<e).map { ev in
                var m = [Float](repeating: 0, count: h * w)
                for p in word.positions {
                    let src = cross.pointer + (ev * t + p) * h * w
                    for i in 0..<(h * w) { m[i] += src[i] }
                }
                let n = Float(word.positions.count)
                return m.map { $0 / n }
            }
        }
        (height, width) = (h, w)
        let start = tokens.first { ($0["id"] as? Int) == 49406 }?["position"] as? Int
        let end = tokens.first { ($0["id"] as? Int) == 49407 }?["position"] as? Int
        specialMaps = [("start token", start), ("end token", end)].compactMap { label, p in
            guard let p, (0..<t).contains(p) else { return nil }
            return (label, (0..<e).map { ev in Array(UnsafeBufferPointer(start: cross.pointer + (ev * t + p) * h * w, count: h * w)) })
        }
    }

    /// The first word labelled `label` (case-insensitive), its index.
    public func index(of label: String) -> Int? {
        words.firstIndex { $0.label.lowercased() == label.lowercased() }
    }

    /// Trace folders under `path`: itself when it holds run.json; the traces its runs.json lists
    /// (several prompts × seeds, `generate --prompt A --prompt B`); else its sub-folders that hold
    /// run.json (a seed sweep).
    public static func traceFolders(_ path: String) throws -> [String] {
        let fm = FileManager.default
        if fm.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("run.json").path) { return [path] }
        if let index = try RunIndex.read(folder: path) { return index.traceFolders(in: path) }
        let children = (try? fm.contentsOfDirectory(atPath: path)) ?? []
        return children.sorted().map { URL(fileURLWithPath: path).appendingPathComponent($0).path }
            .filter { fm.fileExists(atPath: URL(fileURLWithPath: $0).appendingPathComponent("run.json").path) }
    }
}
