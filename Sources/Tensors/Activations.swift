import CKernels

// Elementwise activations in C (vectorised exp/erf), split over the cores. The *InPlace
// forms overwrite their argument: only for tensors the caller has just made.

private let elementGrain = 1 << 15

private func map(_ x: Tensor, into y: Tensor, _ kernel: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
    Parallel.forRanges(x.count, grain: elementGrain) { r in
        kernel(x.pointer + r.lowerBound, y.pointer + r.lowerBound, r.count)
    }
}

/// x · sigmoid(x).
public func silu(_ x: Tensor) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    map(x, into: y) { pd_silu($0, $1, $2) }
    return y
}
public func siluInPlace(_ x: Tensor) { map(x, into: x) { pd_silu($0, $1, $2) } }

/// Exact GELU, 0.5 · x · (1 + erf(x / √2)) (PyTorch's default `approximate="none"`).
public func gelu(_ x: Tensor) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    map(x, into: y) { pd_gelu($0, $1, $2) }
    return y
}
public func geluInPlace(_ x: Tensor) { map(x, into: x) { pd_gelu($0, $1, $2) } }

/// x · sigmoid(1.702 x) (CLIP's activation in the SD 1.x text encoder).
public func quickGelu(_ x: Tensor) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    map(x, into: y) { pd_quick_gelu($0, $1, $2) }
    return y
}
public func quickGeluInPlace(_ x: Tensor) { map(x, into: x) { pd_quick_gelu($0, $1, $2) } }

/// GEGLU as diffusers applies it after its projection: x [..., 2F] → [..., F],
/// `hidden, gate = x.chunk(2, -1); hidden * gelu(gate)`.
public func geglu(_ x: Tensor) throws -> Tensor {
    guard let twoF = x.shape.last, twoF % 2 == 0, twoF > 0 else {
        throw TensorError("geglu: last dimension must be even and positive, got \(x.shape)")
    }
    let F = twoF / 2
    let y = Tensor(uninitializedShape: Array(x.shape.dropLast()) + [F])  // [..., F]
    Parallel.forRanges(x.count / twoF, grain: max(1, elementGrain / F)) { rows in
        pd_geglu(x.pointer, y.pointer, Int32(F), rows.lowerBound, rows.upperBound)
    }
    return y
}
