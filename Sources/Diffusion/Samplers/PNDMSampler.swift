import Tensors

/// diffusers `PNDMScheduler` with `skip_prk_steps=True` (PLMS), the SD 1.5 default scheduler.
///
/// Timeline: the leading timesteps t₀ > t₁ > … > t_{N−1} with the second one repeated:
/// `t₀, t₁, t₁, t₂, …, t_{N−1}`, i.e. N+1 evaluations (1 for N = 1). With r = T//N:
/// * evaluation 0: store ε₀, keep x, step t₀ → t₀−r with ε₀;
/// * evaluation 1 (at t₁ = t₀−r): redo that step from the kept x with (ε₁+ε₀)/2;
/// * then Adams–Bashforth over the stored ε's: (3e₁−e₂)/2, (23e₁−16e₂+5e₃)/12,
///   (55e₁−59e₂+37e₃−9e₄)/24, each step t → t−r.
/// The transfer is PNDM's formula (9); below t = 0 it lands on ᾱ₀ (`set_alpha_to_one=False`).
public struct PNDMSampler: Sampler {
    public let kind = SamplerKind.pndm
    public let steps: Int
    public let timesteps: [Float]
    public let initNoiseSigma: Float = 1
    public let usesNoise = false
    public private(set) var predictedOriginal: Tensor?

    private let schedule: NoiseSchedule
    private let ratio: Int
    private let ts: [Int]
    private var counter = 0
    private var ets: [Tensor] = []
    private var curSample: Tensor?

    public init(steps: Int, schedule: NoiseSchedule = .sd15) {
        precondition(steps >= 1, "steps must be ≥ 1")
        self.steps = steps
        self.schedule = schedule
        ratio = schedule.trainSteps / steps
        let asc = Array(schedule.leadingTimesteps(steps).reversed())
        // np.concatenate([_t[:-1], _t[-2:-1], _t[-1:]])[::-1]
        var plms = Array(asc.dropLast())
        if asc.count >= 2 { plms.append(asc[asc.count - 2]) }
        plms.append(asc[asc.count - 1])
        ts = plms.reversed()
        timesteps = ts.map(Float.init)
    }

    public func scaleModelInput(_ x: Tensor, evaluation i: Int) -> Tensor { x }

    public func sigma(evaluation i: Int) -> Float {
        if i < ts.count { return schedule.sigma(atTimestep: ts[i]) }
        return schedule.sigmas[0]  // the last step lands on ᾱ₀
    }

    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor {
        SamplerMath.checkEvaluation(i, expected: counter, of: ts.count, kind)
        SamplerMath.checkShapes(eps, x, "pndm step")
        let t = ts[i]
        var timestep = t
        var prevTimestep = t - ratio
        if counter != 1 {
            ets = Array(ets.suffix(3))
            ets.append(eps)
        } else {
            prevTimestep = t
            timestep = t + ratio
        }
        var sample = x
        let modelOutput: Tensor
        if ets.count == 1 && counter == 0 {
            modelOutput = eps
            curSample = x
        } else if ets.count == 1 && counter == 1 {
            modelOutput = SamplerMath.map(eps, ets[0]) { m, e in (m + e) / 2 }
            sample = curSample!
            curSample = nil
        } else if ets.count == 2 {
            modelOutput = SamplerMath.map(ets[1], ets[0]) { e1, e2 in (3 * e1 - e2) / 2 }
        } else if ets.count == 3 {
            modelOutput = SamplerMath.map(ets[2], ets[1], ets[0]) { e1, e2, e3 in (23 * e1 - 16 * e2 + 5 * e3) / 12 }
        } else {
            let c = Float(1.0 / 24.0)
            modelOutput = SamplerMath.map(ets[3], ets[2], ets[1], ets[0]) { e1, e2, e3, e4 in
                c * (55 * e1 - 59 * e2 + 37 * e3 - 9 * e4)
            }
        }
        // x̂₀ of this evaluation from its raw ε (diffusers' PNDM does not compute one).
        let aNow = schedule.alphaCumprod(t)
        let bNowRoot = (1 - aNow).squareRoot(), aNowRoot = aNow.squareRoot()
        predictedOriginal = SamplerMath.map(x, eps) { x, e in (x - bNowRoot * e) / aNowRoot }

        let prev = previousSample(sample, timestep, prevTimestep, modelOutput)
        counter += 1
        return prev
    }

    /// PNDM formula (9), as `_get_prev_sample`.
    private func previousSample(_ sample: Tensor, _ t: Int, _ prevT: Int, _ modelOutput: Tensor) -> Tensor {
        let aT = schedule.alphaCumprod(t)
        let aPrev = prevT >= 0 ? schedule.alphaCumprod(prevT) : schedule.alphasCumprod[0]
        let bT = 1 - aT
        let bPrev = 1 - aPrev
        let sampleCoeff = (aPrev / aT).squareRoot()
        let denom = aT * bPrev.squareRoot() + (aT * bT * aPrev).squareRoot()
        let diff = aPrev - aT
        return SamplerMath.map(sample, modelOutput) { x, m in sampleCoeff * x - diff * m / denom }
    }
}
