import Analysis
import Checkpoints
import Diffusion
import Foundation
import Imaging
import Models
import Probes
@testable import Reports
import Tensors
import Testing
import TestSupport

/// `ReportBuilder.build` end to end on synthetic traces whose answer is known (each word's
/// attention at one latent pixel), read back from the files it writes: heat-map PNGs, the GIF, the
/// PDF, index.html's links, a sweep, atomic replacement, and `--previews full` on a real tiny-sd
/// trace. Every test works in its own temporary folder and removes it.
@Suite("Report builder")
struct ReportBuilderTests {
    // MARK: - Synthetic traces

    /// The prompt's words, one token each, at positions 1…7 (0 is the start token, 8 the end).
    static let words = ["a", "red", "circle", "and", "a", "blue", "square"]
    static let prompt = "a red circle and a blue square"
    static let side = 8, imageSide = 64, evaluations = 3
    /// Where a word's attention all goes, as latent (row, col); other words spread theirs evenly.
    /// Off the diagonal, so a transposed map is caught as well as a flipped or swapped one.
    static let circleSpot = (row: 1, col: 2), squareSpot = (row: 6, col: 5)
    /// The start token's spot (the end token spreads its attention evenly).
    static let startSpot = (row: 3, col: 6)
    /// The image every heat map is drawn over: flat grey, so any colour is the heat's.
    static let grey: UInt8 = 128

    /// A temporary folder, removed by `remove()` (call it in a `defer`).
    struct Scratch {
        let url: URL
        init(_ tag: String) throws {
            url = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-report-\(tag)-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        func remove() { try? FileManager.default.removeItem(at: url) }
        func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    }

    /// Writes a trace folder as `generate --trace` would: run.json, latents.safetensors (latents
    /// and x0), attention.safetensors (`cross` [E, T, h, w]) and image.png. `spots` puts a word's
    /// attention at one latent pixel (the start token's is at `startSpot`); `tint` shifts x̂₀'s
    /// colour (so seeds look different).
    @discardableResult
    static func writeTrace(at dir: String, seed: UInt64, words: [String] = words, prompt: String = prompt,
                           spots: [Int: (row: Int, col: Int)] = [2: circleSpot, 6: squareSpot],
                           tint: Float = -1, attention: Bool = true,
                           modelPath: String = "/nonexistent/pareidolia-test/model.safetensors") throws -> String {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let (e, side) = (evaluations, side)
        let t = words.count + 2
        var rows: [[String: Any]] = [["position": 0, "id": 49406, "text": "<|startoftext|>", "weight": 1.0, "chunk": 0, "piece": -1]]
        for (i, w) in words.enumerated() {
            rows.append(["position": i + 1, "id": 1000 + i, "text": w + "</w>", "weight": 1.0, "chunk": 0, "piece": 0,
                         "word": w, "word_index": i])
        }
        rows.append(["position": t - 1, "id": 49407, "text": "<|endoftext|>", "weight": 1.0, "chunk": 0, "piece": -1])
        let sigmas = (0...e).map { 14.6 * Double(e - $0) / Double(e) }
        let run: [String: Any] = [
            "format_version": 1, "engine_version": "test",
            "settings": ["prompt": prompt, "negative_prompt": "", "seed": seed, "steps": e, "guidance": 7.5,
                         "sampler": "euler", "width": imageSide, "height": imageSide, "rng": "cpu", "clip_skip": 1] as [String: Any],
            "seed": seed,
            "model": ["path": modelPath, "hash": "0123456789", "summary": "synthetic"],
            "embeddings": [] as [Any], "arithmetic": ["precision": "fp32", "fast": "none"],
            "tokens": rows, "conditional_batch_index": 1,
            "timesteps": (0..<e).map { 999 - 999 * $0 / e }, "sigmas": sigmas,
            "evaluation_seconds": [Double](repeating: 0.01, count: e), "evaluations": e, "steps_completed": e,
            "recorded": ["attention": attention ? "aggregate" : "off", "eps": false, "previews": true] as [String: Any],
        ]
        try JSONSerialization.data(withJSONObject: run, options: [.sortedKeys]).write(to: URL(fileURLWithPath: dir + "/run.json"))

        // x̂₀: a left-to-right ramp in channel 0 that sharpens over the evaluations, tinted by
        // channel 3 (negative: warm, positive: cold under the cheap map). x_t: that plus fading noise.
        let plane = side * side
        let x0 = Tensor(zeros: [e, 4, side, side]), latents = Tensor(zeros: [e + 1, 4, side, side])
        var noise = SplitMix(seed: seed)
        for k in 0...e {
            for c in 0..<4 {
                for p in 0..<plane {
                    let ramp = (Float(p % side) - 3.5) / 3.5
                    let value: Float = c == 0 ? ramp * Float(k + 1) / Float(e) : (c == 3 ? tint : 0)
                    if k < e { x0.pointer[(k * 4 + c) * plane + p] = value }
                    latents.pointer[(k * 4 + c) * plane + p] = value + Float(sigmas[k]) * noise.nextFloat()
                }
            }
        }
        try SafeTensorsWriter.write(["latents": latents, "x0": x0], to: dir + "/latents.safetensors")

        if attention {
            let cross = Tensor(zeros: [e, t, side, side])  // [E, T, h, w]
            for k in 0..<e {
                for pos in 0..<t {
                    let base = (k * t + pos) * plane
                    if pos == 0 {
                        cross.pointer[base + startSpot.row * side + startSpot.col] = 8
                    } else if let spot = spots[pos - 1], pos <= words.count {
                        cross.pointer[base + spot.row * side + spot.col] = Float(k + 1)
                    } else {
                        for p in 0..<plane { cross.pointer[base + p] = 0.01 }
                    }
                }
            }
            try SafeTensorsWriter.write(["cross": cross], to: dir + "/attention.safetensors")
        }
        let image = RGBImage(width: imageSide, height: imageSide, pixels: [UInt8](repeating: grey, count: imageSide * imageSide * 3))
        try PNGFile.write(image, to: dir + "/image.png")
        return dir
    }

    /// Deterministic noise in [-1, 1).
    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
        mutating func nextFloat() -> Float {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Float(z >> 40) / Float(1 << 23) - 1
        }
    }

    static func cheap() -> ReportOptions {
        var o = ReportOptions()
        o.previews = .cheap
        return o
    }

    /// Every file under `dir`, relative, sorted.
    static func filesUnder(_ dir: String) -> [String] {
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let f = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: dir + "/" + f, isDirectory: &isDir), !isDir.boolValue { out.append(f) }
        }
        return out.sorted()
    }

    // MARK: - Reading the figures back

    /// HeatMapFigure's layout (WordFigures.swift): the title takes 26 px, then the overlay at
    /// (0, 26), `panel` px wide; ReportDrawing draws a 64-px image at panel 128.
    static let heatTop = 26, heatPanel = 128

    /// Where a heat-map PNG's colour sits: the centre of mass of the overlay's departure from the
    /// grey image (squared, so the hot spot dominates), in image pixels; and the departure summed
    /// over each quadrant of the image [top left, top right, bottom left, bottom right].
    static func heatCentre(_ png: RGBImage) -> (x: Double, y: Double, quadrants: [Double], peak: Double) {
        let scale = Double(heatPanel) / Double(imageSide)
        var sx = 0.0, sy = 0.0, total = 0.0, peak = 0.0
        var quadrants = [Double](repeating: 0, count: 4)
        for py in 0..<heatPanel {
            for px in 0..<heatPanel {
                let i = 3 * ((heatTop + py) * png.width + px)
                let d = (0..<3).reduce(0.0) { $0 + abs(Double(png.pixels[i + $1]) - Double(grey)) }
                let w = d * d
                let (x, y) = ((Double(px) + 0.5) / scale, (Double(py) + 0.5) / scale)
                sx += w * x; sy += w * y; total += w
                peak = max(peak, d)
                quadrants[(y < Double(imageSide) / 2 ? 0 : 2) + (x < Double(imageSide) / 2 ? 0 : 1)] += d
            }
        }
        return total > 0 ? (sx / total, sy / total, quadrants, peak) : (.nan, .nan, quadrants, peak)
    }

    /// The centre of a latent pixel, in image pixels.
    static func centre(_ spot: (row: Int, col: Int)) -> (x: Double, y: Double) {
        let f = Double(imageSide) / Double(side)
        return ((Double(spot.col) + 0.5) * f, (Double(spot.row) + 0.5) * f)
    }

    /// Checks that a heat-map PNG is coloured at `spot` and nowhere far from it.
    static func expectHeat(_ path: String, at spot: (row: Int, col: Int), sourceLocation: SourceLocation = #_sourceLocation) throws {
        let png = try readPNG(path)
        #expect(png.width >= heatPanel && png.height >= heatTop + heatPanel, "\(path): \(png.width)×\(png.height)", sourceLocation: sourceLocation)
        guard png.width >= heatPanel, png.height >= heatTop + heatPanel else { return }
        let h = heatCentre(png)
        let want = centre(spot)
        let off = ((h.x - want.x) * (h.x - want.x) + (h.y - want.y) * (h.y - want.y)).squareRoot()
        // A transposed map is 11 px away, a flipped or swapped one more than 25.
        #expect(off < 3, "\(path): colour centred at (\(h.x), \(h.y)), expected (\(want.x), \(want.y))", sourceLocation: sourceLocation)
        #expect(h.peak > 150, "\(path): the hottest pixel departs only \(h.peak) from the image", sourceLocation: sourceLocation)
        let q = (spot.row < side / 2 ? 0 : 2) + (spot.col < side / 2 ? 0 : 1)
        let opposite = 3 - q
        #expect(h.quadrants[q] > 20 * max(h.quadrants[opposite], 1), "\(path): quadrants \(h.quadrants)", sourceLocation: sourceLocation)
    }

    /// The PDF's page objects (`/Type /Page`, not `/Pages`) and its page tree's `/Count`.
    static func pdfPages(_ path: String) throws -> (objects: Int, count: Int?, header: Bool) {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let text = String(decoding: data, as: UTF8.self)  // binary streams become U+FFFD; the object syntax is ASCII
        let ns = text as NSString
        let page = try NSRegularExpression(pattern: "/Type\\s*/Page(?![A-Za-z])")
        let objects = page.numberOfMatches(in: text, range: NSRange(location: 0, length: ns.length))
        let tree = try NSRegularExpression(pattern: "/Type\\s*/Pages\\b[^>]*?/Count\\s+(\\d+)", options: [.dotMatchesLineSeparators])
        let count = tree.firstMatch(in: text, range: NSRange(location: 0, length: ns.length)).flatMap { Int(ns.substring(with: $0.range(at: 1))) }
        return (objects, count, data.starts(with: Array("%PDF-".utf8)))
    }

    /// What ReportDrawing puts in the PDF: the run card, the last frame, a contact sheet per trace,
    /// then (with attention) the heat maps on as many pages as they need and two pages per trace.
    static func expectedPDFPages(traces: Int, words: Int, attention: Bool = true) -> Int {
        guard attention, words > 0 else { return 2 + traces }
        let grey = RGBImage(width: imageSide, height: imageSide, pixels: [UInt8](repeating: grey, count: imageSide * imageSide * 3))
        let f = HeatMapFigure(label: "w", weight: 1, overlay: grey, scale: { ColorMap.viridis($0) }, panel: Double(heatPanel))
        let perPage = max(1, Int(760 / (f.width + 16))) * max(1, Int(900 / (f.height + 16)))
        let figures = words * traces
        return 2 + traces + (figures + perPage - 1) / perPage + 2 * traces
    }

    /// index.html's links: `src`/`href` attribute values and the scrubber's frame list, HTML
    /// entities decoded (not yet percent-decoded); and the page's element ids.
    static func links(_ html: String) throws -> (links: [String], ids: Set<String>) {
        let ns = html as NSString
        let all = NSRange(location: 0, length: ns.length)
        func unescape(_ s: String) -> String {
            s.replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&#39;", with: "'")
                .replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
                .replacingOccurrences(of: "&amp;", with: "&")
        }
        var out: [String] = []
        for m in try NSRegularExpression(pattern: "\\b(?:src|href)\\s*=\\s*\"([^\"]*)\"").matches(in: html, range: all) {
            out.append(unescape(ns.substring(with: m.range(at: 1))))
        }
        for m in try NSRegularExpression(pattern: "\\b(?:src|href)\\s*=\\s*'([^']*)'").matches(in: html, range: all) {
            out.append(unescape(ns.substring(with: m.range(at: 1))))
        }
        if let m = try NSRegularExpression(pattern: "var frames = \\[([^\\]]*)\\]").firstMatch(in: html, range: all) {
            let list = ns.substring(with: m.range(at: 1))
            out += list.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: " \"")) }
        }
        var ids = Set<String>()
        for m in try NSRegularExpression(pattern: "\\bid=\"([^\"]*)\"").matches(in: html, range: all) {
            ids.insert(ns.substring(with: m.range(at: 1)))
        }
        return (out, ids)
    }

    /// Checks every link of `dir`/index.html: in-page anchors name an element; the rest are
    /// relative, percent-decode to a file in `dir`, and together reach every file written.
    /// Returns the anchors that name no element (the caller decides whether that is expected).
    @discardableResult
    static func expectLinksResolve(_ dir: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String] {
        let html = try String(contentsOfFile: dir + "/index.html", encoding: .utf8)
        let (found, ids) = try links(html)
        #expect(!found.isEmpty, sourceLocation: sourceLocation)
        let lower = html.lowercased()
        #expect(!lower.contains("file:") && !lower.contains("http://") && !lower.contains("https://"),
                "index.html names a file: or http(s) URL", sourceLocation: sourceLocation)
        var reached = Set<String>(), dangling: [String] = []
        for link in found {
            if link.hasPrefix("#") {
                if !ids.contains(String(link.dropFirst())) { dangling.append(link) }
                continue
            }
            #expect(!link.isEmpty && !link.hasPrefix("/") && !link.contains(":") && !link.contains("\\"),
                    "\(link): not a plain relative link", sourceLocation: sourceLocation)
            guard let decoded = link.removingPercentEncoding else {
                Issue.record("\(link): bad percent-encoding", sourceLocation: sourceLocation); continue
            }
            #expect(!decoded.split(separator: "/").contains(".."), "\(link) leaves the report folder", sourceLocation: sourceLocation)
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: dir + "/" + decoded, isDirectory: &isDir)
            #expect(exists && !isDir.boolValue, "\(link) → \(decoded): no such file in the report", sourceLocation: sourceLocation)
            reached.insert(decoded)
        }
        // Hidden files (the report's marker) are not for the reader.
        let shown = filesUnder(dir).filter { !$0.split(separator: "/").contains { $0.hasPrefix(".") } }
        let unreached = Set(shown).subtracting(reached).subtracting(["index.html"])
        #expect(unreached.isEmpty, "files index.html never links: \(unreached.sorted())", sourceLocation: sourceLocation)
        return dangling
    }

    // MARK: - Tests

    @Test("each word's heat map is coloured where its attention went")
    func heatMapsSitOnTheirWords() throws {
        let s = try Scratch("heat")
        defer { s.remove() }
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1)
        let summary = try ReportBuilder.build(traces: [trace], output: s.path("report"), options: Self.cheap())
        let heat = s.path("report/heatmaps")
        #expect(Self.filesUnder(heat) == Self.words.enumerated().map { String(format: "%02d-%@.png", $0.offset, $0.element) } + ["end.png", "start.png"])
        try Self.expectHeat(heat + "/02-circle.png", at: Self.circleSpot)
        try Self.expectHeat(heat + "/06-square.png", at: Self.squareSpot)
        // The start token's map, shown apart from the words, is position 0's.
        try Self.expectHeat(heat + "/start.png", at: Self.startSpot)
        // A word whose attention is spread evenly has no location: its map is all zeros, the image shows through.
        for flatMap in ["03-and.png", "end.png"] {
            let flat = Self.heatCentre(try readPNG(heat + "/" + flatMap))
            #expect(flat.peak <= 2, "\(flatMap) is coloured (departure \(flat.peak))")
        }
        #expect(summary.traces == 1 && summary.evaluations == Self.evaluations)
        #expect(summary.files == Self.filesUnder(s.path("report")), "the summary's files are the files on disk")

        // --words picks and orders the maps (numbered in the order asked for); global normalisation keeps the spots.
        var options = Self.cheap()
        options.words = ["Square", "circle"]
        options.normalisation = .global
        _ = try ReportBuilder.build(traces: [trace], output: s.path("picked"), options: options)
        #expect(Self.filesUnder(s.path("picked/heatmaps")) == ["00-square.png", "01-circle.png", "end.png", "start.png"])
        try Self.expectHeat(s.path("picked/heatmaps/00-square.png"), at: Self.squareSpot)
        try Self.expectHeat(s.path("picked/heatmaps/01-circle.png"), at: Self.circleSpot)
    }

    @Test("denoising.gif: one frame per evaluation, the size of frames/NNN.png, 25 cs each and the last held 200 cs")
    func animation() throws {
        let s = try Scratch("gif")
        defer { s.remove() }
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1)
        _ = try ReportBuilder.build(traces: [trace], output: s.path("report"), options: Self.cheap())
        let e = Self.evaluations
        #expect(Self.filesUnder(s.path("report/frames")) == (0..<e).map { String(format: "%03d.png", $0) })
        let first = try readPNG(s.path("report/frames/000.png"))
        let gif = try GIFReadBack.read(s.path("report/denoising.gif"))
        #expect(gif.frameCount == e)
        #expect(gif.width == first.width && gif.height == first.height, "GIF \(gif.width)×\(gif.height), frame \(first.width)×\(first.height)")
        #expect(gif.loops)
        #expect(gif.frames.map(\.delayCentiseconds) == [Int?](repeating: 25, count: e - 1) + [200])
        for (k, f) in gif.frames.enumerated() {
            #expect(f.left == 0 && f.top == 0 && f.width == first.width && f.height == first.height, "GIF frame \(k): \(f.width)×\(f.height)+\(f.left)+\(f.top)")
            // The GIF frame is frames/k.png through a 256-colour palette.
            let png = try readPNG(s.path(String(format: "report/frames/%03d.png", k)))
            guard png.pixels.count == f.rgb.count else { Issue.record("frame \(k): sizes differ"); continue }
            let mean = zip(png.pixels, f.rgb).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(f.rgb.count)
            #expect(mean < 4, "GIF frame \(k) differs from frames/\(k) by \(mean) on average")
        }
    }

    @Test("report.pdf: a PDF with the pages the builder drew")
    func pdf() throws {
        let s = try Scratch("pdf")
        defer { s.remove() }
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1)
        _ = try ReportBuilder.build(traces: [trace], output: s.path("report"), options: Self.cheap())
        let pages = try Self.pdfPages(s.path("report/report.pdf"))
        let expected = Self.expectedPDFPages(traces: 1, words: Self.words.count)
        #expect(pages.header, "report.pdf does not start with %PDF-")
        #expect(pages.objects == expected, "\(pages.objects) page objects, expected \(expected)")
        #expect(pages.count == expected, "page tree /Count \(pages.count.map(String.init) ?? "missing"), expected \(expected)")
        #expect(expected >= 5)
        #expect(!Self.filesUnder(s.path("report")).contains { $0.contains(".part-") }, "the PDF's temporary file was left behind")
    }

    @Test("index.html links only files of the report, relatively, with odd word names percent-encoded")
    func htmlLinks() throws {
        let s = try Scratch("html")
        defer { s.remove() }
        let odd = ["a", "crème", "brûlée", "&", "日本", "50%", "cat"]
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1, words: odd, prompt: odd.joined(separator: " "))
        _ = try ReportBuilder.build(traces: [trace], output: s.path("report"), options: Self.cheap())
        let dangling = try Self.expectLinksResolve(s.path("report"))
        #expect(dangling.isEmpty, "in-page links to no element: \(dangling)")
        let html = try String(contentsOfFile: s.path("report/index.html"), encoding: .utf8)
        #expect(html.contains("cr%C3%A8me"), "a non-ASCII file name is percent-encoded in its link")
        #expect(html.hasPrefix("<!doctype html>"))
        // The prompt is escaped where it is shown.
        #expect(html.contains("&amp; 日本") && !html.contains("<h1>a crème brûlée & "))
    }

    @Test("a trace without attention maps: no heat maps, and the page still links only what is there")
    func noAttention() throws {
        let s = try Scratch("noattn")
        defer { s.remove() }
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1, attention: false)
        let summary = try ReportBuilder.build(traces: [trace], output: s.path("report"), options: Self.cheap())
        let files = Self.filesUnder(s.path("report"))
        #expect(!files.contains { $0.hasPrefix("heatmaps/") || $0.hasPrefix("overlap") || $0.hasPrefix("attention-") })
        #expect(files.contains("index.html") && files.contains("denoising.gif") && files.contains("contact-sheet.png"))
        let pages = try Self.pdfPages(s.path("report/report.pdf"))
        #expect(pages.objects == Self.expectedPDFPages(traces: 1, words: 0, attention: false))
        let dangling = try Self.expectLinksResolve(s.path("report"))
        #expect(summary.files == files, "the summary lists every file written, index.html too")
        #expect(dangling.isEmpty, "in-page links to no element (the nav must not link sections it lacks): \(dangling)")
        // --words on such a trace says why there is nothing to pick.
        var options = Self.cheap()
        options.words = ["circle"]
        let error = try #require(throws: ReportError.self) {
            try ReportBuilder.build(traces: [trace], output: s.path("words"), options: options)
        }
        #expect(error.description.contains("--trace-attention off"))
    }

    @Test("a sweep: one report, a contact sheet and heat maps per seed, frames with a column per seed")
    func sweep() throws {
        let s = try Scratch("sweep")
        defer { s.remove() }
        // Seed 7's words swap places, so a report that drew seed 1's maps for both would be caught.
        try Self.writeTrace(at: s.path("sweep/1"), seed: 1, tint: -1.5)
        try Self.writeTrace(at: s.path("sweep/7"), seed: 7, spots: [2: Self.squareSpot, 6: Self.circleSpot], tint: 1.5)
        let folders = try TraceWordMaps.traceFolders(s.path("sweep"))
        #expect(folders.count == 2)
        let summary = try ReportBuilder.build(traces: folders, output: s.path("report"), options: Self.cheap())
        #expect(summary.traces == 2 && summary.evaluations == 2 * Self.evaluations)
        let files = Self.filesUnder(s.path("report"))
        for seed in [1, 7] {
            for name in ["contact-sheet-\(seed).png", "attention-strips-\(seed).png", "attention-share-\(seed).png", "overlap-\(seed).png",
                         "heatmaps/\(seed)/02-circle.png", "heatmaps/\(seed)/06-square.png", "heatmaps/\(seed)/start.png"] {
                #expect(files.contains(name), "\(name) missing from the sweep report")
            }
        }
        #expect(!files.contains("contact-sheet.png") && !files.contains("overlap.png"))
        try Self.expectHeat(s.path("report/heatmaps/1/02-circle.png"), at: Self.circleSpot)
        try Self.expectHeat(s.path("report/heatmaps/7/02-circle.png"), at: Self.squareSpot)
        try Self.expectHeat(s.path("report/heatmaps/7/06-square.png"), at: Self.circleSpot)
        try Self.expectLinksResolve(s.path("report"))
        let pages = try Self.pdfPages(s.path("report/report.pdf"))
        #expect(pages.objects == Self.expectedPDFPages(traces: 2, words: Self.words.count))

        // The frames hold both seeds side by side: wider than one trace's, and the two x̂₀ columns
        // (DenoisingFrame: 34 px of row labels, then panel + 10 per column, x̂₀ from y = 54) differ.
        _ = try ReportBuilder.build(traces: [folders[0]], output: s.path("single"), options: Self.cheap())
        let one = try readPNG(s.path("single/frames/000.png"))
        let both = try readPNG(s.path("report/frames/002.png"))
        #expect(both.width > one.width && both.height > one.height, "sweep frame \(both.width)×\(both.height), single \(one.width)×\(one.height)")
        let gif = try GIFReadBack.read(s.path("report/denoising.gif"))
        #expect(gif.frameCount == Self.evaluations && gif.width == both.width && gif.height == both.height)
        let panel = 192, top = 54
        func meanColour(_ img: RGBImage, x: Int) -> [Double] {
            var sum = [0.0, 0.0, 0.0]
            for y in (top + 20)..<(top + panel - 20) { for xx in (x + 20)..<(x + panel - 20) {
                for c in 0..<3 { sum[c] += Double(img.pixels[3 * (y * img.width + xx) + c]) }
            } }
            let n = Double((panel - 40) * (panel - 40))
            return sum.map { $0 / n }
        }
        guard both.width >= 34 + 2 * (panel + 10), both.height >= top + panel else { return }
        let (a, b) = (meanColour(both, x: 34), meanColour(both, x: 34 + panel + 10))
        let gap = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(gap > 20, "the two seeds' x̂₀ columns look alike: \(a) vs \(b)")
    }

    @Test("a failed build leaves no report and no temporary folder, and keeps the report it would have replaced")
    func failedBuildLeavesNothing() throws {
        let s = try Scratch("fail")
        defer { s.remove() }
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1)
        var options = Self.cheap()
        options.words = ["circle", "nosuchword"]
        let error = try #require(throws: ReportError.self) {
            try ReportBuilder.build(traces: [trace], output: s.path("out/report"), options: options)
        }
        #expect(error.description.contains("nosuchword") && error.description.contains("--words"), "\(error)")
        #expect(error.description.contains("circle") && error.description.contains("square"), "the error lists the prompt's words: \(error)")
        #expect(!FileManager.default.fileExists(atPath: s.path("out/report")))
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: s.path("out"))) ?? []).filter { $0.contains("report") }
        #expect(leftovers.isEmpty, "left behind: \(leftovers)")

        // Over an existing report, the failure keeps it as it was.
        _ = try ReportBuilder.build(traces: [trace], output: s.path("out/report"), options: Self.cheap())
        let before = try Data(contentsOf: URL(fileURLWithPath: s.path("out/report/index.html")))
        let filesBefore = Self.filesUnder(s.path("out/report"))
        #expect(throws: ReportError.self) { try ReportBuilder.build(traces: [trace], output: s.path("out/report"), options: options) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: s.path("out/report/index.html"))) == before)
        #expect(Self.filesUnder(s.path("out/report")) == filesBefore)
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.path("out")) == ["report"])

        // A folder that is not a trace is named in the error.
        let notTrace = try #require(throws: ReportError.self) {
            try ReportBuilder.build(traces: [s.path("out")], output: s.path("out2"), options: Self.cheap())
        }
        #expect(notTrace.description.contains("run.json"))
        #expect(!FileManager.default.fileExists(atPath: s.path("out2")))
    }

    @Test("re-building over a report replaces it whole")
    func rebuildReplacesWhole() throws {
        let s = try Scratch("rebuild")
        defer { s.remove() }
        try Self.writeTrace(at: s.path("sweep/1"), seed: 1)
        try Self.writeTrace(at: s.path("sweep/2"), seed: 2, tint: 1)
        let out = s.path("report")
        _ = try ReportBuilder.build(traces: try TraceWordMaps.traceFolders(s.path("sweep")), output: out, options: Self.cheap())
        #expect(FileManager.default.fileExists(atPath: out + "/contact-sheet-2.png"))
        try Data("stale".utf8).write(to: URL(fileURLWithPath: out + "/stale.txt"))

        let summary = try ReportBuilder.build(traces: [s.path("sweep/1")], output: out, options: Self.cheap())
        let files = Self.filesUnder(out)
        #expect(files == summary.files, "the folder holds exactly the new report's files")
        #expect(!files.contains("stale.txt") && !files.contains("contact-sheet-2.png") && !files.contains { $0.hasPrefix("heatmaps/2/") })
        #expect(files.contains("contact-sheet.png"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.url.path).sorted() == ["report", "sweep"],
                "no .partial- or .old- folder left beside the report")
    }

    @Test("--out naming a folder that is not a report (the trace itself, any other folder) is refused and left alone")
    func outputOverANonReportIsRefused() throws {
        let s = try Scratch("outtrace")
        defer { s.remove() }
        let trace = try Self.writeTrace(at: s.path("trace"), seed: 1)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: trace + "/notes.txt"))
        let before = Self.filesUnder(trace)
        let error = try #require(throws: ReportError.self) { try ReportBuilder.build(traces: [trace], output: trace, options: Self.cheap()) }
        #expect(error.description.contains("--out"), "\(error)")
        #expect(Self.filesUnder(trace) == before, "the trace folder was changed")
        // Any other folder with something in it is refused too; an empty one is written into.
        try FileManager.default.createDirectory(atPath: s.path("photos"), withIntermediateDirectories: true)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: s.path("photos/holiday.png")))
        #expect(throws: ReportError.self) { try ReportBuilder.build(traces: [trace], output: s.path("photos"), options: Self.cheap()) }
        #expect(Self.filesUnder(s.path("photos")) == ["holiday.png"])
        try FileManager.default.createDirectory(atPath: s.path("empty"), withIntermediateDirectories: true)
        let summary = try ReportBuilder.build(traces: [trace], output: s.path("empty"), options: Self.cheap())
        #expect(Self.filesUnder(s.path("empty")) == summary.files && summary.files.contains("index.html"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: s.url.path).sorted() == ["empty", "photos", "trace"], "nothing left beside the outputs")
        // A plain file where the folder would go is not a report either.
        try Data("keep".utf8).write(to: URL(fileURLWithPath: s.path("notes.txt")))
        #expect(throws: ReportError.self) { try ReportBuilder.build(traces: [trace], output: s.path("notes.txt"), options: Self.cheap()) }
        #expect((try? String(contentsOfFile: s.path("notes.txt"), encoding: .utf8)) == "keep")
    }

    // MARK: - Full previews on a real tiny-sd trace

    /// Generates with tiny-sd through the library as `generate --trace` does (euler, 3 steps,
    /// 64×64), recording `modelPath` in run.json.
    static func realTrace(at dir: String, prompt: String = "a witch and her black cat", modelPath: String) throws {
        let model = try StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false)
        var settings = GenerationSettings(prompt: prompt)
        settings.seed = 1
        settings.steps = 3
        settings.sampler = .euler
        settings.width = imageSide
        settings.height = imageSide
        let recorder = try TraceRecorder(directory: dir, unet: model.unet, engineVersion: "test",
                                         extra: ["model": ["path": modelPath, "hash": "0000000000", "summary": "tiny-sd"]])
        let out = try TextToImagePipeline(model: model).generate(settings, observer: recorder)
        try recorder.writeImage(try RGBImage(tensor: out.image), text: [])
        if let e = recorder.lastError { throw e }
    }

    /// How blocky a frame's x̂₀ panel is (DenoisingFrame, one trace: at (10, 54), 192 px): the
    /// share of the 24-px cells (one latent pixel each) that vary inside. A cheap preview is an
    /// 8×8 image scaled without smoothing, so none do; a VAE decode at 64×64 varies within cells.
    static func detailedCells(_ frame: RGBImage) -> Double {
        let (x0, y0, cell) = (10, 54, 24)
        guard frame.width >= x0 + 8 * cell, frame.height >= y0 + 8 * cell else { return .nan }
        var varied = 0
        for by in 0..<8 { for bx in 0..<8 {
            var lo = [255, 255, 255], hi = [0, 0, 0]
            for y in (y0 + by * cell + 3)..<(y0 + (by + 1) * cell - 3) { for x in (x0 + bx * cell + 3)..<(x0 + (bx + 1) * cell - 3) {
                for c in 0..<3 {
                    let v = Int(frame.pixels[3 * (y * frame.width + x) + c])
                    lo[c] = min(lo[c], v); hi[c] = max(hi[c], v)
                }
            } }
            if (0..<3).contains(where: { hi[$0] - lo[$0] > 6 }) { varied += 1 }
        } }
        return Double(varied) / 64
    }

    @Test("--previews full: the model is needed (the error names --model), and x̂₀ is decoded at image size")
    func fullPreviews() throws {
        let s = try Scratch("full")
        defer { s.remove() }
        let trace = s.path("trace")
        try Self.realTrace(at: trace, modelPath: s.path("moved-away/tiny-sd"))

        var full = ReportOptions()
        full.previews = .full
        let error = try #require(throws: ReportError.self) { try ReportBuilder.build(traces: [trace], output: s.path("report"), options: full) }
        #expect(error.description.contains("--model"), "\(error)")
        #expect(error.description.contains("moved-away/tiny-sd"), "the error names the missing model: \(error)")
        #expect(!FileManager.default.fileExists(atPath: s.path("report")))

        full.model = Fixtures.path("tiny-sd")
        let summary = try ReportBuilder.build(traces: [trace], output: s.path("report"), options: full)
        let t = try ReportTrace(directory: trace)
        #expect(t.evaluations == 3 && summary.evaluations == 3)
        #expect(Self.filesUnder(s.path("report/frames")).count == t.evaluations)
        #expect(try GIFReadBack.read(s.path("report/denoising.gif")).frameCount == t.evaluations)
        let heatFiles = Self.filesUnder(s.path("report/heatmaps"))
        #expect(heatFiles.filter { $0.first?.isNumber == true }.count == 6, "a, witch, and, her, black, cat: \(heatFiles)")
        try Self.expectLinksResolve(s.path("report"))
        #expect(try Self.pdfPages(s.path("report/report.pdf")).objects == Self.expectedPDFPages(traces: 1, words: 6))

        // The decode is at image size (the cheap map is one pixel per latent pixel) …
        let vae = try StableDiffusionModel.loadVAEDecoder(Fixtures.path("tiny-sd"))
        let decoded = try DenoisingFrames(trace: t, mode: .full, vae: vae)
        let cheapFrames = try DenoisingFrames(trace: t, mode: .cheap, vae: nil)
        #expect(decoded.x0.allSatisfy { $0.width == t.width && $0.height == t.height })
        #expect(cheapFrames.x0.allSatisfy { $0.width == t.latentWidth && $0.height == t.latentHeight })
        #expect(decoded.xt.allSatisfy { $0.width == t.latentWidth }, "x_t stays the cheap map")

        // … and the report's frames show it: detail inside each latent pixel's cell, which the cheap report lacks.
        _ = try ReportBuilder.build(traces: [trace], output: s.path("cheap"), options: Self.cheap())
        let fullDetail = Self.detailedCells(try readPNG(s.path("report/frames/002.png")))
        let cheapDetail = Self.detailedCells(try readPNG(s.path("cheap/frames/002.png")))
        #expect(cheapDetail == 0, "the cheap frame varies inside \(cheapDetail * 100)% of its cells")
        #expect(fullDetail > 0.5, "the full frame varies inside only \(fullDetail * 100)% of its cells")
    }
}
