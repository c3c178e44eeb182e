import Foundation

/// Lines over the evaluations of a run: axes with nice ticks, light grid, a legend beside the plot
/// whose labels wrap to two lines and are then cut with an ellipsis rather than overlapping.
public struct LineChart: Figure {
    public struct Series {
        public var label: String
        public var values: [Double]
        public var dashed = false
        /// Which series colour (default: the series' own index), so related lines can share one.
        public var colour: Int?
        public init(label: String, values: [Double], dashed: Bool = false, colour: Int? = nil) {
            (self.label, self.values, self.dashed, self.colour) = (label, values, dashed, colour)
        }
    }

    public var title: String
    public var xTitle: String, yTitle: String
    public var series: [Series]
    /// The x value of each point (e.g. step numbers), the same for every series.
    public var xs: [Double]
    public var yRange: ClosedRange<Double>?
    /// Show the y axis as percentages (values are fractions).
    public var percent = false
    public var width: Double = 760, height: Double = 340
    /// Vertical lines at x values, labelled at the top (where two runs part, say).
    public var markers: [Marker] = []

    public struct Marker {
        public var x: Double
        public var label: String
        /// A series colour, or nil for the muted grey.
        public var colour: Int?
        public init(x: Double, label: String, colour: Int? = nil) { (self.x, self.label, self.colour) = (x, label, colour) }
    }

    public init(title: String, xTitle: String, yTitle: String, xs: [Double], series: [Series]) {
        (self.title, self.xTitle, self.yTitle, self.xs, self.series) = (title, xTitle, yTitle, xs, series)
    }

    /// Room for the legend, right of the plot.
    public var legendWidth = 230.0

    /// Dashed when asked; past the palette's colours, every second round of them dotted, so two
    /// lines of one colour still tell apart.
    func dash(_ s: Series, _ i: Int) -> [Double] {
        if s.dashed { return [6, 4] }
        return ((s.colour ?? i) / Colour.series.count) % 2 == 1 ? [1.5, 3] : []
    }

    public func draw(_ c: Canvas, x: Double, y: Double) throws {
        c.text(title, x: x, y: y, font: .heading, maxWidth: width, oneLine: true)
        let top = y + 30, left = x + 62, right = x + width - legendWidth - 16, bottom = y + height - 46
        let all = series.flatMap(\.values).filter(\.isFinite)
        let lo = yRange?.lowerBound ?? min(0, all.min() ?? 0)
        var hi = yRange?.upperBound ?? (all.max() ?? 1)
        if hi <= lo { hi = lo + 1 }
        var yTicks = niceTicks(lo: lo, hi: hi)
        // The axis ends on a tick at or above the highest value, so no line runs off the scale.
        if yTicks.count >= 2, let last = yTicks.last, last < hi - 1e-12 { yTicks.append(last + (yTicks[1] - yTicks[0])) }
        let yTop = max(hi, yTicks.last ?? hi)
        let (x0, x1) = (xs.first ?? 0, max(xs.last ?? 1, (xs.first ?? 0) + 1))
        func px(_ v: Double) -> Double { left + (v - x0) / (x1 - x0) * (right - left) }
        func py(_ v: Double) -> Double { bottom - (v - lo) / (yTop - lo) * (bottom - top) }

        // Grid and y ticks.
        for t in yTicks {
            c.line(left, py(t), right, py(t), .rule, lineWidth: 1)
            let label = percent ? tickLabel(t * 100) + "%" : tickLabel(t)
            let s = c.measure(label, font: .small)
            c.text(label, x: left - 8 - s.width, y: py(t) - s.height / 2, font: .small, colour: .muted)
        }
        // x ticks at nice step numbers.
        for t in niceTicks(lo: x0, hi: x1, count: min(10, max(1, xs.count - 1))) where t >= x0 && t <= x1 {
            c.line(px(t), bottom, px(t), bottom + 4, .muted)
            c.text(tickLabel(t), x: px(t), y: bottom + 6, font: .small, colour: .muted, align: .centre)
        }
        c.line(left, bottom, right, bottom, .muted)
        c.line(left, top, left, bottom, .muted)
        c.text(xTitle, x: (left + right) / 2, y: bottom + 24, font: .small, colour: .muted, align: .centre)
        c.verticalText(yTitle, x: x + 12, y: (top + bottom) / 2)

        for m in markers where m.x >= x0 && m.x <= x1 {
            let colour = m.colour.map { Colour.series[$0 % Colour.series.count] } ?? .muted
            c.polyline([(px(m.x), top), (px(m.x), bottom)], colour.with(alpha: 0.8), lineWidth: 1.2, dash: [2, 3])
            c.text(m.label, x: px(m.x) + 3, y: top - 2, font: Font(size: 10.5), colour: colour)
        }
        for (i, s) in series.enumerated() {
            let colour = Colour.series[(s.colour ?? i) % Colour.series.count]
            let pts = zip(xs, s.values).filter { $0.1.isFinite }.map { (px($0.0), py($0.1)) }
            c.polyline(pts, colour, lineWidth: 2.2, dash: dash(s, i))
            if pts.count == 1, let p = pts.first { c.circle(x: p.0, y: p.1, radius: 3, colour) }
        }
        // Legend: one entry per series (up to two lines each), as many as fit.
        let lx = right + 18, labelWidth = legendWidth - 34
        var ly = top
        for (i, s) in series.enumerated() {
            let h = c.measure(s.label, font: .small, maxWidth: labelWidth, maxLines: 2).height
            if ly + h > bottom {
                c.text("… \(series.count - i) more", x: lx, y: ly, font: .small, colour: .muted)
                break
            }
            let colour = Colour.series[(s.colour ?? i) % Colour.series.count]
            c.polyline([(lx, ly + 8), (lx + 22, ly + 8)], colour, lineWidth: 3, dash: dash(s, i))
            c.text(s.label, x: lx + 30, y: ly, font: .small, maxWidth: labelWidth, maxLines: 2)
            ly += h + 6
        }
    }
}
