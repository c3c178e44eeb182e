import Tensors

/// `y = x Wᵀ + b` over the last dimension; weights `weight [out, in]`, `bias [out]`.
struct Linear {
    let weight: WeightData  // [out, in], float32 or 16-bit (the binder's precision)
    let bias: Tensor?

    /// `alternatives`: the weight may also be stored as a 1×1 convolution `[out, in, 1, 1]`
    /// (LDM's VAE attention and SD's proj_in/proj_out in some layouts).
    init(_ w: WeightBinder, in: Int, out: Int, bias: Bool = true) {
        weight = w.weight("weight", shape: [out, `in`], acceptingReshapeOf: [[out, `in`, 1, 1]])
        self.bias = bias ? w.tensor("bias", shape: [out]) : nil
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [..., in] → [..., out]
        try linear(x, weight: weight, bias: bias)
    }
}

/// 2-D convolution over NCHW with square kernels (3×3 or 1×1).
struct Conv2d {
    let weight: WeightData  // [O, C, k, k], float32 or 16-bit (the binder's precision)
    let bias: Tensor?
    let stride: Int
    let padding: Int

    init(_ w: WeightBinder, in: Int, out: Int, kernel: Int, stride: Int = 1, padding: Int? = nil, bias: Bool = true) {
        weight = w.weight("weight", shape: [out, `in`, kernel, kernel],
                          acceptingReshapeOf: kernel == 1 ? [[out, `in`]] : [])
        self.bias = bias ? w.tensor("bias", shape: [out]) : nil
        self.stride = stride
        self.padding = padding ?? kernel / 2
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [B, C, H, W] → [B, O, H', W']
        try conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding)
    }
}

/// Group normalisation with per-channel affine, optionally followed by SiLU (the resnet pattern).
struct GroupNorm {
    let weight: Tensor
    let bias: Tensor
    let groups: Int
    let eps: Float

    init(_ w: WeightBinder, channels: Int, groups: Int, eps: Float) {
        weight = w.tensor("weight", shape: [channels])
        bias = w.tensor("bias", shape: [channels])
        self.groups = groups
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor, silu: Bool = false) throws -> Tensor {  // [B, C, ...]
        silu ? try groupNormSiLU(x, groups: groups, weight: weight, bias: bias, eps: eps)
             : try groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps)
    }
}

/// Layer normalisation over the last dimension.
struct LayerNorm {
    let weight: Tensor
    let bias: Tensor
    let eps: Float

    init(_ w: WeightBinder, dim: Int, eps: Float) {
        weight = w.tensor("weight", shape: [dim])
        bias = w.tensor("bias", shape: [dim])
        self.eps = eps
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [..., D]
        try layerNorm(x, weight: weight, bias: bias, eps: eps)
    }
}
