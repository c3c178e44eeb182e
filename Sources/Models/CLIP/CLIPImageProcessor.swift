import Foundation
import Tensors

/// transformers' `CLIPImageProcessor` (its Pillow path): the shortest side resized to 224 with
/// Pillow's bicubic (antialiased when shrinking), a centre crop of 224 × 224, then /255 and
/// CLIP's mean and std. Pillow's 8-bit resampling is followed exactly (fixed-point coefficients,
/// two passes each rounded to 8 bits, in Pillow 13's order), so the pixels match Pillow's.
public struct CLIPImageProcessor: Sendable {
    public var size = 224
    public var crop = 224
    public var mean: [Float] = [0.48145466, 0.4578275, 0.40821073]
    public var std: [Float] = [0.26862954, 0.26130258, 0.27577711]
    public init(size: Int = 224) { (self.size, self.crop) = (size, size) }

    /// `rgb`: row-major 8-bit RGB, height × width × 3 → pixel values [1, 3, crop, crop].
    public func callAsFunction(rgb: [UInt8], width: Int, height: Int) throws -> Tensor {
        guard width > 0, height > 0, rgb.count == width * height * 3 else {
            throw TensorError("CLIP preprocessing: \(rgb.count) bytes for a \(width)×\(height) RGB image")
        }
        // transformers' get_resize_output_image_size: the short side to `size`, the long one scaled and truncated.
        let (w, h) = width <= height ? (size, Int(Double(size) * Double(height) / Double(width))) : (Int(Double(size) * Double(width) / Double(height)), size)
        let resized = Self.resample(rgb, width: width, height: height, toWidth: w, toHeight: h)  // [h, w, 3]
        guard w >= crop, h >= crop else { throw TensorError("CLIP preprocessing: \(w)×\(h) is smaller than the \(crop) crop") }
        let top = (h - crop) / 2, left = (w - crop) / 2
        let out = Tensor(uninitializedShape: [1, 3, crop, crop])  // [1, 3, S, S]
        for c in 0..<3 {
            let scale = 1 / std[c], shift = mean[c]
            for y in 0..<crop {
                for x in 0..<crop {
                    let v = Float(resized[((top + y) * w + left + x) * 3 + c]) * Float(1.0 / 255.0)
                    out.pointer[(c * crop + y) * crop + x] = (v - shift) * scale
                }
            }
        }
        return out
    }

    // MARK: Pillow's resampling (Resample.c), bicubic, 8 bits per channel

    static let precisionBits = 32 - 8 - 2

    /// Pillow's bicubic kernel (a = −0.5).
    static func bicubic(_ x: Double) -> Double {
        let a = -0.5, x = abs(x)
        if x < 1 { return ((a + 2) * x - (a + 3)) * x * x + 1 }
        if x < 2 { return (((x - 5) * x + 8) * x - 4) * a }
        return 0
    }

    /// For each output index: the first input index and the fixed-point weights.
    static func coefficients(input: Int, output: Int) -> [(start: Int, weights: [Int])] {
        let windows = ResampleWindows<Double>(from: input, to: output, support: 2, kernel: bicubic)
        let one = Double(1 << precisionBits)
        return zip(windows.first, windows.weights).map { start, w in
            (start, w.map { $0 < 0 ? Int(-0.5 + $0 * one) : Int(0.5 + $0 * one) })
        }
    }

    static func clip8(_ v: Int) -> UInt8 {
        let s = v >> precisionBits
        return UInt8(clamping: max(0, min(255, s)))
    }

    /// Pillow 13's pass order (Resample.c since python-pillow/Pillow#9549): vertical first when the
    /// height shrinks by more than twice as many pixels as the width does, else horizontal first
    /// (Pillow ≤ 12 always went horizontal first). Found by comparing both orders with Pillow
    /// 13.0 on 5,107 size pairs: this rule picks the matching order on every one.
    static func verticalFirst(width: Int, height: Int, toWidth: Int, toHeight: Int) -> Bool {
        toHeight < height && height - toHeight > 2 * (width - toWidth)
    }

    /// Two passes in Pillow's order, each rounded to 8 bits.
    static func resample(_ src: [UInt8], width: Int, height: Int, toWidth: Int, toHeight: Int) -> [UInt8] {
        var img = src, w = width, h = height
        // Rows are lines of w samples 3 bytes apart; columns, lines of h samples a row apart.
        func horizontal() {
            guard toWidth != w else { return }
            img = pass(img, lines: h, from: w, to: toWidth, source: (line: w * 3, sample: 3), target: (line: toWidth * 3, sample: 3))
            w = toWidth
        }
        func vertical() {
            guard toHeight != h else { return }
            img = pass(img, lines: w, from: h, to: toHeight, source: (line: 3, sample: w * 3), target: (line: 3, sample: w * 3))
            h = toHeight
        }
        if verticalFirst(width: width, height: height, toWidth: toWidth, toHeight: toHeight) {
            vertical(); horizontal()
        } else {
            horizontal(); vertical()
        }
        return img
    }

    /// One pass along `lines` lines of RGB samples, each resampled from n to m samples; strides
    /// in bytes say where a line and a sample sit in the source and the result.
    static func pass(_ src: [UInt8], lines: Int, from n: Int, to m: Int,
                     source: (line: Int, sample: Int), target: (line: Int, sample: Int)) -> [UInt8] {
        let k = coefficients(input: n, output: m)
        var out = [UInt8](repeating: 0, count: lines * m * 3)  // [lines, m, 3] as the strides lay it out
        for l in 0..<lines {
            for (o, c) in k.enumerated() {
                let to = l * target.line + o * target.sample
                for ch in 0..<3 {
                    var s = 1 << (precisionBits - 1)
                    for (i, wt) in c.weights.enumerated() { s += Int(src[l * source.line + (c.start + i) * source.sample + ch]) * wt }
                    out[to + ch] = clip8(s)
                }
            }
        }
        return out
    }
}
