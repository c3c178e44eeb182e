import Foundation
import Tensors

/// What the multistep SDE samplers carry from one step to the next: the last x̂₀s and log-σ steps,
/// newest first.
struct SDEHistory {
    var denoised: [Tensor] = []
    var h: [Float] = []

    mutating func push(_ den: Tensor, _ h: Float?) {
        denoised.insert(den, at: 0)
        if denoised.count > 2 { denoised.removeLast() }
        // k-diffusion keeps the step of the last step before a final one (its `h` is not recomputed there).
        self.h.insert(h ?? self.h.first ?? 0, at: 0)
        if self.h.count > 2 { self.h.removeLast() }
    }
}

extension TextToImagePipeline {
    /// One step of k-diffusion 0.0.16's SDE samplers as A1111 calls them (eta 1, s_noise 1, the noise
    /// from A1111's Brownian tree): `sample_dpmpp_sde` (r = ½), `sample_dpmpp_2m_sde` (midpoint, or Heun
    /// for "DPM++ 2M SDE Heun"), `sample_dpmpp_3m_sde`. The scalar coefficients are float32 as torch
    /// computes them on 0-d tensors; x̂₀ = `denoise(x, σ)`, one model call.
    func sdeStep(_ sampler: A1111Sampler, _ i: Int, _ sigmas: [Float], _ x: Tensor, _ history: inout SDEHistory,
                 _ noise: BrownianTreeNoiseSampler, _ denoise: (Tensor, Float) throws -> Tensor) throws -> Tensor {
        let (si, sn) = (sigmas[i], sigmas[i + 1])
        let den = try denoise(x, si)
        switch sampler {
        case .dpmppSDE:
            if sn == 0 { return try add(x, scale(Self.divided(try minus(x, den), si), sn - si)) }  // Euler: x + (x − x̂₀)/σ · dt
            // Half a step in t = −log σ with ancestral noise, the model there, then the whole step
            // from x on the midpoint's x̂₀ (k-diffusion's (1 − 1/2r)·x̂₀ + (1/2r)·x̂₀' is x̂₀' at r = ½).
            let (t, sigmaT, sigmaS, sigmaNext) = Self.sdeLevels(si, sn)
            var (down, up) = Self.ancestralStep(sigmaT, sigmaS)
            var tDown = -Foundation.log(down)
            var x2 = try minus(scale(x, Foundation.exp(-tDown) / sigmaT), scale(den, Foundation.expm1(t - tDown)))
            x2 = try add(x2, scale(try noise(sigmaT, sigmaS), up))
            let den2 = try denoise(x2, sigmaS)
            (down, up) = Self.ancestralStep(sigmaT, sigmaNext)
            tDown = -Foundation.log(down)
            let out = try minus(scale(x, Foundation.exp(-tDown) / sigmaT), scale(den2, Foundation.expm1(t - tDown)))
            return try add(out, scale(try noise(sigmaT, sigmaNext), up))
        case .dpmpp2mSDE, .dpmpp2mSDEHeun:
            // The last step (to σ = 0) returns x̂₀ itself.
            guard sn != 0 else { history.push(den, nil); return den }
            let t = -Foundation.log(si), s = -Foundation.log(sn), h = s - t
            defer { history.push(den, h) }
            let b = -Foundation.expm1(-h - h)  // 1 − e^(−2h)
            var out = try add(scale(x, sn / si * Foundation.exp(-h)), scale(den, b))
            if let old = history.denoised.first, let hLast = history.h.first {
                let r = hLast / h
                let c = sampler == .dpmpp2mSDEHeun ? (b / (-h - h) + 1) * (1 / r) : 0.5 * b * (1 / r)
                out = try add(out, scale(try minus(den, old), c))
            }
            return try add(out, scale(scale(try noise(si, sn), sn), (-Foundation.expm1(-2 * h)).squareRoot()))
        case .dpmpp3mSDE:
            guard sn != 0 else { history.push(den, nil); return den }
            let t = -Foundation.log(si), s = -Foundation.log(sn), h = s - t, hEta = h * 2
            defer { history.push(den, h) }
            var out = try add(scale(x, Foundation.exp(-hEta)), scale(den, -Foundation.expm1(-hEta)))
            let phi2 = Foundation.expm1(-hEta) / hEta + 1
            if history.denoised.count == 2 {
                let (r0, r1) = (history.h[0] / h, history.h[1] / h)
                let d10 = Self.divided(try minus(den, history.denoised[0]), r0)
                let d11 = Self.divided(try minus(history.denoised[0], history.denoised[1]), r1)
                let diff = try minus(d10, d11)
                let d1 = try add(d10, Self.divided(scale(diff, r0), r0 + r1))
                let d2 = Self.divided(diff, r0 + r1)
                let phi3 = phi2 / hEta - 0.5
                out = try minus(try add(out, scale(d1, phi2)), scale(d2, phi3))
            } else if let den1 = history.denoised.first {
                out = try add(out, scale(Self.divided(try minus(den, den1), history.h[0] / h), phi2))
            }
            return try add(out, scale(scale(try noise(si, sn), sn), (-Foundation.expm1(-2 * h)).squareRoot()))
        default:
            throw SamplerError("\(sampler.rawValue) is not one of k-diffusion's SDE samplers")
        }
    }

    /// k-diffusion's `get_ancestral_step` at eta 1: (σ_down, σ_up).
    static func ancestralStep(_ from: Float, _ to: Float) -> (down: Float, up: Float) {
        let up = min(to, (to * to * (from * from - to * to) / (from * from)).squareRoot())
        return ((to * to - up * up).squareRoot(), up)
    }

    /// x / s elementwise (torch divides; a product with 1/s would round differently).
    static func divided(_ x: Tensor, _ s: Float) -> Tensor {
        let y = Tensor(uninitializedShape: x.shape)  // same shape as x
        for j in 0..<x.count { y.pointer[j] = x.pointer[j] / s }
        return y
    }

    /// DPM++ SDE's levels for a step from σ_i to σ_next > 0, in t = −log σ: t, then σ_i and σ_next
    /// back from t (e^−t: what its noise sampler is asked for, not always σ_i to the bit) and the
    /// midpoint σ = e^−(t + h/2) of its second model call.
    static func sdeLevels(_ si: Float, _ sn: Float) -> (t: Float, sigma: Float, mid: Float, next: Float) {
        let t = -Foundation.log(si), tNext = -Foundation.log(sn), h = tNext - t
        return (t, Foundation.exp(-t), Foundation.exp(-(t + h * 0.5)), Foundation.exp(-tNext))
    }

    /// The (σ, σ') of every noise-sampler call on `sigmas`, in order.
    static func sdeNoiseTimes(_ sampler: A1111Sampler, _ sigmas: [Float]) -> [(Float, Float)] {
        zip(sigmas, sigmas.dropFirst()).filter { $0.1 != 0 }.flatMap { si, sn -> [(Float, Float)] in
            guard sampler == .dpmppSDE else { return [(si, sn)] }
            let l = sdeLevels(si, sn)
            return [(l.sigma, l.mid), (l.sigma, l.next)]
        }
    }
}
