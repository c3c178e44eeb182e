import Foundation

/// What was run: the prompt as the model saw it (words with their A1111 weights, chunk breaks,
/// embedding triggers), the negative prompt, seeds, sampler, steps, guidance, size, model, the
/// arithmetic and the time it took.
public struct RunCard: Figure {
    /// A word of the prompt as parsed: its text, weight, chunk, whether an embedding fills it.
    public struct Word: Equatable {
        public let text: String
        public let weight: Double
        public let chunk: Int
        public let embedding: Bool
    }

    public let words: [Word]
    public let rows: [(String, String)]
    public var width: Double = 760
    /// The "Run" heading (the PDF page has it; the HTML section has its own).
    public var showTitle = true
    public var height: Double { (showTitle ? 70 : 36) + promptHeight + Double(rows.count) * 24 + 20 }
    var promptHeight: Double { Double(promptLines) * 30 + 28 }
    private let promptLines: Int

    public init(traces: [ReportTrace]) {
        let t = traces[0]
        words = Self.words(t.tokens)
        let seeds = traces.map { String($0.seed) }.joined(separator: ", ")
        let embeddings = (t.run["embeddings"] as? [[String: Any]] ?? []).map {
            "\($0["trigger"] as? String ?? "?") (\($0["vectors"] as? Int ?? 0) vector\(($0["vectors"] as? Int ?? 0) == 1 ? "" : "s"), \(URL(fileURLWithPath: $0["file"] as? String ?? "").lastPathComponent))"
        }
        let arithmetic = t.run["arithmetic"] as? [String: Any] ?? [:]
        let secs = traces.map { $0.evaluationSeconds.reduce(0, +) }
        let perEval = traces.flatMap(\.evaluationSeconds)
        var rows: [(String, String)] = [
            ("negative prompt", t.negativePrompt.isEmpty ? "(none)" : t.negativePrompt),
            (traces.count == 1 ? "seed" : "seeds (\(traces.count))", seeds),
            ("sampler", "\(t.sampler), \(t.steps) steps (\(t.evaluations) UNet evaluations), guidance \(Self.number(t.guidance))"),
            ("size", "\(t.width) × \(t.height) (latent \(t.latentWidth) × \(t.latentHeight))"),
            ("model", "\(URL(fileURLWithPath: t.modelPath).lastPathComponent) [\(t.modelHash)] — \(t.modelSummary)"),
            ("arithmetic", "weights \(arithmetic["precision"] as? String ?? "fp32"), kernels \(arithmetic["fast"] as? String ?? "none")"),
        ]
        if !embeddings.isEmpty { rows.insert(("embeddings", embeddings.joined(separator: "; ")), at: 1) }
        if !perEval.isEmpty {
            let mean = perEval.reduce(0, +) / Double(perEval.count)
            rows.append(("time", String(format: "%.1f s of UNet evaluations%@, %.2f s/it", secs.reduce(0, +), traces.count > 1 ? " over \(traces.count) seeds" : "", mean)))
        }
        rows.append(("engine", "Pareidolia \(t.run["engine_version"] as? String ?? "?"), trace format \(t.run["format_version"] as? Int ?? 0)"))
        self.rows = rows
        promptLines = Self.layout(words, width: 760 - 32, measure: Self.chipWidth).lines
    }

    /// Prompt words from the trace's token rows, in order; an embedding's rows are one word.
    static func words(_ tokens: [[String: Any]]) -> [Word] {
        var out: [Word] = []
        var lastKey = ""
        for row in tokens {
            guard let piece = row["piece"] as? Int, piece >= 0 else { continue }
            let weight = (row["weight"] as? NSNumber)?.doubleValue ?? 1, chunk = row["chunk"] as? Int ?? 0
            if let wi = row["word_index"] as? Int, let w = row["word"] as? String {
                let key = "w\(wi)"
                if key != lastKey { out.append(Word(text: w, weight: weight, chunk: chunk, embedding: false)) }
                lastKey = key
            } else if let text = row["text"] as? String {
                let key = "e\(text)#\(piece)"
                if key != lastKey { out.append(Word(text: text, weight: weight, chunk: chunk, embedding: true)) }
                lastKey = key
            }
        }
        return out
    }

    static func number(_ v: Double) -> String { v == v.rounded() ? String(Int(v)) : String(format: "%.2f", v) }

    static func chipText(_ w: Word) -> String { w.weight == 1 ? w.text : "\(w.text) ×\(String(format: "%.2f", w.weight))" }

    static let chipFont = Font(size: 12)
    /// A chip's width as Pango lays its text out.
    static func chipWidth(_ w: Word) -> Double {
        guard let c = try? Canvas.image(width: 1, height: 1) else { return Double(chipText(w).count) * 7.6 + 12 }
        return c.measure(chipText(w), font: chipFont).width + 12
    }

    /// Where each chip goes, wrapping at `width`; chunk breaks start a new line.
    static func layout(_ words: [Word], width: Double, measure: (Word) -> Double) -> (positions: [(Double, Int)], lines: Int) {
        var x = 0.0, line = 0, positions: [(Double, Int)] = []
        var chunk = words.first?.chunk ?? 0
        for w in words {
            let cw = measure(w)
            if w.chunk != chunk || (x > 0 && x + cw > width) { line += 1; x = 0; chunk = w.chunk }
            positions.append((x, line))
            x += cw + 6
        }
        return (positions, max(1, line + 1))
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        let head = showTitle ? 32.0 : 0
        if showTitle { c.text("Run", x: x, y: y, font: .title) }
        c.text("prompt — each word as the model got it; ×w: its A1111 weight; violet: an embedding; a new line: a new 75-token chunk",
               x: x, y: y + head, font: .small, colour: .muted, maxWidth: width, oneLine: true)
        let (positions, _) = Self.layout(words, width: width - 32) { c.measure(Self.chipText($0), font: Self.chipFont).width + 12 }
        let top = y + head + 24
        for (w, p) in zip(words, positions) {
            let label = Self.chipText(w)
            let size = c.measure(label, font: Self.chipFont)
            let cx = x + p.0, cy = top + Double(p.1) * 30
            let fill = w.embedding ? Colour(hex: 0xE9D8FD) : w.weight > 1 ? Colour(hex: 0xFDE2C8) : w.weight < 1 ? Colour(hex: 0xDCE7F5) : Colour.panel
            c.roundedRect(x: cx, y: cy, w: size.width + 12, h: 24, radius: 5, fill: fill)
            c.text(label, x: cx + 6, y: cy + 12 - size.height / 2, font: Self.chipFont)
        }
        var ry = top + promptHeight - 8
        for (k, v) in rows {
            c.text(k, x: x, y: ry, font: Font(size: 12, bold: true), colour: .muted)
            c.text(v, x: x + 140, y: ry, font: Font(size: 12), maxWidth: width - 140, oneLine: true)
            ry += 24
        }
    }
}
