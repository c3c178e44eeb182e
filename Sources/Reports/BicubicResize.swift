import Foundation

/// Why a plane could not be resized.
public struct BicubicResizeError: Error, CustomStringConvertible {
    public let description: String
}

/// Resizes one row-major plane [height, width] to [toHeight, toWidth] exactly as PyTorch's
/// `F.interpolate(x, size=(toHeight, toWidth), mode="bicubic", align_corners=False)` does:
///
/// - the scale of an axis is in/out (an explicit size, no scale factor), and the source coordinate
///   of output index o is s = scale · (o + 0.5) − 0.5, not clamped (torch clamps it for bilinear,
///   not for cubic);
/// - the four taps are ⌊s⌋ − 1 … ⌊s⌋ + 2, each clamped to [0, in − 1] (the border sample repeats);
/// - their weights are Keys' cubic convolution with A = −0.75 at distances 1 + t, t, 1 − t, 2 − t
///   (t = s − ⌊s⌋), so they sum to 1 and a same-size resize is the identity;
/// - the kernel is separable: each output pixel is Σⱼ wyⱼ · (Σᵢ wxᵢ · x[yⱼ, xᵢ]), x-taps inside.
///
/// Downsampling uses the same four taps (no antialiasing, as torch's default `antialias=False`).
/// Values can overshoot the input's range (the kernel has negative lobes); callers clamp.
/// Arithmetic is in Double, so the result is torch's to within float32 rounding (torch computes in
/// float32: differences ≈ 1e-6 of the values' scale).
public func bicubicResize(_ plane: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int) throws -> [Float] {
    guard width > 0, height > 0, toWidth > 0, toHeight > 0 else {
        throw BicubicResizeError(description: "bicubic resize \(width)×\(height) → \(toWidth)×\(toHeight): sizes must be positive")
    }
    guard plane.count == width * height else {
        throw BicubicResizeError(description: "bicubic resize: a \(width)×\(height) plane needs \(width * height) values, got \(plane.count)")
    }
    return bicubicResizeUnchecked(plane, width: width, height: height, toWidth: toWidth, toHeight: toHeight)
}

/// `bicubicResize` for sizes the caller has checked (all positive, `plane.count == width · height`).
func bicubicResizeUnchecked(_ plane: [Float], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [Float] {
    let xTaps = CubicTaps(from: width, to: toWidth)
    let yTaps = CubicTaps(from: height, to: toHeight)
    // Along x first: every input row at the output width.
    var rows = [Double](repeating: 0, count: height * toWidth)  // [h, W]
    for y in 0..<height {
        for ox in 0..<toWidth {
            var acc = 0.0
            for k in 0..<4 {
                acc += xTaps.weights[4 * ox + k] * Double(plane[y * width + xTaps.indices[4 * ox + k]])
            }
            rows[y * toWidth + ox] = acc
        }
    }
    // Then along y, over those rows.
    var out = [Float](repeating: 0, count: toHeight * toWidth)  // [H, W]
    for oy in 0..<toHeight {
        for ox in 0..<toWidth {
            var acc = 0.0
            for k in 0..<4 {
                acc += yTaps.weights[4 * oy + k] * rows[yTaps.indices[4 * oy + k] * toWidth + ox]
            }
            out[oy * toWidth + ox] = Float(acc)
        }
    }
    return out
}

/// One axis' four source indices (clamped) and weights per output index, flattened [out, 4].
struct CubicTaps {
    var indices: [Int]
    var weights: [Double]

    /// PyTorch's cubic convolution coefficient.
    static let a = -0.75

    init(from n: Int, to m: Int) {
        indices = [Int](repeating: 0, count: 4 * m)  // [m, 4]
        weights = [Double](repeating: 0, count: 4 * m)  // [m, 4]
        let scale = Double(n) / Double(m)
        for o in 0..<m {
            let s = scale * (Double(o) + 0.5) - 0.5
            let base = Int(s.rounded(.down))
            let t = s - Double(base)
            let w = Self.weights(t)
            for k in 0..<4 {
                indices[4 * o + k] = min(max(base - 1 + k, 0), n - 1)
                weights[4 * o + k] = w[k]
            }
        }
    }

    /// Weights of the taps at distances 1 + t, t, 1 − t, 2 − t from the source coordinate.
    static func weights(_ t: Double) -> [Double] {
        // |d| ≤ 1 and 1 < |d| < 2 pieces of Keys' kernel.
        func near(_ d: Double) -> Double { ((a + 2) * d - (a + 3)) * d * d + 1 }
        func far(_ d: Double) -> Double { ((a * d - 5 * a) * d + 8 * a) * d - 4 * a }
        return [far(t + 1), near(t), near(1 - t), far(2 - t)]
    }
}
