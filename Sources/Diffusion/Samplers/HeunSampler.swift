import Tensors

/// diffusers `HeunDiscreteScheduler`: Heun's method (improved Euler) in σ, 2N−1 evaluations.
///
/// σ's: the leading-timestep σ's s₀ … s_{N−1}, interleaved as `s₀, s₁, s₁, …, s_{N−1}, s_{N−1}, 0`;
/// timesteps `t₀, t₁, t₁, …, t_{N−1}, t_{N−1}`. Even evaluations are Euler predictor steps
/// s → s_next (kept: d, dt, x); odd ones evaluate the model at s_next and redo the step from the
/// kept x with the mean of the two derivatives. The last step (to σ = 0) is Euler only.
public struct HeunSampler: SigmaSpaceSampler {
    public let kind = SamplerKind.heun
    public let steps: Int
    public let timesteps: [Float]
    public let initNoiseSigma: Float
    public let usesNoise = false
    public private(set) var predictedOriginal: Tensor?
    /// diffusers' interleaved `sigmas` (2N entries): the σ each evaluation's input is scaled
    /// with, then the final 0.
    public let sigmas: [Float]
    private var next = 0
    private var prevDerivative: Tensor?
    private var prevDt: Float = 0
    private var prevSample: Tensor?

    public init(steps: Int, schedule: NoiseSchedule = .sd15) {
        precondition(steps >= 1, "steps must be ≥ 1")
        self.steps = steps
        let ts = schedule.leadingTimesteps(steps)
        let base = SamplerMath.leadingSigmas(ts, schedule)  // N + 1
        // cat([σ[:1], σ[1:-1].repeat_interleave(2), σ[-1:]])
        var s = [base[0]]
        for v in base[1..<steps] { s.append(v); s.append(v) }
        s.append(base[steps])
        sigmas = s
        // cat([t[:1], t[1:].repeat_interleave(2)])
        var t = [Float(ts[0])]
        for v in ts.dropFirst() { t.append(Float(v)); t.append(Float(v)) }
        timesteps = t
        initNoiseSigma = SamplerMath.leadingInitNoiseSigma(sigmas)
    }


    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor {
        SamplerMath.checkEvaluation(i, expected: next, of: timesteps.count, kind)
        SamplerMath.checkShapes(eps, x, "heun step")
        next += 1
        let firstOrder = prevDerivative == nil
        if firstOrder {
            let sigmaHat = sigmas[i] * (0 + 1)  // gamma = 0
            let sigmaNext = sigmas[i + 1]
            let x0 = SamplerMath.map(x, eps) { x, e in x - sigmaHat * e }
            let derivative = SamplerMath.map(x, x0) { x, x0 in (x - x0) / sigmaHat }
            let dt = sigmaNext - sigmaHat
            predictedOriginal = x0
            prevDerivative = derivative
            prevDt = dt
            prevSample = x
            return SamplerMath.map(x, derivative) { x, d in x + d * dt }
        } else {
            let sigmaNext = sigmas[i]
            let x0 = SamplerMath.map(x, eps) { x, e in x - sigmaNext * e }
            let derivative = SamplerMath.map(x, x0, prevDerivative!) { x, x0, d1 in
                let d2 = (x - x0) / sigmaNext
                return (d1 + d2) / 2
            }
            let dt = prevDt
            let sample = prevSample!
            predictedOriginal = x0
            prevDerivative = nil
            prevSample = nil
            return SamplerMath.map(sample, derivative) { x, d in x + d * dt }
        }
    }
}
