import Tensors

/// diffusers `EulerDiscreteScheduler` (s_churn = 0, so σ̂ = σ): leading timesteps, σ's at those
/// timesteps then 0, input scaled by 1/√(σ²+1), x₀ = x − σ·ε, d = (x − x₀)/σ, x += d·(σ_next − σ).
public struct EulerSampler: SigmaSpaceSampler {
    public let kind = SamplerKind.euler
    public let steps: Int
    public let timesteps: [Float]
    public let initNoiseSigma: Float
    public let usesNoise = false
    public private(set) var predictedOriginal: Tensor?
    /// σ of each evaluation, then the final 0 (`steps + 1` entries, diffusers' `sigmas`).
    public let sigmas: [Float]
    private var next = 0

    public init(steps: Int, schedule: NoiseSchedule = .sd15) {
        self.steps = steps
        let setup = LeadingSigmas(steps: steps, schedule: schedule)
        (timesteps, sigmas, initNoiseSigma) = (setup.timesteps, setup.sigmas, setup.initNoiseSigma)
    }

    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor {
        SamplerMath.checkEvaluation(i, expected: next, of: timesteps.count, kind)
        SamplerMath.checkShapes(eps, x, "euler step")
        next += 1
        let sigma = sigmas[i]
        let sigmaHat = sigma * (0 + 1)  // gamma = 0 without churn
        let dt = sigmas[i + 1] - sigmaHat
        let x0 = SamplerMath.map(x, eps) { x, e in x - sigmaHat * e }
        predictedOriginal = x0
        return SamplerMath.map(x, x0) { x, x0 in
            let derivative = (x - x0) / sigmaHat
            return x + derivative * dt
        }
    }
}
