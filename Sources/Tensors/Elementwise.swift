import CKernels

// Elementwise arithmetic, split over the cores (memory-bound: both cores double the bandwidth).
// The *InPlace forms write into their first argument: only for tensors the caller just made
// (residual sums, fresh outputs), since Tensor copies share storage.

private let grain = 1 << 15

private func sameShape(_ a: Tensor, _ b: Tensor, _ what: String) throws {
    guard a.shape == b.shape else { throw TensorError("\(what): shapes \(a.shape) and \(b.shape) differ") }
}

private func binary(_ a: Tensor, _ b: Tensor, into y: Tensor,
                 _ kernel: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) {
    Parallel.forRanges(y.count, grain: grain) { r in
        kernel(a.pointer + r.lowerBound, b.pointer + r.lowerBound, y.pointer + r.lowerBound, r.count)
    }
}

/// a + b, same shapes.
public func add(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try sameShape(a, b, "add")
    let y = Tensor(uninitializedShape: a.shape)  // same shape as a
    binary(a, b, into: y) { pd_add($0, $1, $2, $3) }
    return y
}

/// a += b, same shapes.
public func addInPlace(into a: Tensor, _ b: Tensor) throws {
    try sameShape(a, b, "addInPlace")
    binary(a, b, into: a) { pd_add($0, $1, $2, $3) }
}

/// a · b elementwise, same shapes.
public func mul(_ a: Tensor, _ b: Tensor) throws -> Tensor {
    try sameShape(a, b, "mul")
    let y = Tensor(uninitializedShape: a.shape)  // same shape as a
    binary(a, b, into: y) { pd_mul($0, $1, $2, $3) }
    return y
}

/// x · s.
public func scale(_ x: Tensor, _ s: Float) -> Tensor {
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    Parallel.forRanges(x.count, grain: grain) { r in pd_scale(x.pointer + r.lowerBound, s, y.pointer + r.lowerBound, r.count) }
    return y
}

/// x *= s.
public func scaleInPlace(_ x: Tensor, _ s: Float) {
    Parallel.forRanges(x.count, grain: grain) { r in pd_scale(x.pointer + r.lowerBound, s, x.pointer + r.lowerBound, r.count) }
}

/// Adds one value per plane: y[p, s] = x[p, s] + v[p % period], x viewed as [planes, S].
private func addPlaneValues(_ x: Tensor, _ v: Tensor, into y: Tensor, planes: Int, period: Int) {
    let S = x.count / max(planes, 1)
    Parallel.forRanges(planes, grain: max(1, grain / max(S, 1))) { p in
        pd_add_plane_values(x.pointer, v.pointer, y.pointer, S, period, p.lowerBound, p.upperBound)
    }
}

private func channelBiasShape(_ x: Tensor, _ bias: Tensor, _ what: String) throws {
    guard x.rank >= 2 else { throw TensorError("\(what): expected [B, C, *], got \(x.shape)") }
    try requireShape(bias, [x.shape[1]], "\(what) bias")
}

/// x [B, C, *] + bias [C] (per channel).
public func addChannelBias(_ x: Tensor, _ bias: Tensor) throws -> Tensor {
    try channelBiasShape(x, bias, "addChannelBias")
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    addPlaneValues(x, bias, into: y, planes: x.shape[0] * x.shape[1], period: x.shape[1])
    return y
}

/// x [B, C, *] += bias [C].
public func addChannelBiasInPlace(into x: Tensor, _ bias: Tensor) throws {
    try channelBiasShape(x, bias, "addChannelBiasInPlace")
    addPlaneValues(x, bias, into: x, planes: x.shape[0] * x.shape[1], period: x.shape[1])
}

private func broadcastShape(_ x: Tensor, _ v: Tensor, _ what: String) throws {
    guard x.rank >= 2 else { throw TensorError("\(what): expected [B, C, *], got \(x.shape)") }
    try requireShape(v, [x.shape[0], x.shape[1]], "\(what) addend")
}

/// x [B, C, *] + v [B, C] broadcast over the spatial dims (the ResNet timestep embedding).
public func addBroadcast(_ x: Tensor, _ v: Tensor) throws -> Tensor {
    try broadcastShape(x, v, "addBroadcast")
    let y = Tensor(uninitializedShape: x.shape)  // same shape as x
    addPlaneValues(x, v, into: y, planes: x.shape[0] * x.shape[1], period: x.shape[0] * x.shape[1])
    return y
}

/// x [B, C, *] += v [B, C].
public func addBroadcastInPlace(into x: Tensor, _ v: Tensor) throws {
    try broadcastShape(x, v, "addBroadcastInPlace")
    addPlaneValues(x, v, into: x, planes: x.shape[0] * x.shape[1], period: x.shape[0] * x.shape[1])
}
