import Analysis
import Diffusion
import Foundation
import Imaging
import Models

/// What `pareidolia report` draws, and how.
public struct ReportOptions {
    /// Only these words' heat maps (prompt words or embedding triggers); nil: every word.
    public var words: [String]?
    public var previews: PreviewMode = .full
    /// The model whose VAE decodes x̂₀; nil: the one in run.json (or the embedded default when
    /// run.json's is gone and its hash is the default's).
    public var model: String?
    public var normalisation: HeatMapNormalisation = .perWord
    /// Heat-map colours: viridis (perceptual, the default) or DAAM's jet.
    public var colourMap: ColorMap = .viridis
    public init() {}
}

/// Where the time went, for the CLI to print.
public struct ReportSummary {
    public let directory: String
    public let traces: Int
    public let evaluations: Int
    public let decodeSeconds: Double
    public let drawSeconds: Double
    public let files: [String]
    /// What a comparison found, a line each (the prompts' word diffs, where the runs part); empty
    /// for one prompt's report.
    public var lines: [String] = []
}

/// Builds a report folder from one trace or a sweep: the denoising animation (GIF and frames), a
/// contact sheet, per-word heat maps, attention over time, the word-overlap matrix, the run card;
/// index.html and report.pdf. Traces of different prompts (one model and size) make a comparison
/// instead (ComparisonDrawing.swift). Written into a sibling temporary folder and moved into place
/// at the end, so a failed report leaves nothing half-written.
public enum ReportBuilder {
    /// Progress events: (what, done, total).
    public typealias Progress = (String, Int, Int) -> Void

    /// Marks a folder as a report, the only kind of folder a new report replaces.
    static let markerFile = ".pareidolia-report"

    public static func build(traces dirs: [String], output: String, options: ReportOptions = ReportOptions(),
                             progress: Progress = { _, _, _ in }) throws -> ReportSummary {
        let traces = try dirs.map { try ReportTrace(directory: $0) }
        guard !traces.isEmpty else { throw ReportError("no traces given") }
        // Different prompts: a comparison (checked before the decodes); one prompt: a sweep, whose
        // report draws one prompt's words for every trace.
        let comparison = Comparison.isComparison(traces) ? try Comparison(traces: traces) : nil
        let words = comparison == nil ? try chosenWords(traces[0], options.words) : []
        let labels = traces[0].wordMaps?.words.map(\.label)
        for t in traces.dropFirst() where comparison == nil && t.wordMaps?.words.map(\.label) != labels {
            throw ReportError("\(t.directory): its prompt's words differ from \(traces[0].directory)'s; one report covers the seeds of one prompt (make a report per prompt)")
        }

        return try write(traces, output: output, options: options, progress: progress) { frames, work in
            if let comparison { return try drawComparison(comparison, frames: frames, options: options, into: work) }
            return (try draw(traces: traces, frames: frames, words: words, options: options, into: work), [])
        }
    }

    /// Decodes every trace's x̂₀, then lets `draw` fill a temporary folder beside `output` (its
    /// files, and the lines for the terminal), which replaces `output` whole when it is done.
    static func write(_ traces: [ReportTrace], output: String, options: ReportOptions, progress: Progress,
                      draw: (_ frames: [DenoisingFrames], _ into: URL) throws -> (files: [String], lines: [String])) throws -> ReportSummary {
        // 1. Pictures of every evaluation (the decodes are most of the cost).
        let decodeStart = Date()
        var vaes: [String: AutoencoderKL] = [:]
        let frames: [DenoisingFrames] = try traces.enumerated().map { i, t in
            var vae: AutoencoderKL?
            if options.previews == .full {
                let path = try modelPath(for: t, override: options.model)
                if vaes[path] == nil {
                    do { vaes[path] = try StableDiffusionModel.loadVAEDecoder(path) } catch { throw ReportError("\(path): cannot load its VAE to decode x̂₀ (\(error)); pass --model PATH or --previews cheap") }
                }
                vae = vaes[path]
            }
            return try DenoisingFrames(trace: t, mode: options.previews, vae: vae) { d, n in
                progress(traces.count > 1 ? "decode seed \(t.seed) (\(i + 1)/\(traces.count))" : "decode x̂₀", d, n)
            }
        }
        let decodeSeconds = Date().timeIntervalSince(decodeStart)

        let drawStart = Date()
        let out = URL(fileURLWithPath: output).standardizedFileURL
        let fm = FileManager.default
        // Only a folder an earlier report wrote is ever replaced: never a trace or anything else.
        let earlierReport = fm.fileExists(atPath: out.appendingPathComponent(markerFile).path)
            || (fm.fileExists(atPath: out.appendingPathComponent("index.html").path) && fm.fileExists(atPath: out.appendingPathComponent("report.pdf").path)
                && !fm.fileExists(atPath: out.appendingPathComponent("run.json").path))
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: out.path, isDirectory: &isFolder), !isFolder.boolValue {
            throw ReportError("--out \(out.path): a file is there; a report is a folder")
        }
        if fm.fileExists(atPath: out.path), !earlierReport {
            let contents = (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
            if !contents.isEmpty {
                throw ReportError("--out \(out.path): the folder exists and is not a Pareidolia report; choose another (a report replaces only an earlier report)")
            }
        }
        try fm.createDirectory(at: out.deletingLastPathComponent(), withIntermediateDirectories: true)
        removeAbandoned(beside: out)
        let work = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).partial-\(getpid())")
        try? fm.removeItem(at: work)
        try fm.createDirectory(at: work, withIntermediateDirectories: true)
        do {
            try Data("written by pareidolia report\n".utf8).write(to: work.appendingPathComponent(markerFile))
            var (written, lines) = try draw(frames, work)
            written.append(markerFile)
            written.sort()
            try replace(out, with: work)
            var summary = ReportSummary(directory: out.path, traces: traces.count, evaluations: traces.map(\.evaluations).reduce(0, +),
                                        decodeSeconds: decodeSeconds, drawSeconds: Date().timeIntervalSince(drawStart), files: written)
            summary.lines = lines
            return summary
        } catch {
            try? fm.removeItem(at: work)
            throw error
        }
    }

    /// The model a trace's x̂₀ is decoded with. `otherwise` ends the error's advice (the report can
    /// also go without decoding; CLIP similarity cannot).
    public static func modelPath(for t: ReportTrace, override: String?, otherwise: String = ", or --previews cheap") throws -> String {
        if let override { return override }
        let fm = FileManager.default
        if !t.modelPath.isEmpty, fm.fileExists(atPath: t.modelPath) { return t.modelPath }
        if let d = try? DefaultModel.modelPath(), ModelHash.shortHash(of: d) == t.modelHash { return d }
        throw ReportError("\(t.directory)/run.json: its model \(t.modelPath.isEmpty ? "(none recorded)" : t.modelPath) is not there; pass --model PATH to decode x̂₀ with another copy\(otherwise)")
    }

    /// Word indices into the trace's word maps, by --words (all when nil).
    static func chosenWords(_ t: ReportTrace, _ wanted: [String]?) throws -> [Int] {
        guard let maps = t.wordMaps else {
            if wanted != nil { throw ReportError("--words: \(t.directory) has no attention maps (traced with --trace-attention off)") }
            return []
        }
        guard let wanted else { return Array(maps.words.indices) }
        return try wanted.map { w in
            guard let i = maps.index(of: w) else {
                throw ReportError("--words \(w): not a word of the prompt; its words are \(maps.words.map(\.label).joined(separator: ", "))")
            }
            return i
        }
    }

    /// Partial and old folders of this output left by reports whose process is gone (killed).
    static func removeAbandoned(beside out: URL) {
        let dir = out.deletingLastPathComponent(), fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: dir.path)) ?? [] {
            for kind in [".partial-", ".old-"] {
                let prefix = ".\(out.lastPathComponent)\(kind)"
                guard name.hasPrefix(prefix), let pid = Int32(name.dropFirst(prefix.count)) else { continue }
                // kill(pid, 0) fails with ESRCH when no such process exists.
                if kill(pid, 0) != 0 && errno == ESRCH { try? fm.removeItem(at: dir.appendingPathComponent(name)) }
            }
        }
    }

    /// Moves the finished folder into place; an existing report there is replaced whole.
    static func replace(_ out: URL, with work: URL) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: out.path) {
            let old = out.deletingLastPathComponent().appendingPathComponent(".\(out.lastPathComponent).old-\(getpid())")
            try fm.moveItem(at: out, to: old)
            do { try fm.moveItem(at: work, to: out) } catch { try? fm.moveItem(at: old, to: out); throw error }
            try? fm.removeItem(at: old)
        } else {
            try fm.moveItem(at: work, to: out)
        }
    }
}
