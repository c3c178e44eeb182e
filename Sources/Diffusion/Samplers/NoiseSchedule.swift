import Foundation

/// The training noise schedule ("scaled_linear") and the timestep/σ helpers shared by the
/// samplers, computed in float32 as diffusers does (its `betas` and `alphas_cumprod` are float32
/// torch tensors), so the timesteps and σ's match diffusers'.
///
/// * `betas = torch.linspace(√β_start, √β_end, T, dtype=float32) ** 2`. torch 2.13's CPU linspace
///   computes element i as `start + step·i` for i < T/2 and `end − step·(T−1−i)` otherwise, with
///   `step = (end − start)/(T−1)` in float32 and the multiply–add rounded once (an FMA); this
///   reproduces all 1000 values bit for bit (checked against torch 2.13.0+cpu, AVX-512).
/// * `alphas_cumprod = torch.cumprod(1 − betas)`: torch's CPU cumprod accumulates in double and
///   rounds each output to float: bit-identical here.
/// * `sigmas[t] = ((1 − ᾱ)/ᾱ) ** 0.5` in float32. Here the square root is correctly rounded; x86
///   torch builds with MKL evaluate float32 `sqrt` through MKL VML, which is 1 ulp off in about a
///   fifth of the entries (190 of 1000 in torch 2.13.0+cpu). This is the only place where the
///   schedule is not bit-identical to diffusers: |Δσ| ≤ 1 ulp (≤ 1.2e-7 relative).
public struct NoiseSchedule: Sendable {
    /// β_start, β_end of "scaled_linear" (the linspace runs between their square roots).
    public let betaStart: Double
    public let betaEnd: Double
    /// `num_train_timesteps`.
    public let trainSteps: Int
    /// `steps_offset` of the "leading" spacing.
    public let stepsOffset: Int
    public let betas: [Float]
    /// ᾱ_t, t = 0..<trainSteps.
    public let alphasCumprod: [Float]
    /// σ_t = √((1−ᾱ_t)/ᾱ_t), ascending in t.
    public let sigmas: [Float]
    /// log σ_t in float32 (numpy's `np.log` of the float32 table), for `sigmaToT`.
    let logSigmas: [Float]

    /// SD 1.x: scaled_linear 0.00085 … 0.012, 1000 train steps, leading spacing with offset 1.
    public static let sd15 = NoiseSchedule(betaStart: 0.00085, betaEnd: 0.012, trainSteps: 1000, stepsOffset: 1)

    public init(betaStart: Double, betaEnd: Double, trainSteps: Int, stepsOffset: Int) {
        precondition(trainSteps >= 2, "a noise schedule needs at least 2 train steps")
        self.betaStart = betaStart
        self.betaEnd = betaEnd
        self.trainSteps = trainSteps
        self.stepsOffset = stepsOffset
        // Python's `beta_start**0.5` is libm pow; the Scalar is then converted to float.
        let lin = NoiseSchedule.torchLinspace(Float(pow(betaStart, 0.5)), Float(pow(betaEnd, 0.5)), trainSteps)
        let betas = lin.map { $0 * $0 }
        var acc: Double = 1
        var cumprod = [Float](repeating: 0, count: trainSteps)
        for t in 0..<trainSteps {
            acc *= Double(1 - betas[t])
            cumprod[t] = Float(acc)
        }
        self.betas = betas
        self.alphasCumprod = cumprod
        self.sigmas = cumprod.map { ((1 - $0) / $0).squareRoot() }
        self.logSigmas = sigmas.map { Float(log(Double($0))) }
    }

    /// `torch.linspace(start, end, n, dtype=float32)` on CPU (see the type's comment).
    static func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        if n == 1 { return [start] }
        let step = (end - start) / Float(n - 1)
        let halfway = n / 2
        return (0..<n).map { i in
            i < halfway ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
        }
    }

    /// ᾱ at an integer timestep (clamped to the table, as `np.interp` clamps; only N = T reaches t = T).
    func alphaCumprod(_ t: Int) -> Float { alphasCumprod[min(max(t, 0), trainSteps - 1)] }

    /// σ at an integer timestep: `np.interp(t, arange(T), sigmas)`, exact at integers, clamped at the ends.
    func sigma(atTimestep t: Int) -> Float { sigmas[min(max(t, 0), trainSteps - 1)] }

    /// "leading" spacing: `arange(N)·(T//N)` reversed, plus `steps_offset` (DDIM, PNDM, Euler, LMS, Heun).
    func leadingTimesteps(_ steps: Int) -> [Int] {
        let ratio = trainSteps / steps
        return (0..<steps).reversed().map { $0 * ratio + stepsOffset }
    }

    /// DPMSolverMultistep's "leading": `arange(N+1)·(T//(N+1))` reversed, last dropped, plus offset.
    func dpmLeadingTimesteps(_ steps: Int) -> [Int] {
        let ratio = trainSteps / (steps + 1)
        return (1...steps).reversed().map { $0 * ratio + stepsOffset }
    }

    /// Karras et al. σ's (ρ = 7) from the table's ends, in double as diffusers computes them
    /// (`np.linspace(0, 1, N)` ramp).
    func karrasSigmas(_ steps: Int) -> [Double] {
        let sigmaMin = Double(sigmas[0]), sigmaMax = Double(sigmas[trainSteps - 1])
        let rho = 7.0
        let minInvRho = pow(sigmaMin, 1 / rho), maxInvRho = pow(sigmaMax, 1 / rho)
        return NoiseSchedule.numpyLinspace01(steps).map { pow(maxInvRho + $0 * (minInvRho - maxInvRho), rho) }
    }

    /// diffusers' `_sigma_to_t`: the fractional timestep whose log σ interpolates linearly
    /// between the two table entries around log σ (float32 table, double arithmetic).
    func sigmaToT(_ sigma: Double) -> Double {
        let logSigma = log(max(sigma, 1e-10))
        // Largest index whose log σ ≤ log sigma (0 if none), at most T−2.
        var low = 0
        for j in 0..<trainSteps where logSigma - Double(logSigmas[j]) >= 0 { low = j }
        low = min(low, trainSteps - 2)
        let lo = Double(logSigmas[low]), hi = Double(logSigmas[low + 1])
        var w = (lo - logSigma) / (lo - hi)
        w = min(max(w, 0), 1)
        return (1 - w) * Double(low) + w * Double(low + 1)
    }

    /// `np.linspace(0, 1, n)`: i·(1/(n−1)), the last value exactly 1.
    static func numpyLinspace01(_ n: Int) -> [Double] {
        guard n > 1 else { return [0] }
        let step = 1.0 / Double(n - 1)
        var y = (0..<n).map { Double($0) * step }
        y[n - 1] = 1
        return y
    }
}
