import Foundation
import Models
import Tensors

/// Run with one of A1111's samplers (`A1111Sampler`) instead of a diffusers scheduler.
public struct A1111Sampling: Sendable, Equatable {
    public var sampler: A1111Sampler
    public var schedule: KSchedule = .automatic
    /// A1111's eta noise seed delta: the generator is reseeded with seed + ENSD after the initial noise.
    public var ensd: UInt64 = 0
    /// A1111's UniPC settings (used by UniPC only).
    public var unipc = UniPCOptions()

    public init(sampler: A1111Sampler, schedule: KSchedule = .automatic, ensd: UInt64 = 0, unipc: UniPCOptions = UniPCOptions()) {
        self.sampler = sampler
        self.schedule = schedule
        self.ensd = ensd
        self.unipc = unipc
    }

    /// The schedule actually run (`automatic` resolved to the sampler's own).
    public var resolvedSchedule: KSchedule { schedule == .automatic ? sampler.automatic : schedule }
}

extension TextToImagePipeline {
    /// k-diffusion's loop as A1111 drives it. `denoise(x, σ)` is A1111's CFG denoiser: the UNet on
    /// x/√(σ²+1) at t = sigma_to_t(σ), x̂₀ = x − σ·ε per item, then x̂₀_u + scale·(x̂₀_c − x̂₀_u) —
    /// computed here as x − σ·ε_guided, the same affine map. Every model call is an evaluation for
    /// the observers; the noise comes from one generator: the initial draw, then (reseeded by
    /// ENSD) one draw per ancestral step.
    /// `conditioning`: each model call's context and guidance (A1111's CFGDenoiser counts calls, so
    /// a prompt that edits is picked per call).
    func generateA1111(_ s: GenerationSettings, _ k: A1111Sampling, conditioning: CallConditioning, regional: RegionalAttention?,
                       observer: GenerationObserver?, shouldStop: () -> Bool) throws -> Tensor {
        if k.sampler.runsTimesteps {
            return try generateA1111Timesteps(s, k, conditioning: conditioning, regional: regional, observer: observer, shouldStop: shouldStop)
        }
        let schedule = KDiscreteSchedule.sd15
        let sigmas = schedule.sigmas(for: k.sampler, schedule: k.schedule, steps: s.steps)
        let calls = k.sampler.evaluations(steps: sigmas.count - 1)
        var rng = s.rng.makeGenerator(seed: s.seed)
        let shape = [1, model.unet.config.inChannels, s.height / 8, s.width / 8]
        let noise = rng.randn(shape)  // [1, 4, h, w]
        if k.ensd != 0 { rng = s.rng.makeGenerator(seed: s.seed &+ k.ensd) }
        var x = scale(noise, sigmas[0])
        // What the observers see: the σ and fractional timestep of every model call.
        let callSigmas = Self.callSigmas(k.sampler, sigmas)
        observer?.didStart(settings: s, evaluations: calls, timesteps: callSigmas.map(schedule.sigmaToT),
                           sigmas: callSigmas + [0], initialLatent: x)
        var call = 0
        let bounded = s.separation?.boundedEvaluations(of: calls) ?? 0
        func denoise(_ x: Tensor, _ sigma: Float) throws -> Tensor {  // [1, 4, h, w] → x̂₀
            if shouldStop() { throw PipelineError(description: "interrupted after \(call) of \(calls) evaluations") }
            observer?.willEvaluate(index: call)
            regional?.active = call < bounded
            let t0 = DispatchTime.now().uptimeNanoseconds
            let input = scale(x, 1 / (sigma * sigma + 1).squareRoot())
            let t = schedule.sigmaToT(sigma)
            let (eps, pieces) = try predict(input, timestep: t, call: call, conditioning)
            let denoised = try add(x, scale(eps, -sigma))  // x̂₀
            observer?.didEvaluate(EvaluationRecord(index: call, timestep: t, sigma: sigma, latent: x, predictedOriginal: denoised,
                                                   eps: eps, epsConditional: pieces?[1], epsUnconditional: pieces?[0],
                                                   seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9))
            call += 1
            return denoised
        }
        func d(_ x: Tensor, _ sigma: Float, _ den: Tensor) throws -> Tensor { scale(try minus(x, den), 1 / sigma) }  // (x − x̂₀)/σ
        func ancestral(_ from: Float, _ to: Float) -> (down: Float, up: Float) {
            let up = min(to, (to * to * (from * from - to * to) / (from * from)).squareRoot())
            return ((to * to - up * up).squareRoot(), up)
        }
        var old: Tensor?
        var derivatives: [Tensor] = []
        // A1111's noise sampler for the SDE samplers: a Brownian tree per image seed over the sigma list.
        let brownian = k.sampler.brownianNoise ? BrownianTreeNoiseSampler(sigmas: sigmas, seed: s.seed, rng: s.rng, shape: shape) : nil
        var history = SDEHistory()
        for i in 0..<(sigmas.count - 1) {
            let (si, sn) = (sigmas[i], sigmas[i + 1])
            switch k.sampler {
            case .euler:
                let den = try denoise(x, si)
                x = try add(x, scale(try d(x, si, den), sn - si))
            case .eulerAncestral:
                let den = try denoise(x, si)
                let (down, up) = ancestral(si, sn)
                x = try add(x, scale(try d(x, si, den), down - si))
                if sn > 0 { x = try add(x, scale(rng.randn(shape), up)) }
            case .heun:
                let den = try denoise(x, si)
                let dx = try d(x, si, den)
                let dt = sn - si
                if sn == 0 { x = try add(x, scale(dx, dt)); break }
                let x2 = try add(x, scale(dx, dt))
                let d2 = try d(x2, sn, try denoise(x2, sn))
                x = try add(x, scale(try add(dx, d2), dt / 2))
            case .dpm2:
                let den = try denoise(x, si)
                let dx = try d(x, si, den)
                if sn == 0 { x = try add(x, scale(dx, sn - si)); break }
                let mid = Self.logMidpoint(si, sn)
                let x2 = try add(x, scale(dx, mid - si))
                x = try add(x, scale(try d(x2, mid, try denoise(x2, mid)), sn - si))
            case .dpm2Ancestral:
                let den = try denoise(x, si)
                let (down, up) = ancestral(si, sn)
                let dx = try d(x, si, den)
                if down == 0 {
                    x = try add(x, scale(dx, down - si))
                } else {
                    let mid = Self.logMidpoint(si, down)
                    let x2 = try add(x, scale(dx, mid - si))
                    x = try add(x, scale(try d(x2, mid, try denoise(x2, mid)), down - si))
                }
                x = try add(x, scale(rng.randn(shape), up))  // k-diffusion 0.0.16 draws here even at the end
            case .dpmpp2sAncestral:
                let den = try denoise(x, si)
                let (down, up) = ancestral(si, sn)
                if down == 0 {
                    x = try add(x, scale(try d(x, si, den), down - si))
                } else {
                    // t = −log σ; half a step in t, then the full one from x with the midpoint's x̂₀.
                    let t = -Foundation.log(si), tNext = -Foundation.log(down), h = tNext - t
                    let sMid = t + h / 2
                    let x2 = try minus(scale(x, Foundation.exp(-sMid) / Foundation.exp(-t)), scale(den, Foundation.expm1(-h / 2)))
                    let den2 = try denoise(x2, Foundation.exp(-sMid))
                    x = try minus(scale(x, Foundation.exp(-tNext) / Foundation.exp(-t)), scale(den2, Foundation.expm1(-h)))
                }
                if sn > 0 { x = try add(x, scale(rng.randn(shape), up)) }
            case .lms:
                // k-diffusion's order-4 linear multistep on (x − x̂₀)/σ, newest derivative first.
                let den = try denoise(x, si)
                derivatives.append(try d(x, si, den))
                if derivatives.count > 4 { derivatives.removeFirst() }
                let order = min(i + 1, 4)
                var sum: Tensor?
                for (j, dj) in derivatives.reversed().enumerated() {
                    let term = scale(dj, Float(Self.lmsCoefficient(order: order, sigmas: sigmas, i: i, j: j)))
                    sum = try sum.map { try add($0, term) } ?? term
                }
                x = try add(x, sum!)
            case .dpmpp2m:
                let den = try denoise(x, si)
                if sn == 0 { x = den; old = den; break }
                let t = -Foundation.log(si), tNext = -Foundation.log(sn), h = tNext - t
                var blended = den
                if let old, i > 0 {
                    let r = (t + Foundation.log(sigmas[i - 1])) / h  // h_last / h
                    blended = try minus(scale(den, 1 + 1 / (2 * r)), scale(old, 1 / (2 * r)))
                }
                x = try minus(scale(x, Foundation.exp(-tNext) / Foundation.exp(-t)), scale(blended, Foundation.expm1(-h)))
                old = den
            case .dpmppSDE, .dpmpp2mSDE, .dpmpp2mSDEHeun, .dpmpp3mSDE:
                guard let brownian else { throw SamplerError("\(k.sampler.rawValue) without its Brownian tree") }
                x = try sdeStep(k.sampler, i, sigmas, x, &history, brownian, denoise)
            case .ddim, .plms, .unipc:
                break  // run by generateA1111Timesteps (above)
            }
        }
        return x
    }

    /// The σ of every model call the sampler makes on `sigmas` (second-order samplers call again
    /// at a midpoint or the next level, except on a step that ends at 0).
    static func callSigmas(_ sampler: A1111Sampler, _ sigmas: [Float]) -> [Float] {
        var out: [Float] = []
        for i in 0..<(sigmas.count - 1) {
            let (si, sn) = (sigmas[i], sigmas[i + 1])
            out.append(si)
            let down = (sn * sn - pow(min(sn, (sn * sn * (si * si - sn * sn) / (si * si)).squareRoot()), 2)).squareRoot()
            switch sampler {
            case .heun where sn != 0: out.append(sn)
            case .dpm2 where sn != 0: out.append(logMidpoint(si, sn))
            case .dpm2Ancestral where down != 0: out.append(logMidpoint(si, down))
            case .dpmpp2sAncestral where down != 0:
                let t = -Foundation.log(si), h = -Foundation.log(down) - t
                out.append(Foundation.exp(-(t + h / 2)))
            case .dpmppSDE where sn != 0: out.append(sdeLevels(si, sn).mid)
            default: break
            }
        }
        return out
    }

    /// a − b (exactly, as a + (−1)·b).
    func minus(_ a: Tensor, _ b: Tensor) throws -> Tensor { try add(a, scale(b, -1)) }

    /// k-diffusion's `linear_multistep_coeff`: ∫ from σ_i to σ_{i+1} of the Lagrange basis
    /// polynomial of σ_{i−j} over σ_i … σ_{i−order+1}. k-diffusion integrates with scipy's adaptive
    /// quadrature (Gauss–Kronrod, exact for these cubics); 5-point Gauss–Legendre is exact too.
    static func lmsCoefficient(order: Int, sigmas: [Float], i: Int, j: Int) -> Double {
        let t = sigmas.map(Double.init)
        func basis(_ tau: Double) -> Double {
            var prod = 1.0
            for k in 0..<order where k != j { prod *= (tau - t[i - k]) / (t[i - j] - t[i - k]) }
            return prod
        }
        let nodes: [(Double, Double)] = [(0, 128.0 / 225), (0.5384693101056831, 0.4786286704993665), (-0.5384693101056831, 0.4786286704993665),
                                         (0.9061798459386640, 0.2369268850561891), (-0.9061798459386640, 0.2369268850561891)]
        let (a, b) = (t[i], t[i + 1])
        return nodes.reduce(0) { $0 + $1.1 * basis((b - a) / 2 * $1.0 + (a + b) / 2) } * (b - a) / 2
    }

    /// exp(lerp(log a, log b, ½)): k-diffusion's σ between two levels.
    static func logMidpoint(_ a: Float, _ b: Float) -> Float {
        let la = Foundation.log(a), lb = Foundation.log(b)
        return Foundation.exp(la + 0.5 * (lb - la))
    }
}

extension A1111Sampling: CustomStringConvertible {
    /// `Euler a, automatic, ENSD 31337` — short enough for a test's name or a file name.
    public var description: String {
        var parts = [sampler.rawValue, schedule.rawValue]
        if ensd != 0 { parts.append("ENSD \(ensd)") }
        if sampler == .unipc, !unipc.isDefault {
            parts.append("\(unipc.variant.rawValue) \(unipc.skipType.rawValue) order \(unipc.order)\(unipc.lowerOrderFinal ? "" : " no lower final")")
        }
        return parts.joined(separator: ", ")
    }
}
