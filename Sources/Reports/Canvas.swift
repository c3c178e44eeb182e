import CCairo
import CPango
import Foundation
import Imaging

/// An sRGB colour with alpha, components in [0, 1].
public struct Colour: Sendable, Equatable {
    public var r, g, b, a: Double
    public init(_ r: Double, _ g: Double, _ b: Double, _ a: Double = 1) { (self.r, self.g, self.b, self.a) = (r, g, b, a) }
    /// From 0xRRGGBB.
    public init(hex: UInt32, alpha: Double = 1) {
        self.init(Double((hex >> 16) & 255) / 255, Double((hex >> 8) & 255) / 255, Double(hex & 255) / 255, alpha)
    }
    public static let black = Colour(0, 0, 0), white = Colour(1, 1, 1)
    public static let ink = Colour(hex: 0x1F2328), muted = Colour(hex: 0x59636E), rule = Colour(hex: 0xD1D9E0)
    public static let paper = Colour(hex: 0xFFFFFF), panel = Colour(hex: 0xF6F8FA)
    /// Series colours that stay apart for colour-blind readers (Okabe–Ito), for lines and legends.
    public static let series: [Colour] = [0x0072B2, 0xE69F00, 0x009E73, 0xD55E00, 0xCC79A7, 0x56B4E9, 0xF0E442, 0x000000]
        .map { Colour(hex: $0) }
    public func with(alpha: Double) -> Colour { Colour(r, g, b, alpha) }
}

/// A font for Pango: family list (fontconfig falls back per character, so CJK and emoji draw with
/// whatever the machine has), size in points at 72 dpi = pixels.
public struct Font: Sendable {
    public var size: Double
    public var bold = false
    public var monospace = false
    public init(size: Double, bold: Bool = false, monospace: Bool = false) { (self.size, self.bold, self.monospace) = (size, bold, monospace) }
    public static let body = Font(size: 13), small = Font(size: 11), title = Font(size: 20, bold: true), heading = Font(size: 15, bold: true)
    var description: String {
        (monospace ? "DejaVu Sans Mono, monospace" : "DejaVu Sans, sans-serif") + (bold ? " Bold " : " ") + String(format: "%.1fpx", size)
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A Cairo drawing context with Pango text, on an image (PNG) or a PDF page. Coordinates are in
/// pixels (PDF: points), origin top left.
public final class Canvas {
    let cr: OpaquePointer
    let surface: OpaquePointer
    public let width: Double, height: Double

    init(surface: OpaquePointer, width: Double, height: Double) {
        self.surface = surface
        self.cr = cairo_create(surface)
        (self.width, self.height) = (width, height)
    }

    deinit {
        cairo_destroy(cr)
        cairo_surface_destroy(surface)
    }

    /// A white image canvas of whole pixels.
    public static func image(width: Int, height: Int, background: Colour = .paper) throws -> Canvas {
        guard width > 0, height > 0, width <= 32767, height <= 32767 else { throw ReportError("canvas \(width)×\(height): expected 1…32767 pixels a side") }
        let s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(width), Int32(height))!
        guard cairo_surface_status(s) == CAIRO_STATUS_SUCCESS else { throw ReportError("cairo: could not make a \(width)×\(height) image") }
        let c = Canvas(surface: s, width: Double(width), height: Double(height))
        c.fill(x: 0, y: 0, w: c.width, h: c.height, background)
        return c
    }

    // MARK: shapes

    public func fill(x: Double, y: Double, w: Double, h: Double, _ colour: Colour) {
        set(colour)
        cairo_rectangle(cr, x, y, w, h)
        cairo_fill(cr)
    }

    public func strokeRect(x: Double, y: Double, w: Double, h: Double, _ colour: Colour, lineWidth: Double = 1) {
        set(colour)
        cairo_set_line_width(cr, lineWidth)
        // Half-pixel offset keeps 1-px lines crisp.
        cairo_rectangle(cr, x + 0.5, y + 0.5, w - 1, h - 1)
        cairo_stroke(cr)
    }

    public func roundedRect(x: Double, y: Double, w: Double, h: Double, radius r: Double, fill colour: Colour) {
        set(colour)
        cairo_new_sub_path(cr)
        cairo_arc(cr, x + w - r, y + r, r, -Double.pi / 2, 0)
        cairo_arc(cr, x + w - r, y + h - r, r, 0, Double.pi / 2)
        cairo_arc(cr, x + r, y + h - r, r, Double.pi / 2, Double.pi)
        cairo_arc(cr, x + r, y + r, r, Double.pi, 3 * Double.pi / 2)
        cairo_close_path(cr)
        cairo_fill(cr)
    }

    public func polyline(_ points: [(Double, Double)], _ colour: Colour, lineWidth: Double = 2, dash: [Double] = []) {
        guard let first = points.first else { return }
        set(colour)
        cairo_set_line_width(cr, lineWidth)
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND)
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND)
        dash.withUnsafeBufferPointer { cairo_set_dash(cr, $0.baseAddress, Int32($0.count), 0) }
        cairo_move_to(cr, first.0, first.1)
        for p in points.dropFirst() { cairo_line_to(cr, p.0, p.1) }
        cairo_stroke(cr)
        cairo_set_dash(cr, nil, 0, 0)
    }

    public func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ colour: Colour, lineWidth: Double = 1) {
        polyline([(x0, y0), (x1, y1)], colour, lineWidth: lineWidth)
    }

    public func circle(x: Double, y: Double, radius: Double, _ colour: Colour) {
        set(colour)
        cairo_arc(cr, x, y, radius, 0, 2 * Double.pi)
        cairo_fill(cr)
    }

    func set(_ c: Colour) { cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a) }

    // MARK: text

    public enum Alignment { case left, centre, right }

    /// Draws text with Pango at (x, y) = top left of its box (or top centre / top right), wrapped
    /// at `maxWidth` (or ellipsized to one line when `oneLine`, to `maxLines` lines when given);
    /// returns the box's size.
    @discardableResult
    public func text(_ s: String, x: Double, y: Double, font: Font = .body, colour: Colour = .ink, maxWidth: Double? = nil,
                     align: Alignment = .left, oneLine: Bool = false, maxLines: Int? = nil, markup: Bool = false) -> (width: Double, height: Double) {
        let layout = makeLayout(s, font: font, maxWidth: maxWidth, align: align, oneLine: oneLine, maxLines: maxLines, markup: markup)
        defer { g_object_unref(UnsafeMutableRawPointer(layout)) }
        var w: Int32 = 0, h: Int32 = 0
        pango_layout_get_pixel_size(layout, &w, &h)
        var left = x
        if maxWidth == nil {
            switch align {
            case .left: break
            case .centre: left = x - Double(w) / 2
            case .right: left = x - Double(w)
            }
        }
        set(colour)
        cairo_move_to(cr, left, y)
        pango_cairo_show_layout(cr, layout)
        return (Double(w), Double(h))
    }

    /// The size `text` would take.
    public func measure(_ s: String, font: Font = .body, maxWidth: Double? = nil, oneLine: Bool = false, maxLines: Int? = nil,
                        markup: Bool = false) -> (width: Double, height: Double) {
        let layout = makeLayout(s, font: font, maxWidth: maxWidth, align: .left, oneLine: oneLine, maxLines: maxLines, markup: markup)
        defer { g_object_unref(UnsafeMutableRawPointer(layout)) }
        var w: Int32 = 0, h: Int32 = 0
        pango_layout_get_pixel_size(layout, &w, &h)
        return (Double(w), Double(h))
    }

    /// Text turned 90° anticlockwise (a y-axis title), centred on (x, y).
    public func verticalText(_ s: String, x: Double, y: Double, font: Font = .small, colour: Colour = .muted) {
        let size = measure(s, font: font)
        cairo_save(cr)
        cairo_translate(cr, x - size.height / 2, y + size.width / 2)
        cairo_rotate(cr, -Double.pi / 2)
        text(s, x: 0, y: 0, font: font, colour: colour)
        cairo_restore(cr)
    }

    private func makeLayout(_ s: String, font: Font, maxWidth: Double?, align: Alignment, oneLine: Bool, maxLines: Int? = nil,
                            markup: Bool) -> OpaquePointer {
        let layout = pango_cairo_create_layout(cr)!
        let desc = pango_font_description_from_string(font.description)
        pango_layout_set_font_description(layout, desc)
        pango_font_description_free(desc)
        if markup { pango_layout_set_markup(layout, s, -1) } else { pango_layout_set_text(layout, s, -1) }
        if let maxWidth {
            pango_layout_set_width(layout, Int32(maxWidth * Double(PANGO_SCALE)))
            if oneLine {
                pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_END)
            } else {
                pango_layout_set_wrap(layout, PANGO_WRAP_WORD_CHAR)
                // A negative height is a line count: wrapped, then ellipsized after that many lines.
                if let maxLines { pango_layout_set_height(layout, -Int32(maxLines)); pango_layout_set_ellipsize(layout, PANGO_ELLIPSIZE_END) }
            }
            pango_layout_set_alignment(layout, align == .left ? PANGO_ALIGN_LEFT : align == .centre ? PANGO_ALIGN_CENTER : PANGO_ALIGN_RIGHT)
        }
        return layout
    }

    // MARK: images

    /// Draws an RGB image into the rectangle, scaled; `smooth` false keeps pixels square (latent
    /// previews), true filters (photographs shown smaller or larger).
    public func image(_ img: RGBImage, x: Double, y: Double, w: Double, h: Double, smooth: Bool = true, alpha: Double = 1) {
        guard let src = Self.surface(of: img) else { return }
        defer { cairo_surface_destroy(src) }
        cairo_save(cr)
        cairo_rectangle(cr, x, y, w, h)
        cairo_clip(cr)
        cairo_translate(cr, x, y)
        cairo_scale(cr, w / Double(img.width), h / Double(img.height))
        cairo_set_source_surface(cr, src, 0, 0)
        let pattern = cairo_get_source(cr)
        cairo_pattern_set_filter(pattern, smooth ? CAIRO_FILTER_GOOD : CAIRO_FILTER_NEAREST)
        // Pad, not repeat-black, at the edges when scaling.
        cairo_pattern_set_extend(pattern, CAIRO_EXTEND_PAD)
        cairo_paint_with_alpha(cr, alpha)
        cairo_restore(cr)
    }

    /// An ARGB32 Cairo surface holding the image (opaque).
    static func surface(of img: RGBImage) -> OpaquePointer? {
        guard img.width > 0, img.height > 0, img.pixels.count == img.width * img.height * 3 else { return nil }
        let s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(img.width), Int32(img.height))!
        cairo_surface_flush(s)
        let stride = Int(cairo_image_surface_get_stride(s))
        let data = cairo_image_surface_get_data(s)!
        img.pixels.withUnsafeBufferPointer { p in
            for yy in 0..<img.height {
                let row = (data + yy * stride).withMemoryRebound(to: UInt32.self, capacity: img.width) { $0 }
                for xx in 0..<img.width {
                    let i = (yy * img.width + xx) * 3
                    row[xx] = 0xFF00_0000 | UInt32(p[i]) << 16 | UInt32(p[i + 1]) << 8 | UInt32(p[i + 2])
                }
            }
        }
        cairo_surface_mark_dirty(s)
        return s
    }

    // MARK: output

    /// The canvas as RGB bytes (image canvases).
    public func rgbImage() -> RGBImage {
        cairo_surface_flush(surface)
        let w = Int(cairo_image_surface_get_width(surface)), h = Int(cairo_image_surface_get_height(surface))
        let stride = Int(cairo_image_surface_get_stride(surface))
        guard let data = cairo_image_surface_get_data(surface) else { return RGBImage(width: 0, height: 0, pixels: []) }
        var out = [UInt8](repeating: 0, count: w * h * 3)  // [H, W, 3]
        for yy in 0..<h {
            let row = (data + yy * stride).withMemoryRebound(to: UInt32.self, capacity: w) { $0 }
            for xx in 0..<w {
                // Opaque canvases: premultiplied equals straight.
                let v = row[xx], i = (yy * w + xx) * 3
                out[i] = UInt8((v >> 16) & 255); out[i + 1] = UInt8((v >> 8) & 255); out[i + 2] = UInt8(v & 255)
            }
        }
        return RGBImage(width: w, height: h, pixels: out)
    }

    /// Writes the canvas as a PNG, atomically.
    public func writePNG(to path: String) throws {
        try PNGFile.write(rgbImage(), to: path)
    }
}

/// Reads a PNG (8-bit RGB or RGBA) with Cairo: the trace's image and previews.
public func readPNG(_ path: String) throws -> RGBImage {
    // Cairo decodes whatever size the header claims; a stranger's PNG is checked first.
    guard let data = FileManager.default.contents(atPath: path) else { throw ReportError("\(path): cannot be read") }
    do { try PNGFile.check(data, source: path) } catch { throw ReportError("\(error)") }
    let s = cairo_image_surface_create_from_png(path)!
    defer { cairo_surface_destroy(s) }
    guard cairo_surface_status(s) == CAIRO_STATUS_SUCCESS else {
        throw ReportError("\(path): not a readable PNG (\(String(cString: cairo_status_to_string(cairo_surface_status(s)))))")
    }
    let c = Canvas(surface: cairo_surface_reference(s), width: Double(cairo_image_surface_get_width(s)), height: Double(cairo_image_surface_get_height(s)))
    return c.rgbImage()
}

/// A PDF document written page by page with Cairo's PDF surface; `finish()` moves it into place,
/// so a failed report leaves no half-written PDF.
public final class PDFDocument {
    let surface: OpaquePointer
    let temporary: String, path: String
    public private(set) var pages = 0
    private var finished = false

    public init(path: String, title: String) throws {
        self.path = path
        temporary = path + ".part-\(getpid())"
        surface = cairo_pdf_surface_create(temporary, 595, 842)!
        guard cairo_surface_status(surface) == CAIRO_STATUS_SUCCESS else { throw ReportError("\(path): cannot write a PDF there") }
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_TITLE, title)
        cairo_pdf_surface_set_metadata(surface, CAIRO_PDF_METADATA_CREATOR, "Pareidolia")
    }

    /// One page of the given size (points); `draw` paints it.
    public func page(width: Double, height: Double, _ draw: (Canvas) throws -> Void) rethrows {
        cairo_pdf_surface_set_size(surface, width, height)
        let c = Canvas(surface: cairo_surface_reference(surface), width: width, height: height)
        c.fill(x: 0, y: 0, w: width, h: height, .paper)
        try draw(c)
        cairo_show_page(c.cr)
        pages += 1
    }

    deinit {
        if !finished { cairo_surface_destroy(surface); unlink(temporary) }
    }

    public func finish() throws {
        finished = true
        cairo_surface_finish(surface)
        let status = cairo_surface_status(surface)
        cairo_surface_destroy(surface)
        guard status == CAIRO_STATUS_SUCCESS else {
            unlink(temporary)
            throw ReportError("\(path): cairo could not write the PDF (\(String(cString: cairo_status_to_string(status))))")
        }
        guard rename(temporary, path) == 0 else { unlink(temporary); throw ReportError("\(path): cannot move the PDF into place") }
    }
}
