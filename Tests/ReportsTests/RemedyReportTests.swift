import Analysis
import Diffusion
import Foundation
import Imaging
import Models
@testable import Reports
import Testing
import TestSupport

/// The merge remedy in reports: a remedied trace is a row of the comparison of its own (not one
/// more seed of the plain prompt), and RemedyReport draws the before/after page from real traces
/// of the tiny fixture model, made as `generate --separate` makes them.
@Suite("Remedy report", .serialized)
struct RemedyReportTests {
    typealias Scratch = ReportBuilderTests.Scratch
    static let prompt = "photo of a witch and a robot dancing"
    static let subjects = ["witch", "robot"]

    /// Plain runs of `seeds`, then the remedy's stages of each, as `pareidolia remedy` lays them out.
    static func traces(_ s: Scratch, seeds: [UInt64], stages: [Separation.Stage]) throws -> (before: [String], remedied: [String]) {
        let model = try ComparisonReportTests.tinySD()
        let before = try seeds.map { try ComparisonReportTests.trace(model, at: s.path("before/\($0)"), prompt: prompt, seed: $0) }
        var remedied: [String] = []
        for seed in seeds {
            for stage in stages {
                var sep = Separation(subjects: subjects)
                sep.stage = stage
                remedied.append(try ComparisonReportTests.trace(model, at: s.path("remedy/\(seed)/\(stage.rawValue)"), prompt: prompt, seed: seed, separation: sep))
            }
        }
        return (before, remedied)
    }

    @Test("a remedied run is a row of its own: labelled, the same words said, compared with the plain run")
    func remedyIsARow() throws {
        let s = try Scratch("remedy-row")
        defer { s.remove() }
        let (before, remedied) = try Self.traces(s, seeds: [5, 9], stages: [.full])
        // Given remedy first: the plain runs are still the first row, the one the others are compared with.
        let cmp = try Comparison(traces: (remedied + before).map { try ReportTrace(directory: $0) })
        #expect(cmp.stages == [nil, "full"] && cmp.cells.map(\.count) == [2, 2])
        #expect(cmp.rowLabel(0) == "before" && cmp.rowLabel(1) == "remedy: full (bounded regional attention)")
        #expect(cmp.difference(1).hasPrefix("the same words; merge remedy on witch and robot: each encoded without the other's words"), "\(cmp.difference(1))")
        #expect(cmp.alignedWords.allSatisfy { $0.kind == "shared" })

        let summary = try ReportBuilder.build(traces: before + remedied, output: s.path("report"), options: ReportBuilderTests.cheap())
        #expect(summary.lines.first == "comparison of 1 prompt, 2 rows (1 plain, 1 with the remedy) × 2 seeds (5, 9)", "\(summary.lines)")
        #expect(summary.lines.contains { $0.hasPrefix("remedy: full against before: the same words; merge remedy on witch and robot") }, "\(summary.lines)")
        #expect(summary.lines.contains { $0.hasPrefix("Remedy: full against before, seed 9:") }, "\(summary.lines)")
        // A comparison, not a sweep of eight seeds of one prompt.
        #expect(!summary.files.contains { $0.hasPrefix("contact-sheet") })
        #expect(summary.files.contains("heatmaps/03-witch/before-seed5.png") && summary.files.contains("heatmaps/03-witch/full-seed9.png"), "\(summary.files)")
        let html = try String(contentsOfFile: s.path("report/index.html"), encoding: .utf8)
        #expect(html.contains("<b>remedy: full (bounded regional attention)</b><span class=\"same\">the same words; merge remedy on witch and robot"))
        try ReportBuilderTests.expectLinksResolve(s.path("report"))

        // The plain runs alone are a sweep, as before.
        let sweep = try ReportBuilder.build(traces: before, output: s.path("sweep"), options: ReportBuilderTests.cheap())
        #expect(sweep.lines.isEmpty && sweep.files.contains("contact-sheet-9.png"))
    }

    @Test("the before/after report: the answer, images by run kind, regions, both subjects, overlap, PDF")
    func remedyReport() throws {
        let s = try Scratch("remedy-report")
        defer { s.remove() }
        let (before, remedied) = try Self.traces(s, seeds: [5, 9], stages: [.text, .cross, .full])
        var request = RemedyReport.Request(before: before, remedied: remedied, subjects: Self.subjects, output: s.path("report"))
        request.sentence = "witch and robot end on separate regions in k of 2 seeds before, m of 2 with the remedy."
        request.channel = "cross-attention (+1 seed apart when it is closed)"
        request.advice = "closing the text encoder and cross-attention parts more seeds (2 of 2) than the full remedy (1): run this model's remedy with --separate-stage cross"
        request.regionSources = [5: "halves", 9: "halves"]
        request.options = ReportBuilderTests.cheap()
        let summary = try RemedyReport.build(request)
        let files = ReportBuilderTests.filesUnder(s.path("report"))
        #expect(summary.files == files)
        for f in ["index.html", "report.pdf", "images.png", "regions.png", "subjects.png", "overlap-5.png", "overlap-9.png", "denoising.gif",
                  "frames/000.png", "divergence-latent.png", "heatmaps/00-witch/before-seed5.png", "heatmaps/01-robot/full-seed9.png"] {
            #expect(files.contains(f), "\(f) missing: \(files)")
        }
        // Only the two subjects' maps, in every run; no sweep's files.
        #expect(files.filter { $0.hasPrefix("heatmaps/") }.count == 2 * 8)
        #expect(!files.contains { $0.hasPrefix("contact-sheet") || $0.hasPrefix("overlap-matrix") || $0.hasPrefix("attention-") })

        // The counts the report makes agree with the merge rule on the same traces.
        let timelines = try (before + remedied).map { folder -> MergeTimeline in
            let t = try TraceWordMaps(directory: folder)
            return MergeTimeline(a: t.maps[t.index(of: "witch")!], b: t.maps[t.index(of: "robot")!])
        }
        let apartBefore = timelines[0..<2].filter { $0.mergedFrom == nil }.count
        let apartAfter = [4, 7].filter { timelines[$0].mergedFrom == nil }.count  // seed 5's and seed 9's full stage
        #expect(summary.lines.first?.hasPrefix("witch and robot end on separate regions in \(apartBefore) of 2 seeds before, \(apartAfter) of 2 after (text encoding alone: ") == true,
                "\(summary.lines)")

        // The page: the answer first, a row per run kind (the test fails if the report fell back to a sweep).
        let html = try String(contentsOfFile: s.path("report/index.html"), encoding: .utf8)
        #expect(html.contains(HTMLPage.escape(request.sentence!)) && html.contains(HTMLPage.escape(request.channel!)))
        #expect(html.contains(HTMLPage.escape("For this model: \(request.advice!).")))
        for id in ["summary", "images", "regions", "subjects", "overlap", "heatmaps", "denoising", "divergence", "prompts"] {
            #expect(html.contains("<section id=\"\(id)\">"), "no section \(id)")
        }
        #expect(html.range(of: "id=\"summary\"")!.lowerBound < html.range(of: "id=\"images\"")!.lowerBound)
        for label in ["before", "remedy: text encoding only", "remedy: + cross-attention", "remedy: full (bounded regional attention)"] {
            #expect(html.contains("<th>\(HTMLPage.escape(label))</th>"), "no column \(label) in the answer's table")
            #expect(html.contains("<p class=\"rowlabel\">\(HTMLPage.escape(label))</p>"), "no heat-map row \(label)")
        }
        // Four rows of pictures (ComparisonGrid: 36 px for the title, then a row's words, caption and picture).
        let images = try readPNG(s.path("report/images.png"))
        #expect(Double(images.height) > 36 + 4 * (36 + 18 + ReportBuilder.comparisonPanel(try Comparison(traces: (before + remedied).map { try ReportTrace(directory: $0) }))))
        // The divergence compares the remedy's run with the plain one, per seed (not every stage).
        #expect(summary.lines.filter { $0.hasPrefix("Remedy: full against before, seed") }.count == 2)
        #expect(!summary.lines.contains { $0.hasPrefix("Remedy: text against") })
        try ReportBuilderTests.expectLinksResolve(s.path("report"))

        // Answer, images, regions, subjects, overlap (2 seeds: one page), heat maps (2 words × 4
        // run kinds, a row each, 4 rows a page: 2), denoising, where they part (3 charts: 2), the runs.
        let pages = try ReportBuilderTests.pdfPages(s.path("report/report.pdf"))
        #expect(pages.header && pages.objects == 11 && pages.count == 11, "\(pages)")
    }

    @Test("refusals: a remedied run as 'before', a subject the prompt lacks; nothing written")
    func refusals() throws {
        let s = try Scratch("remedy-bad")
        defer { s.remove() }
        let (before, remedied) = try Self.traces(s, seeds: [5], stages: [.full])
        let out = s.path("report")
        var swapped = RemedyReport.Request(before: remedied, remedied: before, subjects: Self.subjects, output: out)
        swapped.options = ReportBuilderTests.cheap()
        let e1 = try #require(throws: ReportError.self) { try RemedyReport.build(swapped) }
        #expect(e1.description.contains(remedied[0]) && e1.description.contains("expected a plain run"), "\(e1)")
        var dragon = RemedyReport.Request(before: before, remedied: remedied, subjects: ["witch", "dragon"], output: out)
        dragon.options = ReportBuilderTests.cheap()
        let e2 = try #require(throws: ReportError.self) { try RemedyReport.build(dragon) }
        #expect(e2.description.contains("'dragon'") && !e2.description.contains("\n"), "\(e2)")
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}
