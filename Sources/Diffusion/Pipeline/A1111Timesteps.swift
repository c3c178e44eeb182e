import Foundation
import Models
import Tensors

/// A1111's UniPC settings (its options `uni_pc_variant`, `uni_pc_skip_type`, `uni_pc_order`,
/// `uni_pc_lower_order_final`; infotext keys "UniPC variant" and so on).
public struct UniPCOptions: Sendable, Equatable {
    public enum Variant: String, Sendable, CaseIterable { case bh1, bh2 }
    public enum SkipType: String, Sendable, CaseIterable { case timeUniform = "time_uniform", timeQuadratic = "time_quadratic", logSNR }
    public var variant = Variant.bh1
    public var skipType = SkipType.timeUniform
    public var order = 3
    public var lowerOrderFinal = true

    public init() {}
    public var isDefault: Bool { self == UniPCOptions() }
}

/// A1111's own timestep samplers (`sd_samplers_timesteps`): DDIM, PLMS and UniPC on LDM's float32 ᾱ,
/// not k-diffusion's σ. Their quirks, kept because an A1111 image was made with them:
/// - the timesteps are `range(0, 1000, 1000 // steps) + 1`, so 30 steps are 31 timesteps;
/// - DDIM and PLMS walk from the last timestep to the second and stop at the first's noise level
///   (DDIM makes one model call fewer than it has timesteps; PLMS's first step calls twice);
/// - UniPC (predicting x₀, multistep, A1111's default B(h) = h) runs on continuous time: as many
///   steps as timesteps, t from 1 to 1/1000, the model at fractional timestep (t − 1/1000)·1000.
/// The initial latent is the noise itself (x_T ~ N(0, 1), not scaled by σ_max).
public enum A1111Timesteps {
    /// `CompVisSampler.get_timesteps`.
    public static func timesteps(steps: Int) -> [Int] {
        stride(from: 0, to: 1000, by: max(1, 1000 / max(steps, 1))).map { min($0 + 1, 999) }
    }

    /// Model calls a run of `steps` steps makes.
    public static func evaluations(_ sampler: A1111Sampler, steps: Int) -> Int {
        let n = timesteps(steps: steps).count
        switch sampler {
        case .ddim: return n - 1
        case .plms: return n - 1 > 0 ? n : 0
        default: return n
        }
    }

    /// A one-line refusal of a run A1111 would not make (or would make without a model call).
    static func validate(_ k: A1111Sampling, steps: Int) throws {
        guard steps <= 1000 else { throw SamplerError("\(k.sampler.rawValue): at most 1000 steps (A1111's timesteps are spaced 1000 // steps)") }
        let n = timesteps(steps: steps).count
        if k.sampler != .unipc, n < 2 {
            throw SamplerError("\(k.sampler.rawValue): at least 2 steps (A1111's \(k.sampler.rawValue) stops one timestep short: 1 step makes no model call)")
        }
        if k.sampler == .unipc {
            guard (1...50).contains(k.unipc.order) else { throw SamplerError("UniPC order \(k.unipc.order): expected 1 to 50") }
            guard n >= k.unipc.order else { throw SamplerError("UniPC: \(n) timesteps, fewer than its order \(k.unipc.order) (A1111 asserts the same)") }
        }
    }
}

/// UniPC's discrete noise schedule (`NoiseScheduleVP('discrete')`): log α_t = ½ log ᾱ, piecewise
/// linear in t over t_i = (i + 1)/N, float32 as torch computes it.
struct UniPCSchedule {
    let times: [Float]      // torch.linspace(0, 1, N + 1)[1:]
    let logAlphas: [Float]  // ½ log ᾱ_i

    init(alphasCumprod: [Float]) {
        times = Array(NoiseSchedule.torchLinspace(0, 1, alphasCumprod.count + 1).dropFirst())
        logAlphas = alphasCumprod.map { 0.5 * Foundation.log($0) }
    }

    var count: Int { logAlphas.count }

    /// `interpolate_fn`: the segment whose keypoints bracket x (x sorted before an equal keypoint,
    /// as torch's stable sort puts it), the outer segments extended beyond the ends.
    static func interpolate(_ x: Float, _ xp: [Float], _ yp: [Float]) -> Float {
        let k = xp.count
        let below = xp.reduce(0) { $0 + ($1 < x ? 1 : 0) }
        let j = below == 0 ? 0 : below == k ? k - 2 : below - 1
        return yp[j] + (x - xp[j]) * (yp[j + 1] - yp[j]) / (xp[j + 1] - xp[j])
    }

    func logMeanCoeff(_ t: Float) -> Float { Self.interpolate(t, times, logAlphas) }
    func alpha(_ t: Float) -> Float { Foundation.exp(logMeanCoeff(t)) }
    func std(_ t: Float) -> Float { (1 - Foundation.exp(2 * logMeanCoeff(t))).squareRoot() }
    func lambda(_ t: Float) -> Float {
        let l = logMeanCoeff(t)
        return l - 0.5 * Foundation.log(1 - Foundation.exp(2 * l))
    }

    func inverseLambda(_ lambda: Float) -> Float {
        // log α = −½ logaddexp(0, −2λ), then t by interpolating the flipped table.
        let a: Float = 0, b = -2 * lambda
        let m = max(a, b)
        let logAlpha = -0.5 * (m + Foundation.log1p(Foundation.exp(-abs(a - b))))
        return Self.interpolate(logAlpha, logAlphas.reversed(), times.reversed())
    }

    /// `get_time_steps`: n + 1 times from 1 to 1/N.
    func times(_ skip: UniPCOptions.SkipType, steps n: Int) -> [Float] {
        let tT: Float = 1, t0 = Float(1.0 / Double(count))
        switch skip {
        case .timeUniform: return NoiseSchedule.torchLinspace(tT, t0, n + 1)
        case .timeQuadratic:
            return NoiseSchedule.torchLinspace(1, Float((1.0 / Double(count)).squareRoot()), n + 1).map { $0 * $0 }
        case .logSNR:
            return NoiseSchedule.torchLinspace(lambda(tT), lambda(t0), n + 1).map(inverseLambda)
        }
    }
}

extension TextToImagePipeline {
    /// DDIM, PLMS or UniPC as A1111 runs them (see `A1111Timesteps`). A1111's CFG denoiser here
    /// guides ε itself: ε_u + scale·(ε_c − ε_u).
    func generateA1111Timesteps(_ s: GenerationSettings, _ k: A1111Sampling, conditioning: CallConditioning, regional: RegionalAttention?,
                                observer: GenerationObserver?, shouldStop: () -> Bool) throws -> Tensor {
        try A1111Timesteps.validate(k, steps: s.steps)
        let alphas = KDiscreteSchedule.sd15.alphasCumprod
        let ts = A1111Timesteps.timesteps(steps: s.steps)
        var rng = s.rng.makeGenerator(seed: s.seed)
        let shape = [1, model.unet.config.inChannels, s.height / 8, s.width / 8]
        var x = rng.randn(shape)  // [1, 4, h, w]
        let unipc = UniPCSchedule(alphasCumprod: alphas)
        let unipcTimes = unipc.times(k.unipc.skipType, steps: ts.count)
        // Every call's timestep as the model gets it, for the observers.
        let callTimesteps: [Float]
        let finalSigma: Float
        switch k.sampler {
        case .unipc:
            callTimesteps = unipcTimes.dropLast().map(Self.unipcModelTime)
            finalSigma = unipc.std(unipcTimes.last!) / unipc.alpha(unipcTimes.last!)
        case .plms:
            let walk = Array(ts.dropFirst().reversed())
            callTimesteps = (walk.prefix(1) + [ts[ts.count - 2]] + walk.dropFirst()).map(Float.init)
            finalSigma = KDiscreteSchedule.sd15.sigmas[ts[0]]
        default:
            callTimesteps = ts.dropFirst().reversed().map(Float.init)
            finalSigma = KDiscreteSchedule.sd15.sigmas[ts[0]]
        }
        let calls = callTimesteps.count
        let sigmaOf: (Float) -> Float = { t in k.sampler == .unipc ? unipc.std(t / 1000 + 0.001) / unipc.alpha(t / 1000 + 0.001) : KDiscreteSchedule.sd15.sigmas[Int(t)] }
        observer?.didStart(settings: s, evaluations: calls, timesteps: callTimesteps, sigmas: callTimesteps.map(sigmaOf) + [finalSigma], initialLatent: x)
        var call = 0
        let bounded = s.separation?.boundedEvaluations(of: calls) ?? 0
        /// One model call: the guided ε at timestep t (and x̂₀, for the observers, from `x0`).
        func eps(_ x: Tensor, _ t: Float, x0: (Tensor) -> Tensor) throws -> Tensor {  // [1, 4, h, w]
            if shouldStop() { throw PipelineError(description: "interrupted after \(call) of \(calls) evaluations") }
            observer?.willEvaluate(index: call)
            regional?.active = call < bounded
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (e, pieces) = try predict(x, timestep: t, call: call, conditioning)
            observer?.didEvaluate(EvaluationRecord(index: call, timestep: t, sigma: sigmaOf(t), latent: x, predictedOriginal: x0(e),
                                                   eps: e, epsConditional: pieces?[1], epsUnconditional: pieces?[0],
                                                   seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9))
            call += 1
            return e
        }
        switch k.sampler {
        case .ddim, .plms: x = try ddimOrPLMS(x, plms: k.sampler == .plms, ts: ts, alphas: alphas, eps: eps)
        default: x = try uniPC(x, k.unipc, schedule: unipc, times: unipcTimes, eps: eps)
        }
        return x
    }

    /// UniPC's model time for continuous t: (t − 1/N)·1000, in float32.
    static func unipcModelTime(_ t: Float) -> Float { (t - Float(0.001)) * 1000 }

    /// A1111's `ddim` (η = 0) and `plms`.
    private func ddimOrPLMS(_ start: Tensor, plms: Bool, ts: [Int], alphas: [Float],
                            eps: (Tensor, Float, (Tensor) -> Tensor) throws -> Tensor) throws -> Tensor {
        var x = start
        // x̂₀ of ε at timestep t: (x − √(1−ᾱ)·ε)/√ᾱ.
        func x0(_ x: Tensor, _ t: Int) -> (Tensor) -> Tensor {
            let a = alphas[t], root = a.squareRoot(), rootOneMinus = (1 - a).squareRoot()
            return { e in SamplerMath.map(x, e) { ($0 - rootOneMinus * $1) / root } }
        }
        // One step from ts[index] down to ts[index − 1] with ε: √ᾱ_prev·x̂₀ + √(1 − ᾱ_prev)·ε.
        func step(_ x: Tensor, _ e: Tensor, _ index: Int) -> Tensor {
            let a = alphas[ts[index]], prev = alphas[ts[index - 1]]
            let root = a.squareRoot(), rootOneMinus = (1 - a).squareRoot(), rootPrev = prev.squareRoot(), dir = (1 - prev - 0).squareRoot()
            return SamplerMath.map(x, e) { xv, ev in rootPrev * ((xv - rootOneMinus * ev) / root) + dir * ev }
        }
        var old: [Tensor] = []
        for index in stride(from: ts.count - 1, through: 1, by: -1) {
            let t = ts[index]
            let e = try eps(x, Float(t), x0(x, t))
            guard plms else { x = step(x, e, index); continue }
            let prime: Tensor
            switch old.count {
            case 0:
                // Pseudo improved Euler: ε again at the next timestep, from the Euler step's x.
                let next = ts[max(index - 1, 0)]
                let xNext = step(x, e, index)
                let e2 = try eps(xNext, Float(next), x0(xNext, next))
                prime = SamplerMath.map(e, e2) { ($0 + $1) / 2 }
            case 1: prime = SamplerMath.map(e, old[0]) { (3 * $0 - $1) / 2 }
            case 2: prime = SamplerMath.map(e, old[1], old[0]) { (23 * $0 - 16 * $1 + 5 * $2) / 12 }
            default: prime = SamplerMath.map(e, old[2], old[1], old[0]) { (55 * $0 - 59 * $1 + 37 * $2 - 9 * $3) / 24 }
            }
            x = step(x, prime, index)
            old.append(e)
            if old.count > 3 { old.removeFirst() }
        }
        return x
    }

    /// UniPC (`multistep_uni_pc_bh_update`, predicting x₀): a predictor from the last `order`
    /// x̂₀s, then a corrector with the model's x̂₀ at the predicted point (that evaluation is
    /// reused by the next step); the last step has no corrector.
    private func uniPC(_ start: Tensor, _ o: UniPCOptions, schedule ns: UniPCSchedule, times: [Float],
                       eps: (Tensor, Float, (Tensor) -> Tensor) throws -> Tensor) throws -> Tensor {
        let steps = times.count - 1
        // The data prediction: x̂₀ = (x − σ_t·ε)/α_t.
        func model(_ x: Tensor, _ t: Float) throws -> Tensor {
            let sigma = ns.std(t), alpha = ns.alpha(t)
            let toX0: (Tensor) -> Tensor = { e in SamplerMath.map(x, e) { ($0 - sigma * $1) / alpha } }
            return toX0(try eps(x, Self.unipcModelTime(t), toX0))
        }
        func update(_ x: Tensor, _ models: [Tensor], _ tPrev: [Float], _ t: Float, order: Int, corrector: Bool) throws -> (Tensor, Tensor?) {
            let t0 = tPrev[tPrev.count - 1], m0 = models[models.count - 1]
            let lambda0 = ns.lambda(t0), lambdaT = ns.lambda(t)
            let sigma0 = ns.std(t0), sigmaT = ns.std(t), alphaT = Foundation.exp(ns.logMeanCoeff(t))
            let h = lambdaT - lambda0
            var rks: [Float] = [], d1s: [Tensor] = []
            for i in 1..<order {
                let rk = (ns.lambda(tPrev[tPrev.count - 1 - i]) - lambda0) / h
                rks.append(rk)
                d1s.append(SamplerMath.map(models[models.count - 1 - i], m0) { ($0 - $1) / rk })
            }
            rks.append(1)
            let hh = -h
            let hPhi1 = Foundation.expm1(hh)
            var hPhiK = hPhi1 / hh - 1
            let bh = o.variant == .bh1 ? hh : Foundation.expm1(hh)
            var factorial: Float = 1
            var r: [[Float]] = [], b: [Float] = []
            for i in 1...order {
                // torch.pow(rks, i − 1): ones, rks, rks², rks³ by multiplication, then powf.
                r.append(rks.map { i == 1 ? 1 : i == 2 ? $0 : i == 3 ? $0 * $0 : i == 4 ? $0 * $0 * $0 : Foundation.pow($0, Float(i - 1)) })
                b.append(hPhiK * factorial / bh)
                factorial *= Float(i + 1)
                hPhiK = hPhiK / hh - 1 / factorial
            }
            let c1 = sigmaT / sigma0, c2 = alphaT * hPhi1, c3 = alphaT * bh
            let base = SamplerMath.map(x, m0) { c1 * $0 - c2 * $1 }
            var xt = base
            if !d1s.isEmpty {
                let rhosP = order == 2 ? [Float(0.5)] : try Self.solve(r.dropLast().map { Array($0.dropLast()) }, Array(b.dropLast()))
                let res = Self.combine(rhosP, d1s)
                xt = SamplerMath.map(base, res) { $0 - c3 * $1 }
            }
            guard corrector else { return (xt, nil) }
            let rhosC = order == 1 ? [Float(0.5)] : try Self.solve(r, b)
            let mt = try model(xt, t)
            let last = rhosC[rhosC.count - 1]
            let corrected: Tensor
            if d1s.isEmpty {
                corrected = SamplerMath.map(base, mt, m0) { bv, mv, m0v in bv - c3 * (0 + last * (mv - m0v)) }
            } else {
                let res = Self.combine(Array(rhosC.dropLast()), d1s)
                corrected = SamplerMath.map(base, res, mt, m0) { bv, rv, mv, m0v in bv - c3 * (rv + last * (mv - m0v)) }
            }
            return (corrected, mt)
        }
        var x = start
        var models = [try model(x, times[0])]
        var tPrev = [times[0]]
        for initOrder in 1..<max(o.order, 1) {
            let t = times[initOrder]
            let (nx, mx) = try update(x, models, tPrev, t, order: initOrder, corrector: true)
            x = nx
            models.append(try mx ?? model(x, t))
            tPrev.append(t)
        }
        for step in o.order...steps {
            let t = times[step]
            let order = o.lowerOrderFinal ? min(o.order, steps + 1 - step) : o.order
            let (nx, mx) = try update(x, models, tPrev, t, order: order, corrector: step != steps)
            x = nx
            guard step < steps else { break }
            // The window slides; the newest x̂₀ is the corrector's evaluation.
            models.removeFirst()
            tPrev.removeFirst()
            tPrev.append(t)
            models.append(try mx ?? model(x, t))
        }
        return x
    }

    /// Σ_k ρ_k·D_k in float32, k in order.
    private static func combine(_ rhos: [Float], _ ds: [Tensor]) -> Tensor {
        var acc = SamplerMath.map(ds[0]) { rhos[0] * $0 }
        for k in 1..<rhos.count { acc = SamplerMath.map(acc, ds[k]) { $0 + rhos[k] * $1 } }
        return acc
    }

    /// R·ρ = b by Gaussian elimination with partial pivoting (LAPACK's `gesv` for these few unknowns).
    static func solve(_ r: [[Float]], _ b: [Float]) throws -> [Float] {
        var a = r, y = b
        let n = y.count
        for col in 0..<n {
            let pivot = (col..<n).max { abs(a[$0][col]) < abs(a[$1][col]) }!
            guard a[pivot][col] != 0 else { throw SamplerError("UniPC: a singular step (two timesteps at the same noise level)") }
            a.swapAt(col, pivot)
            y.swapAt(col, pivot)
            for row in (col + 1)..<n {
                let f = a[row][col] / a[col][col]
                for c in col..<n { a[row][c] -= f * a[col][c] }
                y[row] -= f * y[col]
            }
        }
        var out = [Float](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var v = y[row]
            for c in (row + 1)..<n { v -= a[row][c] * out[c] }
            out[row] = v / a[row][row]
        }
        return out
    }
}
