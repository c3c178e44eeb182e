import Tensors

/// diffusers `EulerAncestralDiscreteScheduler`: Euler to σ_down plus fresh noise of size σ_up,
/// with σ_up = √(σ_next²(σ²−σ_next²)/σ²), σ_down = √(σ_next² − σ_up²). Draws one noise tensor
/// per evaluation, the last included (where σ_up = 0), like diffusers, so a shared generator
/// stays in step with diffusers' stream.
public struct EulerAncestralSampler: SigmaSpaceSampler {
    public let kind = SamplerKind.euler_a
    public let steps: Int
    public let timesteps: [Float]
    public let initNoiseSigma: Float
    public let usesNoise = true
    public private(set) var predictedOriginal: Tensor?
    /// σ of each evaluation, then the final 0.
    public let sigmas: [Float]
    private var next = 0

    public init(steps: Int, schedule: NoiseSchedule = .sd15) {
        self.steps = steps
        let setup = LeadingSigmas(steps: steps, schedule: schedule)
        (timesteps, sigmas, initNoiseSigma) = (setup.timesteps, setup.sigmas, setup.initNoiseSigma)
    }

    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor {
        SamplerMath.checkEvaluation(i, expected: next, of: timesteps.count, kind)
        SamplerMath.checkShapes(eps, x, "euler_a step")
        next += 1
        let sigma = sigmas[i]
        let sigmaFrom = sigmas[i], sigmaTo = sigmas[i + 1]
        let sigmaUp = (sigmaTo * sigmaTo * (sigmaFrom * sigmaFrom - sigmaTo * sigmaTo) / (sigmaFrom * sigmaFrom)).squareRoot()
        let sigmaDown = (sigmaTo * sigmaTo - sigmaUp * sigmaUp).squareRoot()
        let dt = sigmaDown - sigma
        let x0 = SamplerMath.map(x, eps) { x, e in x - sigma * e }
        predictedOriginal = x0
        let z = noise()
        precondition(z.shape == x.shape, "euler_a: noise shape \(z.shape), sample shape \(x.shape)")
        return SamplerMath.map(x, x0, z) { x, x0, z in
            let derivative = (x - x0) / sigma
            let prev = x + derivative * dt
            return prev + z * sigmaUp
        }
    }
}
