import Foundation
import Imaging
import Models

/// Each run's final image against every compared prompt's phrases, with the CLIP a trace was
/// measured with (`pareidolia clip`): does the second prompt's image still show what the first
/// asked for? The stored measurements hold only each run against its own prompt, so the images
/// are scored again here, all against all.
struct ComparisonClip {
    /// The whole prompts, their comma-separated phrases and any --phrases asked for, each once.
    let phrases: [String]
    /// owners[l]: the prompts (0-based) that phrase l comes from.
    let owners: [Set<Int>]
    /// Trace indices of the runs scored (those with a final picture), and their labels.
    let runs: [Int]
    let runLabels: [String]
    /// cosines[l][r]: phrase l against run r's final image.
    let cosines: [[Float]]
    let clipModel: String

    /// nil when no compared trace was measured with CLIP; throws when its CLIP cannot be loaded.
    init?(_ cmp: Comparison, pictures: [RGBImage?]) throws {
        let stored = cmp.traces.map { StoredClip(directory: $0.directory) }
        guard stored.contains(where: { $0 != nil }) else { return nil }
        let model = stored.compactMap { $0?.clipModel }.first { !$0.isEmpty } ?? ""
        var phrases: [String] = [], owners: [Set<Int>] = []
        for (p, prompt) in cmp.prompts.enumerated() {
            // The phrases measured for this prompt, or the ones `pareidolia clip` would measure.
            let measured = cmp.traces.indices.filter { cmp.traces[$0].prompt == prompt }.compactMap { stored[$0] }.first
            let own = measured.map { s in s.labels.indices.filter { s.kinds[$0] != "negative" }.map { s.labels[$0] } }
                ?? ([prompt] + { $0.count > 1 ? $0 : [] }(ClipSimilarity.phrases(of: prompt)))
            for phrase in own {
                if let i = phrases.firstIndex(of: phrase) { owners[i].insert(p) } else { phrases.append(phrase); owners.append([p]) }
            }
        }
        guard !model.isEmpty, FileManager.default.fileExists(atPath: model) else {
            throw ReportError("the CLIP the traces were measured with (\(model.isEmpty ? "not recorded in clip.json" : model)) is not there; measure again with pareidolia clip --clip-model PATH")
        }
        let scorer: CLIPScorer
        do { scorer = try CLIPScorer(folder: model) } catch { throw ReportError("\(model): cannot load its CLIP (\(error))") }
        let text = try scorer.textEmbeddings(phrases)  // [L, P]
        var runs: [Int] = [], columns: [[Float]] = []
        for (i, picture) in pictures.enumerated() {
            guard let picture else { continue }
            let image = try scorer.imageEmbedding(rgb: picture.pixels, width: picture.width, height: picture.height)  // [1, P]
            columns.append(cosineSimilarities(image, text)[0])
            runs.append(i)
        }
        (self.phrases, self.owners, self.runs, clipModel) = (phrases, owners, runs, model)
        runLabels = runs.map { cmp.runLabel($0) }
        cosines = phrases.indices.map { l in columns.map { $0[l] } }
    }
}

/// ComparisonClip drawn: a row per phrase, a column per run; the run's own prompt's phrases
/// outlined, each row's best image in bold, colour over the matrix's range.
struct ClipMatrix: Figure {
    let clip: ComparisonClip
    /// The prompt (0-based) of each run column.
    let runPrompts: [Int]
    static let phraseWidth = 330.0, cell = 86.0, rowHeight = 34.0
    var width: Double { max(620, Self.phraseWidth + Double(clip.runs.count) * Self.cell + 16) }
    var height: Double { 84 + Double(clip.phrases.count) * Self.rowHeight + 60 }

    func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text("CLIP: each run's final image against every prompt's phrases", x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        // Column heads of up to three lines ("prompt 2", then the seed, which may wrap) above the grid.
        let gx = x + Self.phraseWidth, top = y + 84
        for (r, label) in clip.runLabels.enumerated() {
            let parts = label.components(separatedBy: " · ")
            c.text(parts.joined(separator: "\n"), x: gx + Double(r) * Self.cell, y: y + 32, font: .small, colour: .muted,
                   maxWidth: Self.cell - 2, align: .centre, maxLines: 3)
        }
        let all = clip.cosines.flatMap { $0 }
        let lo = Double(all.min() ?? 0), hi = Double(all.max() ?? 1)
        for (l, phrase) in clip.phrases.enumerated() {
            let ry = top + Double(l) * Self.rowHeight
            let owners = clip.owners[l].sorted().map { String($0 + 1) }.joined(separator: ", ")
            c.text("\(phrase)", x: x, y: ry + 2, font: .small, maxWidth: Self.phraseWidth - 12, oneLine: true)
            c.text("prompt \(owners)", x: x, y: ry + 17, font: Font(size: 10), colour: .muted)
            let best = clip.cosines[l].indices.max { clip.cosines[l][$0] < clip.cosines[l][$1] }
            for (r, v) in clip.cosines[l].enumerated() {
                let cx = gx + Double(r) * Self.cell
                let colour = OverlapMatrix.sequential(hi > lo ? (Double(v) - lo) / (hi - lo) : 0)
                c.fill(x: cx, y: ry, w: Self.cell - 2, h: Self.rowHeight - 2, colour)
                if clip.owners[l].contains(runPrompts[r]) { c.strokeRect(x: cx, y: ry, w: Self.cell - 2, h: Self.rowHeight - 2, .ink, lineWidth: 2) }
                let dark = (0.299 * colour.r + 0.587 * colour.g + 0.114 * colour.b) < 0.55
                c.text(String(format: "%.3f", v), x: cx + Self.cell / 2 - 1, y: ry + Self.rowHeight / 2 - 9, font: Font(size: 12, bold: r == best),
                       colour: dark ? .white : .ink, align: .centre)
            }
        }
        c.text("cosine of the CLIP embeddings of the run's final image and the phrase (\(URL(fileURLWithPath: clip.clipModel).lastPathComponent)); outlined: the run's own prompt's phrases; bold: the row's best image; colour from \(String(format: "%.3f", lo)) (white) to \(String(format: "%.3f", hi))",
               x: x, y: top + Double(clip.phrases.count) * Self.rowHeight + 10, font: .small, colour: .muted, maxWidth: width - 10)
    }
}
