import CKernels

/// GroupNorm over [B, C, *] (images [B, C, H, W]): each (batch, group) block of C/groups
/// channels is normalised with its own mean and biased variance, then scaled per channel.
/// weight and bias are [C] (nil = 1 and 0). Same shape out.
public func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
    try groupNormKernel(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: false)
}

/// `silu(groupNorm(x))` in one pass over the output: every SD ResNet block and the VAE use
/// GroupNorm followed by SiLU, and fusing saves a full read and write of the activation.
public func groupNormSiLU(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
    try groupNormKernel(x, groups: groups, weight: weight, bias: bias, eps: eps, silu: true)
}

private func groupNormKernel(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float, silu: Bool) throws -> Tensor {
    guard x.rank >= 2 else { throw TensorError("groupNorm: expected [B, C, *], got \(x.shape)") }
    let (B, C) = (x.shape[0], x.shape[1])
    guard groups >= 1, C % groups == 0 else { throw TensorError("groupNorm: \(C) channels do not split into \(groups) groups") }
    if let weight { try requireShape(weight, [C], "groupNorm weight") }
    if let bias { try requireShape(bias, [C], "groupNorm bias") }
    let S = x.shape.dropFirst(2).reduce(1, *)  // spatial size
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    let blockLength = (C / groups) * S
    guard blockLength > 0 else { return y }
    Parallel.forRanges(B * groups, grain: max(1, 32768 / blockLength)) { items in
        pd_group_norm(x.pointer, y.pointer, weight?.pointer, bias?.pointer, Int32(C), S, Int32(groups),
                      items.lowerBound, items.upperBound, eps, silu ? 1 : 0)
    }
    return y
}

/// LayerNorm over the last dimension: x [..., D], weight and bias [D] (nil = 1 and 0).
public func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) throws -> Tensor {
    guard let D = x.shape.last, D > 0 else { throw TensorError("layerNorm: expected [..., D] with D > 0, got \(x.shape)") }
    if let weight { try requireShape(weight, [D], "layerNorm weight") }
    if let bias { try requireShape(bias, [D], "layerNorm bias") }
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    Parallel.forRanges(x.count / D, grain: max(1, 32768 / D)) { rows in
        pd_layer_norm(x.pointer, y.pointer, weight?.pointer, bias?.pointer, Int32(D), rows.lowerBound, rows.upperBound, eps)
    }
    return y
}
