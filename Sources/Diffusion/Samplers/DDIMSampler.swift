import Tensors

/// diffusers `DDIMScheduler` with η = 0 (deterministic), `clip_sample=False`,
/// `set_alpha_to_one=False`: leading timesteps, t → t − T//N, the last step lands on ᾱ₀.
///
/// x̂₀ = (x − √(1−ᾱ_t)·ε)/√ᾱ_t; x_prev = √ᾱ_prev·x̂₀ + √(1−ᾱ_prev)·ε.
public struct DDIMSampler: Sampler {
    public let kind = SamplerKind.ddim
    public let steps: Int
    public let timesteps: [Float]
    public let initNoiseSigma: Float = 1
    public let usesNoise = false
    public private(set) var predictedOriginal: Tensor?

    private let schedule: NoiseSchedule
    private let ratio: Int
    private let ts: [Int]
    private var next = 0

    public init(steps: Int, schedule: NoiseSchedule = .sd15) {
        precondition(steps >= 1, "steps must be ≥ 1")
        self.steps = steps
        self.schedule = schedule
        ratio = schedule.trainSteps / steps
        ts = schedule.leadingTimesteps(steps)
        timesteps = ts.map(Float.init)
    }

    public func scaleModelInput(_ x: Tensor, evaluation i: Int) -> Tensor { x }

    public func sigma(evaluation i: Int) -> Float {
        i < ts.count ? schedule.sigma(atTimestep: ts[i]) : schedule.sigmas[0]
    }

    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor {
        SamplerMath.checkEvaluation(i, expected: next, of: ts.count, kind)
        SamplerMath.checkShapes(eps, x, "ddim step")
        next += 1
        let t = ts[i]
        let prevT = t - ratio
        let aT = schedule.alphaCumprod(t)
        let aPrev = prevT >= 0 ? schedule.alphaCumprod(prevT) : schedule.alphasCumprod[0]
        let bT = 1 - aT
        let bTRoot = bT.squareRoot(), aTRoot = aT.squareRoot()
        // std_dev_t = η·√variance = 0, so the direction is √(1 − ᾱ_prev − 0²)·ε.
        let dirCoeff = (1 - aPrev - 0).squareRoot()
        let aPrevRoot = aPrev.squareRoot()
        let x0 = SamplerMath.map(x, eps) { x, e in (x - bTRoot * e) / aTRoot }
        predictedOriginal = x0
        return SamplerMath.map(x0, eps) { x0, e in aPrevRoot * x0 + dirCoeff * e }
    }
}
