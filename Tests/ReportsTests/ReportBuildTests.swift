import Checkpoints
import Foundation
import Imaging
import Tensors
import Testing
@testable import Reports

/// Whole reports of synthetic traces whose words have known hot spots: "circle" attends to the
/// top left of the latent, "square" to the bottom right.
@Suite("Report builder: known hot spots")
struct ReportBuildTests {
    static let side = 8, evaluations = 3, image = 64

    /// A trace folder as generate --trace writes it (run.json, latents, attention, image.png).
    static func writeTrace(in dir: URL, seed: Int, modelPath: String = "/nonexistent/model") throws {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let words = ["a", "red", "circle", "and", "a", "blue", "square"]
        var rows: [[String: Any]] = [["position": 0, "id": 49406, "text": "<|startoftext|>", "piece": -1, "weight": 1, "chunk": 0]]
        for (i, w) in words.enumerated() {
            rows.append(["position": i + 1, "id": 320 + i, "text": w, "piece": 0, "weight": 1, "chunk": 0, "word": w, "word_index": i])
        }
        rows.append(["position": words.count + 1, "id": 49407, "text": "<|endoftext|>", "piece": -1, "weight": 1, "chunk": 0])
        let (e, t, s) = (evaluations, words.count + 2, side)
        let run: [String: Any] = [
            "format_version": 1, "engine_version": "test", "seed": seed,
            "settings": ["prompt": words.joined(separator: " "), "negative_prompt": "", "seed": seed, "steps": e, "guidance": 7.5,
                         "sampler": "ddim", "width": image, "height": image, "rng": "cpu", "clip_skip": 1],
            "model": ["path": modelPath, "hash": "0000000000", "summary": "synthetic"],
            "tokens": rows, "timesteps": [901, 501, 101], "sigmas": [4.0, 1.0, 0.3, 0.0], "evaluation_seconds": [0.1, 0.1, 0.1],
            "evaluations": e, "steps_completed": e,
        ]
        try JSONSerialization.data(withJSONObject: run).write(to: dir.appendingPathComponent("run.json"))
        let cross = Tensor(zeros: [e, t, s, s])  // [E, T, h, w]
        for ev in 0..<e {
            for pos in 1..<(t - 1) { for p in 0..<(s * s) { cross.pointer[(ev * t + pos) * s * s + p] = 0.01 } }
            cross.pointer[(ev * t + 3) * s * s + 1 * s + 1] = 1  // circle → row 1, column 1
            cross.pointer[(ev * t + 7) * s * s + 6 * s + 6] = 1  // square → row 6, column 6
        }
        try SafeTensorsWriter.write(["cross": cross], to: dir.appendingPathComponent("attention.safetensors").path)
        let latents = Tensor(zeros: [e + 1, 4, s, s]), x0 = Tensor(zeros: [e, 4, s, s])  // [E+1, 4, h, w], [E, 4, h, w]
        for i in 0..<latents.count { latents.pointer[i] = Float((i * 7919) % 200) / 100 - 1 }
        for i in 0..<x0.count { x0.pointer[i] = Float((i * 104_729) % 100) / 100 - 0.5 }
        try SafeTensorsWriter.write(["latents": latents, "x0": x0], to: dir.appendingPathComponent("latents.safetensors").path)
        try PNGFile.write(RGBImage(width: image, height: image, pixels: [UInt8](repeating: 128, count: image * image * 3)),
                          to: dir.appendingPathComponent("image.png").path)
    }

    static func scratch() -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("pd-report-test-\(UUID().uuidString)")
    }

    static func cheap() -> ReportOptions {
        var o = ReportOptions()
        o.previews = .cheap
        return o
    }

    /// How far a pixel of a heat-map figure is from the grey image under it.
    static func heat(_ img: RGBImage, x: Int, y: Int) -> Int {
        let i = (y * img.width + x) * 3
        return (0..<3).map { abs(Int(img.pixels[i + $0]) - 128) }.reduce(0, +)
    }

    @Test func hotSpotsLandWhereTheWordsAttended() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        try Self.writeTrace(in: root.appendingPathComponent("trace"), seed: 1)
        let out = root.appendingPathComponent("report")
        let summary = try ReportBuilder.build(traces: [root.appendingPathComponent("trace").path], output: out.path, options: Self.cheap())
        #expect(summary.evaluations == Self.evaluations)
        // HeatMapFigure: the overlay's panel (128 px for a 64-px image) starts 26 px down.
        let circle = try readPNG(out.appendingPathComponent("heatmaps/02-circle.png").path)
        let square = try readPNG(out.appendingPathComponent("heatmaps/06-square.png").path)
        let (top, panel) = (26, 128)
        // Latent (1, 1) is image pixels 8…15 → panel 16…31; (6, 6) → panel 96…111.
        let nearTL = (x: 24, y: top + 24), nearBR = (x: 104, y: top + 104)
        #expect(Self.heat(circle, x: nearTL.x, y: nearTL.y) > Self.heat(circle, x: nearBR.x, y: nearBR.y) + 60)
        #expect(Self.heat(square, x: nearBR.x, y: nearBR.y) > Self.heat(square, x: nearTL.x, y: nearTL.y) + 60)
        #expect(circle.height >= top + panel)
    }

    @Test func animationPDFAndLinks() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        try Self.writeTrace(in: root.appendingPathComponent("trace"), seed: 1)
        let out = root.appendingPathComponent("report")
        _ = try ReportBuilder.build(traces: [root.appendingPathComponent("trace").path], output: out.path, options: Self.cheap())
        let gif = try GIFReadBack.read(out.appendingPathComponent("denoising.gif").path)
        let frame0 = try readPNG(out.appendingPathComponent("frames/000.png").path)
        #expect(gif.frameCount == Self.evaluations)
        #expect(gif.width == frame0.width && gif.height == frame0.height)
        #expect(gif.frames.map(\.delayCentiseconds) == [25, 25, 200])
        #expect(gif.loops)

        let pdf = try Data(contentsOf: out.appendingPathComponent("report.pdf"))
        #expect(pdf.prefix(5) == Data("%PDF-".utf8))
        let text = String(decoding: pdf, as: UTF8.self)
        let pages = text.components(separatedBy: "/Type /Page").count - 1 - (text.components(separatedBy: "/Type /Pages").count - 1)
        // run card, last frame, contact sheet, heat maps, strips + shares, overlap
        #expect(pages >= 6)

        let html = try String(contentsOf: out.appendingPathComponent("index.html"), encoding: .utf8)
        let links = Self.matches(#"(?:src|href)="([^"]+)""#, in: html)
        #expect(!links.isEmpty)
        for link in links where !link.hasPrefix("#") {
            #expect(!link.contains(":") && !link.hasPrefix("/"), "not relative: \(link)")
            let path = out.appendingPathComponent(link.removingPercentEncoding ?? link).path
            #expect(FileManager.default.fileExists(atPath: path), "broken link: \(link)")
        }
        #expect(html.contains("id=\"scrub-step\"") && html.contains("id=\"word-select\""))
    }

    @Test func sweepIsOneReportWithEverySeed() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let single = root.appendingPathComponent("single")
        try Self.writeTrace(in: single, seed: 1)
        _ = try ReportBuilder.build(traces: [single.path], output: root.appendingPathComponent("r1").path, options: Self.cheap())
        let sweep = root.appendingPathComponent("sweep")
        try Self.writeTrace(in: sweep.appendingPathComponent("11"), seed: 11)
        try Self.writeTrace(in: sweep.appendingPathComponent("22"), seed: 22)
        let out = root.appendingPathComponent("r2")
        _ = try ReportBuilder.build(traces: [sweep.appendingPathComponent("11").path, sweep.appendingPathComponent("22").path],
                                    output: out.path, options: Self.cheap())
        for seed in [11, 22] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("contact-sheet-\(seed).png").path))
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("heatmaps/\(seed)/02-circle.png").path))
        }
        let one = try readPNG(root.appendingPathComponent("r1/frames/000.png").path)
        let two = try readPNG(out.appendingPathComponent("frames/000.png").path)
        #expect(two.width > one.width)
    }

    @Test func aFailedReportLeavesNothingAndARebuildReplacesTheOld() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let trace = root.appendingPathComponent("trace")
        try Self.writeTrace(in: trace, seed: 1)
        let out = root.appendingPathComponent("report")
        var options = Self.cheap()
        options.words = ["nosuchword"]
        #expect {
            _ = try ReportBuilder.build(traces: [trace.path], output: out.path, options: options)
        } throws: { "\($0)".contains("nosuchword") && "\($0)".contains("circle") }
        let left = try FileManager.default.contentsOfDirectory(atPath: root.path)
        #expect(left == ["trace"])

        _ = try ReportBuilder.build(traces: [trace.path], output: out.path, options: Self.cheap())
        try Data("stale".utf8).write(to: out.appendingPathComponent("stale.txt"))
        options.words = ["circle"]
        _ = try ReportBuilder.build(traces: [trace.path], output: out.path, options: options)
        let files = try FileManager.default.contentsOfDirectory(atPath: out.path)
        #expect(!files.contains("stale.txt"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("heatmaps").path).sorted() == ["00-circle.png", "end.png", "start.png"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root.path).sorted() == ["report", "trace"])
    }

    @Test func foldersOfKilledReportsAreCleared() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let trace = root.appendingPathComponent("trace")
        try Self.writeTrace(in: trace, seed: 1)
        // A pid no process has (beyond pid_max), and this process's parent, which is alive.
        let dead = root.appendingPathComponent(".report.partial-\(Int32.max)"), alive = root.appendingPathComponent(".report.partial-\(getppid())")
        for d in [dead, alive] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        _ = try ReportBuilder.build(traces: [trace.path], output: root.appendingPathComponent("report").path, options: Self.cheap())
        #expect(!FileManager.default.fileExists(atPath: dead.path))
        #expect(FileManager.default.fileExists(atPath: alive.path))
    }

    @Test func fullPreviewsNeedTheRunsModel() throws {
        let root = Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let trace = root.appendingPathComponent("trace")
        try Self.writeTrace(in: trace, seed: 1)
        #expect {
            _ = try ReportBuilder.build(traces: [trace.path], output: root.appendingPathComponent("r").path)
        } throws: { "\($0)".contains("--model") && !"\($0)".contains("\n") }
        #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("r").path))
    }

    static func matches(_ pattern: String, in s: String) -> [String] {
        guard let re = try? NSRegularExpression(pattern: pattern) else { return [] }
        return re.matches(in: s, range: NSRange(s.startIndex..., in: s)).compactMap { m in
            Range(m.range(at: 1), in: s).map { String(s[$0]) }
        }
    }
}
