import Foundation

/// Zero padding of the last two dimensions: [B, C, H, W] → [B, C, H+top+bottom, W+left+right].
/// The VAE encoder's stride-2 convs pad only right and bottom (diffusers `Downsample2D`, padding 0).
public func pad2d(_ x: Tensor, top: Int = 0, bottom: Int = 0, left: Int = 0, right: Int = 0) throws -> Tensor {
    guard x.rank == 4, min(top, bottom, left, right) >= 0 else {
        throw TensorError("pad2d: expected [B, C, H, W] and non-negative padding, got \(x.shape)")
    }
    let (n, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    let (oh, ow) = (h + top + bottom, w + left + right)
    let y = Tensor(zeros: [x.shape[0], x.shape[1], oh, ow])  // [B, C, H', W']
    Parallel.forRanges(n, grain: max(1, 16384 / max(1, oh * ow))) { planes in
        for p in planes {
            let src = x.pointer + p * h * w, dst = y.pointer + p * oh * ow + top * ow + left
            for r in 0..<h { (dst + r * ow).update(from: src + r * w, count: w) }
        }
    }
    return y
}

/// Splits along `axis` into consecutive parts of the given sizes (copies).
public func split(_ x: Tensor, axis: Int, sizes: [Int]) throws -> [Tensor] {
    guard (0..<x.rank).contains(axis), sizes.reduce(0, +) == x.shape[axis], sizes.allSatisfy({ $0 >= 0 }) else {
        throw TensorError("split: sizes \(sizes) do not add up to dimension \(axis) of \(x.shape)")
    }
    let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
    let total = x.shape[axis]
    var start = 0
    return sizes.map { size in
        var shape = x.shape
        shape[axis] = size
        let y = Tensor(uninitializedShape: shape)  // [..., size, ...]
        for o in 0..<outer {
            (y.pointer + o * size * inner).update(from: x.pointer + (o * total + start) * inner, count: size * inner)
        }
        start += size
        return y
    }
}

/// Elementwise clamp into [lo, hi].
public func clamp(_ x: Tensor, min lo: Float, max hi: Float) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)
    for i in 0..<x.count { y.pointer[i] = Swift.min(Swift.max(x.pointer[i], lo), hi) }
    return y
}

/// Nearest-neighbour resize of the last two dimensions to `height × width`, with PyTorch's
/// index rule (`src = min(floor(dst · in/out), in − 1)` in float; exact halving for 2×).
/// The UNet needs it when the latent side is not a multiple of its total downsampling.
public func upsampleNearest(_ x: Tensor, height oh: Int, width ow: Int) throws -> Tensor {
    guard x.rank == 4, oh > 0, ow > 0 else { throw TensorError("upsampleNearest: expected [B, C, H, W] and a positive size, got \(x.shape)") }
    let (planes, h, w) = (x.shape[0] * x.shape[1], x.shape[2], x.shape[3])
    if oh == 2 * h && ow == 2 * w { return try upsampleNearest2x(x) }
    func source(_ i: Int, _ input: Int, _ output: Int) -> Int {
        if output == 2 * input { return i >> 1 }
        return min(Int((Float(i) * (Float(input) / Float(output))).rounded(.down)), input - 1)
    }
    let rows = (0..<oh).map { source($0, h, oh) }, cols = (0..<ow).map { source($0, w, ow) }
    let y = Tensor(uninitializedShape: [x.shape[0], x.shape[1], oh, ow])  // [B, C, oh, ow]
    Parallel.forRanges(planes, grain: max(1, 16384 / (oh * ow))) { range in
        for p in range {
            let src = x.pointer + p * h * w, dst = y.pointer + p * oh * ow
            for r in 0..<oh {
                let s = src + rows[r] * w, d = dst + r * ow
                for c in 0..<ow { d[c] = s[cols[c]] }
            }
        }
    }
    return y
}

/// Bilinear resize of the last two dimensions (PyTorch `interpolate(mode="bilinear",
/// align_corners=False)`: source = (dst + 0.5)·in/out − 0.5, clamped at 0; edge-clamped taps).
public func resizeBilinear(_ x: Tensor, height oh: Int, width ow: Int) throws -> Tensor {
    guard x.rank >= 2, oh > 0, ow > 0 else { throw TensorError("resizeBilinear: expected [..., H, W] and a positive size, got \(x.shape)") }
    let (h, w) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
    let planes = x.count / max(1, h * w)
    func taps(_ output: Int, _ input: Int) -> [(Int, Int, Float)] {
        let scale = Float(input) / Float(output)
        return (0..<output).map { d in
            let src = max(scale * (Float(d) + 0.5) - 0.5, 0)
            let i0 = min(Int(src), input - 1)
            let i1 = i0 < input - 1 ? i0 + 1 : i0
            return (i0, i1, src - Float(i0))
        }
    }
    let rows = taps(oh, h), cols = taps(ow, w)
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast(2)) + [oh, ow])  // [..., oh, ow]
    Parallel.forRanges(planes, grain: max(1, 16384 / (oh * ow))) { range in
        for p in range {
            let src = x.pointer + p * h * w, dst = y.pointer + p * oh * ow
            for (r, (r0, r1, ly)) in rows.enumerated() {
                for (c, (c0, c1, lx)) in cols.enumerated() {
                    let top = (1 - lx) * src[r0 * w + c0] + lx * src[r0 * w + c1]
                    let bottom = (1 - lx) * src[r1 * w + c0] + lx * src[r1 * w + c1]
                    dst[r * ow + c] = (1 - ly) * top + ly * bottom
                }
            }
        }
    }
    return y
}
