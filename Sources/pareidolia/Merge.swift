import Analysis
import ArgumentParser
import Foundation
import Tensors

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Do two subjects land on one region? Their attention maps' overlap at every evaluation of a trace (or sweep), with their vectors' cosine in and out of context.")

    @Option(name: .long, help: "The two words or embedding triggers, comma-separated (e.g. corajr,alex).")
    var pair: String

    @Option(name: .long, help: "Region threshold of each map's range (DAAM's τ).")
    var threshold: Float = 0.4

    @Option(name: .long, help: "The run's model, for the cosines (default: the one run.json names).")
    var model: String?

    @Flag(name: .long, help: "Print JSON instead of tables.")
    var json = false

    @Argument(help: "Trace folders (generate --trace), or sweep folders holding one per seed.")
    var traces: [String]

    func run() throws {
        let names = pair.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard names.count == 2, !names[0].isEmpty, !names[1].isEmpty else { throw CLIError("--pair \(pair): expected two words, A,B") }
        let folders = try traceFolders(traces)
        try BLAS.load()
        let study: PairStudy
        do { study = try PairStudy(folders: folders, a: names[0], b: names[1], threshold: threshold, model: model) } catch { throw CLIError("\(error)") }
        let v = study.verdict
        if json {
            let results: [[String: Any]] = zip(folders, zip(study.timelines, study.shares)).map { folder, ts in
                let (timeline, shares) = ts
                let evaluations: [[String: Any]] = timeline.overlaps.enumerated().map { e, o in
                    ["evaluation": e, "iou": o.iou, "pearson": o.pearson, "share_a": shares[e].a, "share_b": shares[e].b]
                }
                return ["trace": folder, "merged_from": timeline.mergedFrom.map { $0 as Any } ?? NSNull(), "evaluations": evaluations]
            }
            var object: [String: Any] = ["pair": names, "threshold": Double(threshold), "traces": results, "merged": v.mergedCount,
                                         "verdict": v.sentence]
            object["input_cosine"] = v.inputCosine.map { Double($0) as Any } ?? NSNull()
            object["contextual_cosine"] = v.contextualCosine.map { Double($0) as Any } ?? NSNull()
            if let note = study.note { object["note"] = note }
            if let remedy = v.remedyCommand(traces: traces) { object["remedy"] = remedy }
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for (folder, (timeline, shares)) in zip(folders, zip(study.timelines, study.shares)) {
            print("\(folder): \(names[0]) vs \(names[1]), \(timeline.overlaps.count) evaluations")
            print("  eval    IoU  Pearson  area \(names[0])  area \(names[1])")
            for (e, o) in timeline.overlaps.enumerated() {
                print(String(format: "  %4d  %5.2f  %7.2f  %6.1f%%  %6.1f%%", e + 1, o.iou, o.pearson, shares[e].a * 100, shares[e].b * 100))
            }
            if let k = timeline.mergedFrom {
                print("  \(names[0]) and \(names[1]) compete for one region from evaluation \(k + 1) on (IoU ≥ 0.5 and correlation ≥ 0.5 to the end)")
            } else {
                let last = timeline.overlaps.last
                print("  \(names[0]) and \(names[1]) end on separate regions (final IoU \(String(format: "%.2f", last?.iou ?? 0)), correlation \(String(format: "%.2f", last?.pearson ?? 0)))")
            }
        }
        print("verdict: \(v.sentence)")
        if let note = study.note { print("(\(note))") }
        if let remedy = v.remedyCommand(traces: traces) { print("try the remedy: \(remedy)") }
    }
}
