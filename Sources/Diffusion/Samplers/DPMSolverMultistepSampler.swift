import Foundation
import Tensors

/// diffusers `DPMSolverMultistepScheduler` as DPM++ 2M: `algorithm_type="dpmsolver++"`,
/// `solver_order=2`, `solver_type="midpoint"`, `lower_order_final=True`,
/// `final_sigmas_type="zero"`; `karras` selects `use_karras_sigmas=True` (`dpmpp_2m_karras`).
///
/// It works in VP space: for a σ, α = 1/√(σ²+1), σ_vp = σ·α, λ = log α − log σ_vp. The model
/// output is converted to x̂₀ = (x − σ_vp·ε)/α. The first step and the last (to σ = 0) are
/// first order, x_t = (σ_t/σ_s)·x − α_t(e^{−h}−1)·x̂₀; the others second order (midpoint) with
/// r = h₀/h, D₁ = (x̂₀ − x̂₀_prev)/r, x_t = (σ_t/σ_s)·x − α_t(e^{−h}−1)·x̂₀ − ½α_t(e^{−h}−1)·D₁.
/// No input scaling; `init_noise_sigma = 1`.
///
/// Timesteps: without Karras, its own "leading" variant, `arange(N+1)·(T//(N+1))` reversed, last
/// dropped, + 1 (N = 20: 941, 894, …, 48), σ at those timesteps then 0. With Karras: Karras σ's
/// (ρ = 7) between the table's ends in double, timesteps = `round(sigma_to_t(σ))` (integers, as
/// diffusers rounds them for non-cosine schedules), σ's rounded to float32, then 0.
public struct DPMSolverMultistepSampler: Sampler {
    public let kind: SamplerKind
    public let steps: Int
    public let timesteps: [Float]
    public let initNoiseSigma: Float = 1
    public let usesNoise = false
    public private(set) var predictedOriginal: Tensor?
    /// σ of each evaluation, then the final 0 (diffusers' `sigmas`).
    public let sigmas: [Float]
    private var previousX0: Tensor?
    private var next = 0

    public init(steps: Int, karras: Bool, schedule: NoiseSchedule = .sd15) {
        precondition(steps >= 1, "steps must be ≥ 1")
        self.steps = steps
        kind = karras ? .dpmpp_2m_karras : .dpmpp_2m
        if karras {
            let k = schedule.karrasSigmas(steps)
            timesteps = k.map { Float(schedule.sigmaToT($0).rounded(.toNearestOrEven)) }
            sigmas = k.map { Float($0) } + [0]
        } else {
            let ts = schedule.dpmLeadingTimesteps(steps)
            timesteps = ts.map(Float.init)
            sigmas = ts.map { schedule.sigma(atTimestep: $0) } + [0]
        }
    }

    public func scaleModelInput(_ x: Tensor, evaluation i: Int) -> Tensor { x }

    public func sigma(evaluation i: Int) -> Float { sigmas[i] }

    /// (α_t, σ_t) of `_sigma_to_alpha_sigma_t`, float32.
    private static func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    private static func lambda(_ a: (alpha: Float, sigma: Float)) -> Float { logf(a.alpha) - logf(a.sigma) }

    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor {
        SamplerMath.checkEvaluation(i, expected: next, of: timesteps.count, kind)
        SamplerMath.checkShapes(eps, x, "dpm++ 2m step")
        next += 1
        let s0 = Self.alphaSigma(sigmas[i])
        let x0 = SamplerMath.map(x, eps) { x, e in (x - s0.sigma * e) / s0.alpha }
        predictedOriginal = x0
        let m1 = previousX0
        previousX0 = x0

        let t = Self.alphaSigma(sigmas[i + 1])
        let lambdaT = Self.lambda(t), lambdaS0 = Self.lambda(s0)
        let h = lambdaT - lambdaS0
        let ratio = t.sigma / s0.sigma
        let coeff = t.alpha * (expf(-h) - 1.0)
        let lowerOrderFinal = i == timesteps.count - 1  // final_sigmas_type "zero": always first order
        guard let m1, !lowerOrderFinal else {
            return SamplerMath.map(x, x0) { x, m in ratio * x - coeff * m }
        }
        let s1 = Self.alphaSigma(sigmas[i - 1])
        let h0 = lambdaS0 - Self.lambda(s1)
        let r0 = h0 / h
        let invR0 = 1.0 / r0
        let half = 0.5 * coeff
        return SamplerMath.map(x, x0, m1) { x, m0, m1 in
            let d1 = invR0 * (m0 - m1)
            return ratio * x - coeff * m0 - half * d1
        }
    }
}
