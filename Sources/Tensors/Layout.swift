import CKernels
import Foundation

/// Nearest-neighbour 2× upsampling: [B, C, H, W] → [B, C, 2H, 2W].
public func upsampleNearest2x(_ x: Tensor) throws -> Tensor {
    try requireRank(x, 4, "upsampleNearest2x", "[B, C, H, W]")
    let (B, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let y = Tensor(uninitializedShape: [B, C, 2 * H, 2 * W])  // [B, C, 2H, 2W]
    guard H * W > 0 else { return y }
    Parallel.forRanges(B * C, grain: max(1, 16384 / (H * W))) { p in
        pd_upsample_nearest2x(x.pointer, y.pointer, Int32(H), Int32(W), p.lowerBound, p.upperBound)
    }
    return y
}

/// Concatenation along `axis` (negative counts from the end); all other dimensions must match.
public func concat(_ tensors: [Tensor], axis: Int) throws -> Tensor {
    guard let first = tensors.first else { throw TensorError("concat: no tensors") }
    let rank = first.rank
    let ax = axis < 0 ? axis + rank : axis
    guard ax >= 0, ax < rank else { throw TensorError("concat: axis \(axis) out of range for rank \(rank)") }
    for t in tensors where t.rank != rank || zip(t.shape, first.shape).enumerated().contains(where: { $0.offset != ax && $0.element.0 != $0.element.1 }) {
        throw TensorError("concat: shape \(t.shape) does not match \(first.shape) outside axis \(ax)")
    }
    var shape = first.shape
    shape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }  // [..., sum of axis sizes, ...]
    let y = Tensor(uninitializedShape: shape)
    // Each input contributes, per outer index, one contiguous run of shape[ax...] values.
    let outer = first.shape[..<ax].reduce(1, *)
    let inner = first.shape[(ax + 1)...].reduce(1, *)
    let runs = tensors.map { $0.shape[ax] * inner }
    let total = shape[ax] * inner
    guard y.count > 0 else { return y }
    Parallel.forRanges(outer, grain: max(1, 65536 / total)) { range in
        for o in range {
            var offset = o * total
            for (t, run) in zip(tensors, runs) {
                (y.pointer + offset).update(from: t.pointer + o * run, count: run)
                offset += run
            }
        }
    }
    return y
}

/// Batched transpose of the last two dimensions: [..., M, N] → [..., N, M].
public func transposeLastTwo(_ x: Tensor) throws -> Tensor {
    guard x.rank >= 2 else { throw TensorError("transposeLastTwo: expected rank ≥ 2, got \(x.shape)") }
    let (M, N) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
    var shape = x.shape
    shape.swapAt(x.rank - 2, x.rank - 1)  // [..., N, M]
    let y = Tensor(uninitializedShape: shape)
    guard M * N > 0 else { return y }
    let tiles = (x.count / (M * N)) * ((M + 31) / 32)
    Parallel.forRanges(tiles, grain: max(1, 32768 / (32 * N))) { t in
        pd_transpose_tiles(x.pointer, y.pointer, M, N, t.lowerBound, t.upperBound)
    }
    return y
}

/// Image to token sequence, as SD's transformer blocks need: [B, C, H, W] → [B, H·W, C].
public func imageToTokens(_ x: Tensor) throws -> Tensor {
    try requireRank(x, 4, "imageToTokens", "[B, C, H, W]")
    let flat = try x.reshaped([x.shape[0], x.shape[1], x.shape[2] * x.shape[3]])  // [B, C, H·W]
    return try transposeLastTwo(flat)  // [B, H·W, C]
}

/// Token sequence back to an image: [B, H·W, C] → [B, C, H, W].
public func tokensToImage(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
    try requireRank(x, 3, "tokensToImage", "[B, H·W, C]")
    guard x.shape[1] == height * width else { throw TensorError("tokensToImage: \(x.shape[1]) tokens are not \(height)×\(width)") }
    let t = try transposeLastTwo(x)  // [B, C, H·W]
    return try t.reshaped([x.shape[0], x.shape[2], height, width])  // [B, C, H, W]
}

/// General permutation: y.shape[i] = x.shape[dims[i]]. Plain strided copy; the layouts on the
/// hot path use transposeLastTwo instead.
public func permute(_ x: Tensor, _ dims: [Int]) throws -> Tensor {
    guard dims.count == x.rank, Set(dims) == Set(0..<x.rank) else {
        throw TensorError("permute: \(dims) is not a permutation of the \(x.rank) dimensions of \(x.shape)")
    }
    let shape = dims.map { x.shape[$0] }  // permuted shape
    let y = Tensor(uninitializedShape: shape)
    guard y.count > 0 else { return y }
    var xStrides = [Int](repeating: 1, count: x.rank)
    for i in stride(from: x.rank - 2, through: 0, by: -1) { xStrides[i] = xStrides[i + 1] * x.shape[i + 1] }
    let srcStride = dims.map { xStrides[$0] }  // source stride of each output dimension
    let last = shape.last!, rows = y.count / last
    Parallel.forRanges(rows, grain: max(1, 16384 / last)) { range in
        var index = [Int](repeating: 0, count: shape.count)
        for row in range {
            var rem = row, src = 0
            for d in stride(from: shape.count - 2, through: 0, by: -1) {
                index[d] = rem % shape[d]
                rem /= shape[d]
                src += index[d] * srcStride[d]
            }
            let out = y.pointer + row * last, step = srcStride[shape.count - 1]
            for j in 0..<last { out[j] = x.pointer[src + j * step] }
        }
    }
    return y
}
