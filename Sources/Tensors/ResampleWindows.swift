import Foundation

/// The input span and normalised weights of each output sample of a separable, antialiased
/// resize — Pillow's `precompute_coeffs` and torch's antialiased `interpolate` compute them the
/// same way: centre (o + ½)·in/out, a kernel stretched by the shrink factor (never narrowed when
/// enlarging), the span ⌊centre ± support + ½⌋ clipped to the input, weights summing to 1.
/// Computed in `F`: Double as Pillow does, Float as torch does for float32 input.
public struct ResampleWindows<F: BinaryFloatingPoint> {
    /// first[o]: the first input index output o reads; weights[o]: its weights from there on.
    public let first: [Int]
    public let weights: [[F]]

    /// `support`: the kernel's half-width at scale 1 (1 for the triangle, 2 for bicubic).
    public init(from input: Int, to output: Int, support: F, kernel: (F) -> F) {
        let scale = F(input) / F(output)
        let filterScale = max(scale, 1), reach = support * filterScale, inverse = 1 / filterScale
        var first: [Int] = [], weights: [[F]] = []
        for o in 0..<output {
            let centre = scale * (F(o) + 0.5)
            let lo = max(Int(centre - reach + 0.5), 0), hi = min(Int(centre + reach + 0.5), input)
            var w = (lo..<hi).map { kernel((F($0) - centre + 0.5) * inverse) }
            let total = w.reduce(0, +)
            if total != 0 { w = w.map { $0 / total } }
            first.append(lo)
            weights.append(w)
        }
        (self.first, self.weights) = (first, weights)
    }
}
