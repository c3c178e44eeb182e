import Analysis
import ArgumentParser
import Foundation

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Do two subjects land on one region? Their attention maps' overlap at every evaluation of a trace (or sweep).")

    @Option(name: .long, help: "The two words or embedding triggers, comma-separated (e.g. corajr,alex).")
    var pair: String

    @Option(name: .long, help: "Region threshold of each map's range (DAAM's τ).")
    var threshold: Float = 0.4

    @Flag(name: .long, help: "Print JSON instead of tables.")
    var json = false

    @Argument(help: "Trace folders (generate --trace), or sweep folders holding one per seed.")
    var traces: [String]

    func run() throws {
        let names = pair.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard names.count == 2, !names[0].isEmpty, !names[1].isEmpty else { throw CLIError("--pair \(pair): expected two words, A,B") }
        let folders = traces.flatMap(TraceWordMaps.traceFolders)
        guard !folders.isEmpty else { throw CLIError("\(traces.joined(separator: " ")): no trace (a folder with run.json) found") }
        var results: [[String: Any]] = []
        var merged = 0
        for folder in folders {
            let t: TraceWordMaps
            do { t = try TraceWordMaps(directory: folder) } catch { throw CLIError("\(error)") }
            guard let a = t.index(of: names[0]), let b = t.index(of: names[1]) else {
                throw CLIError("\(folder): the prompt has no word '\(t.index(of: names[0]) == nil ? names[0] : names[1])' (its words: \(t.words.map(\.label).joined(separator: ", ")))")
            }
            let timeline = MergeTimeline(a: t.maps[a], b: t.maps[b], threshold: threshold)
            let shares = (0..<t.evaluations).map { e in areaShares(t.maps.map { $0[e] }) }
            if timeline.mergedFrom != nil { merged += 1 }
            let evaluations: [[String: Any]] = timeline.overlaps.enumerated().map { e, o in
                ["evaluation": e, "iou": o.iou, "pearson": o.pearson, "share_a": shares[e][a], "share_b": shares[e][b]]
            }
            results.append(["trace": folder, "merged_from": timeline.mergedFrom.map { $0 as Any } ?? NSNull(), "evaluations": evaluations])
            if json { continue }
            print("\(folder): \(names[0]) vs \(names[1]), \(t.evaluations) evaluations, maps \(t.height)×\(t.width)")
            print("  eval    IoU  Pearson  area \(names[0])  area \(names[1])")
            for (e, o) in timeline.overlaps.enumerated() {
                print(String(format: "  %4d  %5.2f  %7.2f  %6.1f%%  %6.1f%%", e, o.iou, o.pearson, shares[e][a] * 100, shares[e][b] * 100))
            }
            if let k = timeline.mergedFrom {
                print("  verdict: \(names[0]) and \(names[1]) compete for one region from evaluation \(k) on (IoU ≥ 0.5 and correlation ≥ 0.5 to the end)")
            } else {
                let last = timeline.overlaps.last
                print("  verdict: \(names[0]) and \(names[1]) end on separate regions (final IoU \(String(format: "%.2f", last?.iou ?? 0)), correlation \(String(format: "%.2f", last?.pearson ?? 0)))")
            }
        }
        if json {
            let object: [String: Any] = ["pair": names, "threshold": Double(threshold), "traces": results, "merged": merged]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else if folders.count > 1 {
            print("\(merged) of \(folders.count) traces end with \(names[0]) and \(names[1]) on one region")
        }
    }
}
