import Analysis
import ArgumentParser
import Diffusion
import Foundation
import Probes
import Reports
import Tensors
import Workbench

struct Remedy: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Re-run traces with the merge remedy (bounded regional attention, docs/REMEDY.md) on two subjects: their own seed, prompt, model and sampler; count how often the two end apart, before and after; write a before/after report (OUT/report).")

    @Argument(help: "Trace folders (generate --trace), sweep folders, or a folder with runs.json.")
    var traces: [String]

    @Option(name: .long, help: "The two subjects, words or embedding triggers, left to right (A,B).")
    var pair: String

    @Option(name: .long, help: "halves (default: a column each), auto (from a run of the same seed with the subjects' class words) or boxes \"A=x0,y0,x1,y1;B=…\".")
    var regions = "halves"

    @Option(name: .long, help: "With --regions auto: the class words, A,B (default: each embedding's nearest vocabulary word).")
    var classes: String?

    @Option(name: .long, help: "The share of evaluations bounded, from the first.")
    var until: Float = Separation.defaultUntil

    @Flag(name: .long, help: "Also run the partial remedies (text encoding only; + cross-attention), to tell which channel carried the merge.")
    var ablate = false

    @Option(name: .long, help: "Output folder (default: the first trace's folder + -remedy).")
    var out: String?

    @Option(name: .long, help: "Load this model instead of the one each run.json names.")
    var model: String?

    @Flag(name: .long, help: "Write no report (it decodes x̂₀ of every evaluation of every run, before and after).")
    var noReport = false

    func run() throws {
        let subjects = pair.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard subjects.count == 2 else { throw CLIError("--pair \(pair): expected two subjects, A,B") }
        let folders = try traceFolders(traces)
        let output = out ?? URL(fileURLWithPath: traces[0]).standardizedFileURL.path + "-remedy"
        var request = MergeRemedy.Request(traces: folders, subjects: subjects, output: output)
        switch regions {
        case "halves": request.regions = .halves
        case "auto":
            let words = classes.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            if let words, words.count != 2 { throw CLIError("--classes \(classes!): expected two words, A,B") }
            request.regions = .auto(classes: words)
        default:
            do { request.regions = .boxes(try Separation.parseBoxes(regions, subjects: subjects)) } catch { throw CLIError("\(error)") }
        }
        if classes != nil, regions != "auto" { FileHandle.standardError.write(Data("warning: --classes does nothing without --regions auto\n".utf8)) }
        request.until = until
        request.ablate = ablate
        request.model = model
        try BLAS.load()
        let remedy: MergeRemedy
        do { remedy = try MergeRemedy(request) } catch { throw CLIError("\(error)") }
        var bar: ProgressBar?
        Interrupt.install()
        let result: (outcomes: [MergeRemedy.Outcome], counts: MergeRemedy.Counts)
        do {
            result = try remedy.run(observers: { label in
                bar?.finish()
                let b = ProgressBar(label: label)
                bar = b
                return [b]
            }, shouldStop: { Interrupt.requested })
        } catch {
            bar?.finish()
            throw CLIError("\(error)")
        }
        bar?.finish()
        for o in result.outcomes {
            let boxes = o.boxes.map { "[" + $0.map { String(format: "%.2f", $0) }.joined(separator: ",") + "]" }.joined(separator: " ")
            print("seed \(o.seed): regions \(o.regionSource) \(boxes); after: \(o.runs[.full].map { DisplayPath.of($0) } ?? "")")
        }
        print(result.counts.sentence)
        if let channel = result.counts.channel { print("the merge travelled through \(channel)") }
        if let advice = result.counts.advice { print(advice) }
        print("wrote \(DisplayPath.of(output)) (runs.json lists the runs)")
        guard !noReport else { return }
        let reportBar = ProgressBar(label: "report")
        let summary: ReportSummary
        do {
            summary = try remedy.report(result.outcomes, counts: result.counts) { what, done, total in reportBar.tick(label: what, done: done, total: total) }
        } catch { reportBar.finish(); throw CLIError("\(error)") }
        reportBar.finish()
        print(String(format: "wrote the report %@/index.html (and report.pdf): decodes %.1f s, drawing %.1f s", DisplayPath.of(summary.directory), summary.decodeSeconds, summary.drawSeconds))
    }
}
