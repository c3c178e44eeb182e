import CKernels

/// Softmax over the last dimension (max subtracted first), into a new tensor.
public func softmax(_ x: Tensor) throws -> Tensor {
    let y = try copyParallel(x)
    try softmaxInPlace(y)
    return y
}

/// Softmax over the last dimension, overwriting `x`; only for tensors the caller just made
/// (storage is shared between copies of a Tensor).
public func softmaxInPlace(_ x: Tensor) throws {
    guard let n = x.shape.last, n > 0 else { throw TensorError("softmax: expected [..., N] with N > 0, got \(x.shape)") }
    try requireInt32(n, what: "softmax")
    Parallel.forRanges(x.count / n, grain: max(1, 16384 / n)) { rows in
        pd_softmax_rows(x.pointer, Int32(n), n, rows.lowerBound, rows.upperBound, 0, 0)
    }
}

/// A deep copy made on all cores (memory-bound; one core cannot saturate the bandwidth).
func copyParallel(_ x: Tensor) throws -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    Parallel.forRanges(x.count, grain: 1 << 16) { r in
        (y.pointer + r.lowerBound).update(from: x.pointer + r.lowerBound, count: r.count)
    }
    return y
}
