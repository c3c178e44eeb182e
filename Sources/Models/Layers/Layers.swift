import Tensors

/// `y = x Wᵀ + b` over the last dimension; weights `weight [out, in]`, `bias [out]`.
struct Linear {
    /// [out, in]: float32 or 16-bit (the binder's precision), or packed for bf16 arithmetic (fast mode).
    let kernel: FastKernel
    let bias: Tensor?
    /// The exact weight packed for products of few rows (packed on first use; see `fewRows`).
    let packed: PackedLinearWeight?

    /// `alternatives`: the weight may also be stored as a 1×1 convolution `[out, in, 1, 1]`
    /// (LDM's VAE attention and SD's proj_in/proj_out in some layouts).
    /// `fewRows`: the layer only ever sees a few hundred rows (the CLIP towers' tokens), where a
    /// weight packed once beats OpenBLAS, which packs it on every call. Only float32 weights are
    /// packed: the copy stands in for their mapped pages, where a 16-bit weight's would double it.
    init(_ w: WeightBinder, in: Int, out: Int, bias: Bool = true, fewRows: Bool = false) {
        kernel = w.layerWeight("weight", shape: [out, `in`], acceptingReshapeOf: [[out, `in`, 1, 1]], winogradEligible: false)
        self.bias = bias ? w.tensor("bias", shape: [out]) : nil
        if fewRows, case .plain(.float(let t)) = kernel, t.shape == [out, `in`] {
            packed = try? PackedLinearWeight(.float(t))
        } else {
            packed = nil
        }
    }

    /// Drops the packed copy (packed again on the next call).
    func releasePacked() { packed?.release() }

    /// The weight as held for exact arithmetic (nil in fast mode).
    var weight: WeightData? { if case .plain(let d) = kernel { return d } else { return nil } }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [..., in] → [..., out]
        if let packed { return try linear(x, packed: packed, bias: bias) }
        switch kernel {
        case .plain(let d): return try linear(x, weight: d, bias: bias)
        case .bf16(let p): return try linearBF16(x, weight: p, bias: bias)
        case .winograd: throw TensorError("linear layer with a convolution kernel")  // never built so
        }
    }
}

/// 2-D convolution over NCHW with square kernels (3×3 or 1×1).
struct Conv2d {
    /// [O, C, k, k]: float32 or 16-bit (the binder's precision), or in a fast-mode form.
    let kernel: FastKernel
    let size: Int
    let bias: Tensor?
    let stride: Int
    let padding: Int

    init(_ w: WeightBinder, in: Int, out: Int, kernel: Int, stride: Int = 1, padding: Int? = nil, bias: Bool = true) {
        let padding = padding ?? kernel / 2
        self.kernel = w.layerWeight("weight", shape: [out, `in`, kernel, kernel],
                                    acceptingReshapeOf: kernel == 1 ? [[out, `in`]] : [],
                                    winogradEligible: kernel == 3 && stride == 1 && padding == 1)
        size = kernel
        self.bias = bias ? w.tensor("bias", shape: [out]) : nil
        self.stride = stride
        self.padding = padding
    }

    /// The weight as held for exact arithmetic (nil in fast mode).
    var weight: WeightData? { if case .plain(let d) = kernel { return d } else { return nil } }

    func callAsFunction(_ x: Tensor) throws -> Tensor {  // [B, C, H, W] → [B, O, H', W']
        switch kernel {
        case .plain(let d): return try conv2d(x, weight: d, bias: bias, stride: stride, padding: padding)
        case .winograd(let u): return try conv2dWinograd(x, weight: u, bias: bias)
        case .bf16(let p): return try conv2dBF16(x, weight: p, kernel: size, bias: bias, stride: stride, padding: padding)
        }
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
