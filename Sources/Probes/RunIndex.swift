import Foundation
import Imaging

/// `runs.json`: the list of traces one command wrote for several prompts × seeds, at the root of
/// its trace folder, so a report (or a notebook) can take them as a whole. Paths are relative to
/// the folder holding the index, so the folder can be moved or copied as one.
///
///     {"format": "pareidolia-runs", "version": 1,
///      "runs": [{"prompt": "…", "prompt_index": 0, "seed": 3754952516,
///                "trace": "p1-a-red-circle", "image": "../out-p1-a-red-circle.png"}, …]}
public struct RunIndex: Equatable, Sendable {
    public static let fileName = "runs.json"
    public static let format = "pareidolia-runs"

    public struct Entry: Equatable, Sendable {
        public var prompt: String
        /// Which of the command's prompts (0-based, in the order given).
        public var promptIndex: Int
        public var seed: UInt64
        /// The trace folder, relative to the index's folder.
        public var trace: String
        /// The PNG, relative to the index's folder (nil when unknown).
        public var image: String?

        public init(prompt: String, promptIndex: Int, seed: UInt64, trace: String, image: String?) {
            self.prompt = prompt
            self.promptIndex = promptIndex
            self.seed = seed
            self.trace = trace
            self.image = image
        }
    }

    public var runs: [Entry]

    public init(runs: [Entry]) { self.runs = runs }

    public struct IndexError: Error, CustomStringConvertible { public let description: String }

    /// The index in `folder`, or nil when it has none.
    public static func read(folder: String) throws -> RunIndex? {
        let path = URL(fileURLWithPath: folder).appendingPathComponent(fileName).path
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        func bad(_ why: String) -> IndexError { IndexError(description: "\(path): \(why)") }
        guard let data = FileManager.default.contents(atPath: path) else { throw bad("cannot be read") }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw bad("expected a JSON object") }
        guard root["format"] as? String == format else { throw bad("expected \"format\": \"\(format)\"") }
        guard let list = root["runs"] as? [[String: Any]] else { throw bad("expected a \"runs\" list of objects") }
        let runs = try list.enumerated().map { i, r -> Entry in
            guard let prompt = r["prompt"] as? String, let trace = r["trace"] as? String, !trace.isEmpty,
                  let seed = (r["seed"] as? NSNumber)?.uint64Value else {
                throw bad("run \(i + 1): expected \"prompt\", \"seed\" and \"trace\"")
            }
            // A relative path that climbs out of the folder would let an index point anywhere.
            guard !trace.hasPrefix("/"), !trace.split(separator: "/").contains("..") else {
                throw bad("run \(i + 1): \"trace\" must be a folder inside \(folder)")
            }
            return Entry(prompt: prompt, promptIndex: (r["prompt_index"] as? NSNumber)?.intValue ?? 0, seed: seed,
                         trace: trace, image: r["image"] as? String)
        }
        return RunIndex(runs: runs)
    }

    /// The listed trace folders, as paths from `folder`.
    public func traceFolders(in folder: String) -> [String] {
        runs.map { URL(fileURLWithPath: folder).appendingPathComponent($0.trace).path }
    }

    /// Writes the index into `folder` atomically.
    public func write(folder: String) throws {
        let json: [String: Any] = [
            "format": Self.format, "version": 1,
            "runs": runs.map { r -> [String: Any] in
                var o: [String: Any] = ["prompt": r.prompt, "prompt_index": r.promptIndex, "seed": r.seed, "trace": r.trace]
                if let image = r.image { o["image"] = image }
                return o
            },
        ]
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: URL(fileURLWithPath: folder).appendingPathComponent(Self.fileName).path)
    }
}
