import Tensors

/// Helpers shared by the samplers (namespaced so they cannot collide with the rest of the module).
enum SamplerMath {
    // MARK: - Elementwise helpers
    //
    // Each closure is one torch expression evaluated per element in float32, written in the same
    // order as diffusers' tensor expression (every torch op rounds to float32; Swift neither
    // reassociates nor contracts float arithmetic into FMAs), so results match diffusers to the bit
    // wherever the scalar coefficients do. These are tiny next to a UNet evaluation: plain loops.

    @inline(__always)
    static func checkShapes(_ a: Tensor, _ b: Tensor, _ what: StaticString) {
        precondition(a.shape == b.shape, "\(what): shapes \(a.shape) and \(b.shape) differ")
    }

    @inline(__always)
    static func map(_ a: Tensor, _ f: (Float) -> Float) -> Tensor {
        let y = Tensor(uninitializedShape: a.shape)
        let n = a.count, pa = a.pointer, py = y.pointer
        for k in 0..<n { py[k] = f(pa[k]) }
        return y
    }

    @inline(__always)
    static func map(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) -> Tensor {
        checkShapes(a, b, "sampler update")
        let y = Tensor(uninitializedShape: a.shape)
        let n = a.count, pa = a.pointer, pb = b.pointer, py = y.pointer
        for k in 0..<n { py[k] = f(pa[k], pb[k]) }
        return y
    }

    @inline(__always)
    static func map(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ f: (Float, Float, Float) -> Float) -> Tensor {
        checkShapes(a, b, "sampler update")
        checkShapes(a, c, "sampler update")
        let y = Tensor(uninitializedShape: a.shape)
        let n = a.count, pa = a.pointer, pb = b.pointer, pc = c.pointer, py = y.pointer
        for k in 0..<n { py[k] = f(pa[k], pb[k], pc[k]) }
        return y
    }

    @inline(__always)
    static func map(_ a: Tensor, _ b: Tensor, _ c: Tensor, _ d: Tensor,
                     _ f: (Float, Float, Float, Float) -> Float) -> Tensor {
        checkShapes(a, b, "sampler update")
        checkShapes(a, c, "sampler update")
        checkShapes(a, d, "sampler update")
        let y = Tensor(uninitializedShape: a.shape)
        let n = a.count, pa = a.pointer, pb = b.pointer, pc = c.pointer, pd = d.pointer, py = y.pointer
        for k in 0..<n { py[k] = f(pa[k], pb[k], pc[k], pd[k]) }
        return y
    }

    /// Samplers check that evaluations come in order; a skipped or repeated one is a caller bug.
    @inline(__always)
    static func checkEvaluation(_ i: Int, expected: Int, of count: Int, _ kind: SamplerKind) {
        precondition(i == expected && i < count,
                     "\(kind.rawValue): step(evaluation: \(i)) called, expected evaluation \(expected) of \(count)")
    }

    // MARK: - σ-space helpers (Euler, Euler a, LMS, Heun)

    /// `sample / ((σ**2 + 1) ** 0.5)`, the k-diffusion input scaling c_in.
    static func scaleInput(_ x: Tensor, sigma: Float) -> Tensor {
        let d = (sigma * sigma + 1).squareRoot()
        return map(x) { $0 / d }
    }

    /// `init_noise_sigma` of the σ-space schedulers with "leading" spacing: `(σ_max**2 + 1) ** 0.5`.
    static func leadingInitNoiseSigma(_ sigmas: [Float]) -> Float {
        let m = sigmas.max() ?? 0
        return (m * m + 1).squareRoot()
    }

    /// The σ's of the leading timesteps, then 0 (`np.interp` at integer t, `concatenate([σ, [0]])`).
    static func leadingSigmas(_ timesteps: [Int], _ schedule: NoiseSchedule) -> [Float] {
        timesteps.map { schedule.sigma(atTimestep: $0) } + [0]
    }
}
