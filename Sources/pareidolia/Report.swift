import Analysis
import ArgumentParser
import Foundation
import Probes
import Reports
import Tensors

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw a trace (or a seed sweep) as a report: denoising animation, per-word heat maps, attention over time, word overlap; index.html and report.pdf. Traces of different prompts make a comparison: the prompts' word diff, images and animation side by side, each word's map in every run, where the runs part.")

    @Argument(help: "Trace folders (generate --trace), or a sweep folder holding one per seed: one report over all of them (a comparison when their prompts differ; the first prompt given is the one the others are compared with).")
    var traces: [String]

    @Option(name: .long, help: "Output folder (default: the first TRACE_DIR/report).")
    var out: String?

    @Option(name: .long, help: "Only these words' heat maps, comma-separated (prompt words or embedding triggers).")
    var words: String?

    @Option(name: .long, help: "x̂₀ pictures: full (decoded with the run's VAE) or cheap (A1111's latent map, seconds).")
    var previews = "full"

    @Option(name: .long, help: "Decode with this model's VAE instead of the one run.json names.")
    var model: String?

    @Option(name: .long, help: "Heat-map normalisation: word (each map min–max on its own) or global (one range for all words).")
    var normalise = "word"

    @Option(name: .long, help: "Heat-map colours: viridis (perceptual) or jet (DAAM's).")
    var colormap = "viridis"

    func run() throws {
        guard let mode = PreviewMode(rawValue: previews) else { throw CLIError("--previews \(previews): expected full or cheap") }
        var options = ReportOptions()
        options.previews = mode
        options.model = model
        switch normalise {
        case "word": options.normalisation = .perWord
        case "global": options.normalisation = .global
        default: throw CLIError("--normalise \(normalise): expected word or global")
        }
        switch colormap {
        case "viridis": options.colourMap = .viridis
        case "jet": options.colourMap = .jet
        default: throw CLIError("--colormap \(colormap): expected viridis or jet")
        }
        if let words {
            let list = words.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !list.isEmpty else { throw CLIError("--words \(words): expected comma-separated words") }
            options.words = list
        }
        let folders = try traceFolders(traces)
        let output = out ?? URL(fileURLWithPath: traces[0]).appendingPathComponent("report").path
        try BLAS.load()
        let bar = ProgressBar(label: "decode")
        let summary: ReportSummary
        do {
            summary = try ReportBuilder.build(traces: folders, output: output, options: options) { what, done, total in
                bar.tick(label: what, done: done, total: total)
            }
        } catch { bar.finish(); throw CLIError("\(error)") }
        print(String(format: "wrote %@ (%d trace%@, %d evaluations, %d files): decodes %.1f s, drawing %.1f s",
                     DisplayPath.of(summary.directory), summary.traces, summary.traces == 1 ? "" : "s", summary.evaluations, summary.files.count,
                     summary.decodeSeconds, summary.drawSeconds))
        for line in summary.lines { print("  " + line) }
    }
}
