import Tensors

/// What the σ-space samplers (Euler, Euler a, LMS, Heun) share: the UNet input is
/// x/√(σ²+1) for the evaluation's σ, and traces report that σ.
protocol SigmaSpaceSampler: Sampler {
    /// σ of each evaluation, then the level the last step lands on.
    var sigmas: [Float] { get }
}

extension SigmaSpaceSampler {
    public func scaleModelInput(_ x: Tensor, evaluation i: Int) -> Tensor {
        SamplerMath.scaleInput(x, sigma: sigmas[i])
    }

    public func sigma(evaluation i: Int) -> Float { sigmas[i] }
}

/// diffusers' "leading" σ-space setup (Euler, Euler a, LMS): the leading timesteps, their σ's
/// then 0, and `init_noise_sigma = √(σ_max² + 1)`.
struct LeadingSigmas {
    let timesteps: [Float]
    let sigmas: [Float]
    let initNoiseSigma: Float

    init(steps: Int, schedule: NoiseSchedule) {
        precondition(steps >= 1, "steps must be ≥ 1")
        let ts = schedule.leadingTimesteps(steps)
        timesteps = ts.map(Float.init)
        sigmas = SamplerMath.leadingSigmas(ts, schedule)
        initNoiseSigma = SamplerMath.leadingInitNoiseSigma(sigmas)
    }
}
