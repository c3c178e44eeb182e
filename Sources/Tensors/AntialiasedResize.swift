import Foundation

/// Resizes the last two dimensions as PyTorch's `interpolate(mode="bilinear",
/// align_corners=False, antialias=True)` does (Pillow's BILINEAR, in floating point): a triangle
/// filter whose support widens with the shrink factor, so every input sample counts and nothing
/// aliases; upscaling is plain bilinear. Used to shrink a latent before decoding when only a small
/// picture is wanted (CLIP's 224 px from a 512-px run).
public func resizeBilinearAntialiased(_ x: Tensor, height oh: Int, width ow: Int) throws -> Tensor {
    guard x.rank >= 2, oh > 0, ow > 0 else {
        throw TensorError("resizeBilinearAntialiased: expected [..., H, W] and a positive size, got \(x.shape) → \(oh)×\(ow)")
    }
    let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
    let planes = x.count / max(1, h * w)
    // Weights in Float, as torch computes them for float32 input (in Double they differ from
    // torch's by up to 5e-6 of the values on a 64 → 28 shrink; in Float by one rounding).
    func taps(_ n: Int, _ m: Int) -> ResampleWindows<Float> { ResampleWindows(from: n, to: m, support: 1) { max(0, 1 - abs($0)) } }
    let rows = taps(h, oh), cols = taps(w, ow)
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [oh, ow])  // [..., oh, ow]
    Parallel.forRanges(planes, grain: max(1, 16384 / (oh * ow))) { range in
        var across = [Double](repeating: 0, count: h * ow)  // one plane at the new width: [h, ow]
        for p in range {
            let src = x.pointer + p * h * w, dst = y.pointer + p * oh * ow
            for r in 0..<h {
                for c in 0..<ow {
                    var acc = 0.0
                    for (k, wt) in cols.weights[c].enumerated() { acc += Double(wt) * Double(src[r * w + cols.first[c] + k]) }
                    across[r * ow + c] = acc
                }
            }
            for r in 0..<oh {
                for c in 0..<ow {
                    var acc = 0.0
                    for (k, wt) in rows.weights[r].enumerated() { acc += Double(wt) * across[(rows.first[r] + k) * ow + c] }
                    dst[r * ow + c] = Float(acc)
                }
            }
        }
    }
    return y
}
