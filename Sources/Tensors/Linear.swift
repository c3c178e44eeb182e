import CKernels

/// `y = x Wᵀ + b`: x [..., in], weight [out, in] (PyTorch layout), bias [out] → [..., out].
public func linear(_ x: Tensor, weight: Tensor, bias: Tensor? = nil) throws -> Tensor {
    try BLAS.load()
    try requireRank(weight, 2, "linear weight", "[out, in]")
    guard x.rank >= 1 else { throw TensorError("linear: input must have a feature dimension, got \(x.shape)") }
    let (outF, inF) = (weight.shape[0], weight.shape[1])
    guard x.shape.last == inF else { throw TensorError("linear: input \(x.shape) does not end in \(inF) (weight \(weight.shape))") }
    if let bias { try requireShape(bias, [outF], "linear bias") }
    let rows = x.count / max(inF, 1)
    try requireInt32(rows, outF, inF, what: "linear")

    let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [outF])  // [..., out]
    if rows == 0 || outF == 0 { return y }
    if inF == 0 {  // empty sum: y = bias (or 0)
        if let bias { pd_fill_cols(y.pointer, bias.pointer, 0, rows, Int32(outF)) } else { y.pointer.update(repeating: 0, count: y.count) }
        return y
    }
    // With a bias, pre-fill each row and let sgemm accumulate (beta = 1): OpenBLAS would
    // otherwise spend a pass zeroing C for beta = 0, so the bias costs no extra pass.
    if let bias {
        Parallel.forRanges(rows, grain: max(1, 16384 / outF)) { r in
            pd_fill_cols(y.pointer, bias.pointer, r.lowerBound, r.upperBound, Int32(outF))
        }
    }
    BLAS.sgemmAcrossCores(transB: true, m: rows, n: outF, k: inF, a: x.pointer, lda: inF,
                          b: weight.pointer, ldb: inF, beta: bias == nil ? 0 : 1, c: y.pointer, ldc: outF)
    return y
}
