import Foundation
import Imaging

/// What evaluation e of a run was: "step 5/20 · t = 751 · σ = 3.21" (samplers with more
/// evaluations than steps count evaluations).
func evaluationLabel(_ t: ReportTrace, _ e: Int, short: Bool = false) -> String {
    let head = t.evaluations == t.steps || t.timesteps.count == t.steps ? "step \(e + 1)/\(t.steps)" : "evaluation \(e + 1)/\(t.timesteps.count)"
    let ts = e < t.timesteps.count ? t.timesteps[e] : .nan
    let sigma = e < t.sigmas.count ? t.sigmas[e] : .nan
    let tsText = ts == ts.rounded() ? String(Int(ts)) : String(format: "%.1f", ts)
    if short { return "\(e + 1) · t \(tsText)" + (t.conditioning(at: e)?.changed == true ? " · prompt changed" : "") }
    return "\(head) · t = \(tsText) · σ = \(String(format: sigma < 10 ? "%.3f" : "%.2f", sigma))"
}

/// With prompt editing: the text evaluation e saw ("now: …" where it changed), for a frame's second line.
func conditioningLine(_ t: ReportTrace, _ e: Int) -> String? {
    t.conditioning(at: e).map { ($0.changed ? "now: “" : "“") + $0.text + "”" }
}

/// One frame of the denoising animation. One run: x̂₀ and x_t side by side; a sweep: a column per
/// seed, x̂₀ above x_t, all at the same evaluation.
public struct DenoisingFrame: Figure {
    public struct Column {
        public let title: String
        public let x0: RGBImage, xt: RGBImage
        public init(title: String, x0: RGBImage, xt: RGBImage) { (self.title, self.x0, self.xt) = (title, x0, xt) }
    }

    public let columns: [Column]
    /// A GIF frame: its own dark panel to the edge.
    public var margin: Double { 0 }
    public let label: String
    /// A second line under the label (the prompt text, when the prompt edits during the run).
    public var subtitle: String?
    /// Side of one picture, in pixels.
    public let panel: Double
    /// x̂₀ filtered when scaled (a VAE decode), or square pixels (a latent map).
    public let smoothX0: Bool
    static let pad = 10.0, caption = 20.0
    var header: Double { subtitle == nil ? 34 : 54 }

    var single: Bool { columns.count == 1 }
    var aspect: Double { Double(columns[0].x0.height) / Double(max(1, columns[0].x0.width)) }
    public var width: Double { single ? 2 * panel + 3 * Self.pad : Double(columns.count) * (panel + Self.pad) + Self.pad + 34 }
    public var height: Double {
        single ? header + Self.caption + panel * aspect + Self.pad
            : header + Self.caption + 2 * panel * aspect + Self.caption + 2 * Self.pad
    }

    public init(columns: [Column], label: String, panel: Double, smoothX0: Bool) {
        (self.columns, self.label, self.panel, self.smoothX0) = (columns, label, panel, smoothX0)
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.fill(x: x, y: y, w: width, h: height, Colour(hex: 0x161B22))
        let light = Colour(hex: 0xF0F3F6), dim = Colour(hex: 0x9DA7B3)
        c.text(label, x: x + Self.pad, y: y + 8, font: Font(size: 15, bold: true), colour: light, maxWidth: width - 2 * Self.pad, oneLine: true)
        if let subtitle {
            c.text(subtitle, x: x + Self.pad, y: y + 30, font: .small, colour: subtitle.hasPrefix("now:") ? Colour(hex: 0xF0B72F) : dim,
                   maxWidth: width - 2 * Self.pad, oneLine: true)
        }
        let ph = panel * aspect
        if single {
            let col = columns[0]
            let top = y + header
            c.text("x̂₀ — the denoised estimate", x: x + Self.pad, y: top, font: .small, colour: dim, maxWidth: panel, oneLine: true)
            c.text("x_t — the noisy latent", x: x + 2 * Self.pad + panel, y: top, font: .small, colour: dim, maxWidth: panel, oneLine: true)
            c.image(col.x0, x: x + Self.pad, y: top + Self.caption, w: panel, h: ph, smooth: smoothX0)
            c.image(col.xt, x: x + 2 * Self.pad + panel, y: top + Self.caption, w: panel, h: ph, smooth: false)
            return
        }
        let left = x + 34
        for (i, col) in columns.enumerated() {
            let cx = left + Double(i) * (panel + Self.pad)
            c.text(col.title, x: cx, y: y + header, font: .small, colour: dim, maxWidth: panel, oneLine: true)
            c.image(col.x0, x: cx, y: y + header + Self.caption, w: panel, h: ph, smooth: smoothX0)
            c.image(col.xt, x: cx, y: y + header + 2 * Self.caption + ph + Self.pad, w: panel, h: ph, smooth: false)
        }
        c.rotatedText("x̂₀", x: x + 8, y: y + header + Self.caption + ph / 2 + 10, angle: Double.pi / 2, font: .small, colour: dim)
        c.rotatedText("x_t", x: x + 8, y: y + header + 2 * Self.caption + ph * 1.5 + Self.pad + 10, angle: Double.pi / 2, font: .small, colour: dim)
    }
}

/// Every evaluation's x̂₀ in a grid, labelled with its step and timestep.
public struct ContactSheet: Figure {
    public let images: [RGBImage]
    public let labels: [String]
    public let title: String
    public let thumb: Double
    public let smooth: Bool
    let cols: Int
    static let pad = 8.0, caption = 18.0

    public init(title: String, images: [RGBImage], labels: [String], thumb: Double = 120, smooth: Bool) {
        (self.title, self.images, self.labels, self.thumb, self.smooth) = (title, images, labels, thumb, smooth)
        cols = max(1, min(images.count, 8))
    }

    var rows: Int { (images.count + cols - 1) / cols }
    var aspect: Double { Double(images.first?.height ?? 1) / Double(max(1, images.first?.width ?? 1)) }
    public var width: Double { Double(cols) * (thumb + Self.pad) + Self.pad }
    public var height: Double { 34 + Double(rows) * (thumb * aspect + Self.caption + Self.pad) + Self.pad }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text(title, x: x + Self.pad, y: y + 4, font: .heading, maxWidth: width - 2 * Self.pad, oneLine: true)
        for (i, img) in images.enumerated() {
            let cx = x + Self.pad + Double(i % cols) * (thumb + Self.pad)
            let cy = y + 34 + Double(i / cols) * (thumb * aspect + Self.caption + Self.pad)
            c.image(img, x: cx, y: cy, w: thumb, h: thumb * aspect, smooth: smooth)
            c.text(labels[i], x: cx, y: cy + thumb * aspect + 2, font: Font(size: 10.5), colour: .muted, maxWidth: thumb, oneLine: true)
        }
    }
}
