import Analysis
import Diffusion
import Foundation
import Models
import Probes
import Reports
import Tensors

/// From a merge diagnosis to its remedy: re-runs traced runs (their own seed, prompt, model,
/// embeddings, sampler) with bounded regional attention on two subjects, and — with `ablate` —
/// the two partial variants, then counts over the seeds how often the subjects' probe maps end
/// apart, before and after (`MergeTimeline`'s rule). What `pareidolia remedy` runs.
///
/// Layout under `output`: `<seed>/after/` (trace and image.png), `<seed>/text/`, `<seed>/cross/`
/// (ablation), `<seed>/classes/` (the class-word run `auto` regions come from), runs.json, and
/// `report/` (`report(_:counts:)`: the before/after report, RemedyReport).
public final class MergeRemedy {
    public enum Regions: Sendable, Equatable {
        case halves
        case boxes([[Float]])
        /// From a run of the same seed with each subject replaced by its class word (nil: the
        /// nearest vocabulary word of each embedding; a plain word stays itself).
        case auto(classes: [String]?)
    }

    public struct Request {
        public var traces: [String]
        public var subjects: [String]
        public var regions: Regions = .halves
        public var until: Float = Separation.defaultUntil
        public var ablate = false
        public var output: String
        /// Load this model instead of the one each run.json names.
        public var model: String?
        public init(traces: [String], subjects: [String], output: String) {
            self.traces = traces
            self.subjects = subjects
            self.output = output
        }
    }

    /// One seed's runs.
    public struct Outcome {
        public let seed: UInt64
        public let before: String
        /// The remedied run and, with `ablate`, the partial ones, by stage.
        public let runs: [Separation.Stage: String]
        public let boxes: [[Float]]
        /// How the boxes were found: "halves", "given", "auto (blobs of 'person')", …
        public let regionSource: String
    }

    /// Before/after counts over the seeds: how many end with the subjects apart.
    public struct Counts {
        public let seeds: Int
        public let apartBefore: Int
        public let apartAfter: [Separation.Stage: Int]
        public let before: MergeVerdict, after: MergeVerdict

        /// "alex and cora end apart in 1 of 4 seeds before, 4 of 4 with the remedy."
        public var sentence: String {
            let a = before.a, b = before.b
            var s = "\(a) and \(b) end on separate regions in \(apartBefore) of \(seeds) seeds before, \(apartAfter[.full] ?? 0) of \(seeds) with the remedy"
            if let t = apartAfter[.text], let c = apartAfter[.cross] {
                s += " (text encoding alone: \(t); + cross-attention: \(c); + self-attention: \(apartAfter[.full] ?? 0))"
            }
            return s + "."
        }

        /// Which channel the ablation says carried the merge: the stage that separates most seeds
        /// beyond the one before it.
        public var channel: String? {
            guard let t = apartAfter[.text], let c = apartAfter[.cross], let f = apartAfter[.full] else { return nil }
            // Nothing merged: nothing for a channel to have carried.
            if apartBefore == seeds { return "no channel: the two were already apart in every seed before the remedy" }
            let gains = [("the text encoder", t - apartBefore), ("cross-attention", c - t), ("self-attention", f - c)]
            guard let best = gains.max(by: { $0.1 < $1.1 }), best.1 > 0 else {
                return "no channel: closing them separates no more seeds than before"
            }
            return "\(best.0) (\(best.1 > 0 ? "+" : "")\(best.1) seed\(best.1 == 1 ? "" : "s") apart when it is closed)"
        }

        /// The ablation's stage with the most seeds apart, the fewest channels closed among equals:
        /// closing a channel can cost seeds on a model whose layer does something else than the
        /// remedy assumes (the demo model's self-attention pools the whole picture, docs/REMEDY.md).
        public var bestStage: Separation.Stage? {
            let ablation = Separation.Stage.allCases.compactMap { s in apartAfter[s].map { (stage: s, apart: $0) } }
            guard let first = ablation.first, ablation.count == Separation.Stage.allCases.count else { return nil }
            return ablation.reduce(first) { $1.apart > $0.apart ? $1 : $0 }.stage
        }

        /// Where the full remedy parts fewer seeds than a partial one: which stage to run instead.
        public var advice: String? {
            guard let best = bestStage, best != .full, let full = apartAfter[.full], let b = apartAfter[best], b > full else { return nil }
            let closed = best == .text ? "the text encoder alone" : "the text encoder and cross-attention"
            return "closing \(closed) parts more seeds (\(b) of \(seeds)) than the full remedy (\(full)): run this model's remedy with --separate-stage \(best.rawValue)"
        }
    }

    public struct Failure: Error, CustomStringConvertible { public let description: String }

    public let request: Request
    public let recorded: [RecordedRun]
    private var models: [String: StableDiffusionModel] = [:]

    public init(_ request: Request) throws {
        guard request.subjects.count == 2 else { throw Failure(description: "--pair \(request.subjects.joined(separator: ",")): expected two subjects, A,B") }
        guard !request.traces.isEmpty else { throw Failure(description: "give one or more trace folders") }
        var probe = Separation(subjects: request.subjects)
        if case let .boxes(b) = request.regions { probe.boxes = b }
        probe.until = request.until
        do { try probe.validate() } catch { throw Failure(description: "\(error)") }
        self.request = request
        self.recorded = try request.traces.map { try RecordedRun(folder: $0) }
        for r in recorded {
            let words = Set((try? TraceWordMaps(directory: r.folder))?.words.map { $0.label.lowercased() } ?? [])
            for s in request.subjects where !words.contains(s.lowercased()) {
                throw Failure(description: "\(r.folder): the prompt \"\(r.settings.prompt)\" has no word '\(s)'")
            }
        }
    }

    /// Runs everything; `observers(label)` gives each generation's progress observers.
    public func run(observers: (String) -> [GenerationObserver] = { _ in [] },
                    shouldStop: () -> Bool = { false }) throws -> (outcomes: [Outcome], counts: Counts) {
        let seeds = recorded.map(\.settings.seed)
        var outcomes: [Outcome] = []
        var index: [RunIndex.Entry] = []
        for (i, r) in recorded.enumerated() {
            let name = seeds.filter({ $0 == r.settings.seed }).count > 1 ? "\(i + 1)-\(r.settings.seed)" : "\(r.settings.seed)"
            let folder = URL(fileURLWithPath: request.output).appendingPathComponent(name)
            let (boxes, source) = try regions(for: r, folder: folder, observers: observers, shouldStop: shouldStop)
            var runs: [Separation.Stage: String] = [:]
            let stages: [Separation.Stage] = request.ablate ? [.text, .cross, .full] : [.full]
            for stage in stages {
                var sep = Separation(subjects: request.subjects, boxes: boxes)
                sep.until = request.until
                sep.stage = stage
                let label = stage == .full ? "after" : stage.rawValue
                let trace = folder.appendingPathComponent(label).path
                try generate(r, separation: sep, trace: trace, label: "seed \(r.settings.seed) \(label)", observers: observers, shouldStop: shouldStop)
                runs[stage] = trace
                index.append(.init(prompt: r.settings.prompt, promptIndex: 0, seed: r.settings.seed,
                                   trace: "\(name)/\(label)", image: "\(name)/\(label)/image.png"))
                try RunIndex(runs: index).write(folder: request.output)
            }
            outcomes.append(Outcome(seed: r.settings.seed, before: r.folder, runs: runs, boxes: boxes, regionSource: source))
        }
        return (outcomes, try counts(outcomes))
    }

    /// The before/after report of `run`'s outcomes (RemedyReport), written to `output`/report:
    /// the plain runs against every remedied stage, led by the counts' sentence and channel.
    public func report(_ outcomes: [Outcome], counts: Counts, options: ReportOptions = ReportOptions(),
                       progress: ReportBuilder.Progress = { _, _, _ in }) throws -> ReportSummary {
        let folder = URL(fileURLWithPath: request.output).appendingPathComponent("report").path
        var r = RemedyReport.Request(before: outcomes.map(\.before), remedied: outcomes.flatMap { o in o.runs.keys.sorted().compactMap { o.runs[$0] } },
                                     subjects: request.subjects, output: folder)
        (r.sentence, r.channel, r.advice) = (counts.sentence, counts.channel, counts.advice)
        r.regionSources = Dictionary(outcomes.map { ($0.seed, $0.regionSource) }, uniquingKeysWith: { first, _ in first })
        r.options = options
        // The model the runs were made with decodes their x̂₀.
        if r.options.model == nil { r.options.model = request.model }
        do { return try RemedyReport.build(r, progress: progress) } catch { throw Failure(description: "\(error)") }
    }

    func counts(_ outcomes: [Outcome]) throws -> Counts {
        let (a, b) = (request.subjects[0], request.subjects[1])
        func study(_ folders: [String]) throws -> MergeVerdict {
            do { return try PairStudy(folders: folders, a: a, b: b, model: request.model).verdict } catch { throw Failure(description: "\(error)") }
        }
        let before = try study(outcomes.map(\.before))
        var apart: [Separation.Stage: Int] = [:]
        var after = before
        for stage in Separation.Stage.allCases {
            let folders = outcomes.compactMap { $0.runs[stage] }
            guard folders.count == outcomes.count else { continue }
            let v = try study(folders)
            apart[stage] = folders.count - v.mergedCount
            if stage == .full { after = v }
        }
        return Counts(seeds: outcomes.count, apartBefore: outcomes.count - before.mergedCount, apartAfter: apart, before: before, after: after)
    }

    /// The boxes for one run, and where they came from.
    func regions(for r: RecordedRun, folder: URL, observers: (String) -> [GenerationObserver],
                 shouldStop: () -> Bool) throws -> ([[Float]], String) {
        switch request.regions {
        case .halves: return (Separation.columns(2), "halves")
        case let .boxes(b): return (b, "given")
        case let .auto(given):
            let modelPath = request.model ?? r.modelPath
            let found = try AutoRegions.find(model: try load(modelPath), modelPath: modelPath, settings: r.settings,
                                             subjects: request.subjects, classes: given, embeddingFiles: r.embeddingFiles,
                                             trace: folder.appendingPathComponent("classes").path,
                                             observers: observers("seed \(r.settings.seed) classes"), shouldStop: shouldStop)
            return (found.boxes, found.source)
        }
    }

    func load(_ path: String) throws -> StableDiffusionModel {
        if let m = models[path] { return m }
        do {
            let m = try StableDiffusionModel.load(path, vaeEncoder: false)
            models[path] = m
            return m
        } catch { throw Failure(description: "\(path): \(error)") }
    }

    func generate(_ r: RecordedRun, separation: Separation?, trace: String, label: String,
                  observers: (String) -> [GenerationObserver], shouldStop: () -> Bool) throws {
        let model = try load(request.model ?? r.modelPath)
        var settings = r.settings
        settings.separation = separation
        var req = GenerationRun.Request(prompts: [settings.prompt], seeds: [settings.seed], settings: settings,
                                        output: trace + ".png", modelPath: request.model ?? r.modelPath)
        req.trace = trace
        req.embeddingFiles = r.embeddingFiles
        req.precision = r.precision
        req.fast = r.fast
        let run = try GenerationRun(model: model, request: req)
        try run.run(observers: { _ in observers(label) }, shouldStop: shouldStop)
    }
}
