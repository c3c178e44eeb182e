import CCairo
import Foundation
import Imaging

/// Something drawn at a fixed size, onto a PNG or a PDF page alike.
public protocol Figure {
    var width: Double { get }
    var height: Double { get }
    /// Draws with the figure's top left at (x, y).
    func draw(_ c: Canvas, x: Double, y: Double) throws
    /// Paper around the figure when it is rendered on its own (a PDF page brings its own).
    var margin: Double { get }
}

extension Figure {
    /// Charts, tables and matrices get a margin so their titles do not touch the edge of the PNG;
    /// pictures (frames, heat maps) keep their exact pixel size.
    public var margin: Double { 12 }

    /// The figure as an image of whole pixels.
    public func render() throws -> RGBImage {
        let c = try Canvas.image(width: Int((width + 2 * margin).rounded(.up)), height: Int((height + 2 * margin).rounded(.up)))
        try draw(c, x: margin, y: margin)
        return c.rgbImage()
    }

    public func writePNG(to path: String) throws {
        try PNGFile.write(render(), to: path)
    }
}

extension Canvas {
    /// Text at any angle (radians, anticlockwise positive), anchored at its left end's top.
    public func rotatedText(_ s: String, x: Double, y: Double, angle: Double, font: Font = .small, colour: Colour = .ink) {
        cairo_save(cr)
        cairo_translate(cr, x, y)
        cairo_rotate(cr, -angle)
        text(s, x: 0, y: 0, font: font, colour: colour)
        cairo_restore(cr)
    }
}

/// Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `count` of them.
func niceTicks(lo: Double, hi: Double, count: Int = 5) -> [Double] {
    guard hi > lo, count > 0 else { return [lo] }
    let raw = (hi - lo) / Double(count)
    let mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
    var out: [Double] = []
    var v = ceil(lo / step - 1e-9) * step
    while v <= hi + step * 1e-9 { out.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
    return out
}

/// A tick label without trailing zeros ("0.25", "1", "20").
func tickLabel(_ v: Double) -> String {
    if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
    var s = String(format: "%.3f", v)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
}
