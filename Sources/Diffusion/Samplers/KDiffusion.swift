import Foundation

/// AUTOMATIC1111's samplers, run as A1111 v1.10 runs them: k-diffusion's sampling functions on its
/// `DiscreteEpsDDPMDenoiser` (the model's own noise levels, fractional timesteps), with A1111's
/// sigma lists, per-image noise and classifier-free guidance on x̂₀. Distinct from diffusers'
/// schedulers of similar names (`SamplerKind`), whose schedules differ.
public enum A1111Sampler: String, CaseIterable, Sendable {
    case euler = "Euler"
    case eulerAncestral = "Euler a"
    case heun = "Heun"
    case lms = "LMS"
    case dpm2 = "DPM2"
    case dpm2Ancestral = "DPM2 a"
    case dpmpp2sAncestral = "DPM++ 2S a"
    case dpmpp2m = "DPM++ 2M"
    // k-diffusion's SDE samplers, their noise from A1111's Brownian tree (`BrownianTreeNoiseSampler`).
    case dpmppSDE = "DPM++ SDE"
    case dpmpp2mSDE = "DPM++ 2M SDE"
    case dpmpp2mSDEHeun = "DPM++ 2M SDE Heun"
    case dpmpp3mSDE = "DPM++ 3M SDE"
    // A1111's own timestep samplers (not k-diffusion's): `A1111Timesteps`.
    case ddim = "DDIM"
    case plms = "PLMS"
    case unipc = "UniPC"

    /// A1111's names of the samplers it has that the engine does not run yet, with the reason.
    static let missing: [String: String] = [
        "DPM fast": "k-diffusion's adaptive solvers", "DPM adaptive": "k-diffusion's adaptive solvers",
        "Restart": "A1111's own sampler", "LCM": "A1111's own sampler", "DDIM CFG++": "A1111's own timestep sampler", "Euler CFG++": "CFG++",
    ]

    /// An A1111 sampler name (as its infotext writes it); a one-line refusal for the ones the
    /// engine lacks, nil for a name A1111 does not have either.
    public static func named(_ name: String) throws -> A1111Sampler? {
        if let s = A1111Sampler(rawValue: name) { return s }
        if let why = missing[name] { throw SamplerError("A1111's sampler '\(name)' is not in the engine yet (\(why)); it runs \(allCases.map(\.rawValue).joined(separator: ", "))") }
        return nil
    }

    /// The schedule "Automatic" means for this sampler.
    var automatic: KSchedule {
        switch self {
        case .euler, .eulerAncestral, .heun, .lms: return .uniform
        case .dpm2, .dpm2Ancestral, .dpmpp2sAncestral, .dpmpp2m, .dpmppSDE: return .karras
        case .dpmpp2mSDE, .dpmpp2mSDEHeun, .dpmpp3mSDE: return .exponential
        case .ddim, .plms, .unipc: return .uniform  // unused: they run A1111's timesteps
        }
    }

    /// DDIM, PLMS and UniPC: A1111's timestep samplers, which take no schedule type.
    public var runsTimesteps: Bool { self == .ddim || self == .plms || self == .unipc }

    /// DPM2 and DPM2 a compute one sigma more and drop the next-to-last.
    var discardsPenultimateSigma: Bool { self == .dpm2 || self == .dpm2Ancestral || self == .dpmpp3mSDE }
    /// Draws noise after the first from the image's generator (so ENSD matters).
    public var drawsNoise: Bool { self == .eulerAncestral || self == .dpm2Ancestral || self == .dpmpp2sAncestral }
    /// Draws its noise from a Brownian tree seeded by the image's seed (ENSD does not touch it).
    public var brownianNoise: Bool { self == .dpmppSDE || self == .dpmpp2mSDE || self == .dpmpp2mSDEHeun || self == .dpmpp3mSDE }
    var secondOrder: Bool { self == .heun || self == .dpm2 || self == .dpm2Ancestral || self == .dpmpp2sAncestral || self == .dpmppSDE }

    /// Model calls for `n` steps (second-order samplers call twice but on the last step; the
    /// timestep samplers as `A1111Timesteps.evaluations`).
    public func evaluations(steps n: Int) -> Int {
        runsTimesteps ? A1111Timesteps.evaluations(self, steps: n) : secondOrder ? 2 * n - 1 : n
    }
}

/// A1111's schedule types (`Schedule type:` in its infotext; lower-case names as its options).
public enum KSchedule: String, CaseIterable, Sendable {
    case automatic, uniform, karras, exponential, polyexponential, sgm_uniform, simple, normal

    public init(parsing name: String) throws {
        let key = name.lowercased().replacingOccurrences(of: " ", with: "_")
        if let s = KSchedule(rawValue: key) { self = s; return }
        if key == "sgmuniform" { self = .sgm_uniform; return }
        if ["kl_optimal", "align_your_steps", "beta", "ddim", "karras_exponential"].contains(key) {
            throw SamplerError("schedule type '\(name)' is not in the engine yet; it has \(KSchedule.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        throw SamplerError("unknown schedule type '\(name)'; expected \(KSchedule.allCases.map(\.rawValue).joined(separator: ", "))")
    }

    /// The label A1111 writes (`Schedule type: Karras`).
    public var label: String { self == .sgm_uniform ? "SGM Uniform" : rawValue.prefix(1).uppercased() + rawValue.dropFirst() }
}

/// k-diffusion's `DiscreteSchedule` over LDM's linear β schedule (float64, stored float32):
/// σ_t = √((1 − ᾱ_t)/ᾱ_t), fractional timesteps by log-σ interpolation, in float32 as torch does.
public struct KDiscreteSchedule: Sendable {
    public let sigmas: [Float]
    let logSigmas: [Float]
    /// ᾱ_t as LDM stores it (float32), which A1111's timestep samplers read directly.
    public let alphasCumprod: [Float]

    public static let sd15 = KDiscreteSchedule(betaStart: 0.00085, betaEnd: 0.012, trainSteps: 1000)

    public init(betaStart: Double, betaEnd: Double, trainSteps n: Int) {
        let a = betaStart.squareRoot(), b = betaEnd.squareRoot()
        var acc = 1.0
        var s: [Float] = [], ac: [Float] = []
        for i in 0..<n {
            // torch.linspace in float64: start + i·step below the middle, end − (n−1−i)·step from it.
            let step = (b - a) / Double(n - 1)
            let r = i < n / 2 ? a + step * Double(i) : b - step * Double(n - 1 - i)
            acc *= 1 - r * r
            ac.append(Float(acc))
            s.append(((1 - ac[i]) / ac[i]).squareRoot())
        }
        sigmas = s
        alphasCumprod = ac
        logSigmas = s.map { Foundation.log($0) }
    }

    /// `sigma_to_t`: the fractional timestep of σ.
    public func sigmaToT(_ sigma: Float) -> Float {
        let l = Foundation.log(sigma)
        var low = 0
        for (i, ls) in logSigmas.enumerated() where l - ls >= 0 { low = i }
        low = min(low, logSigmas.count - 2)
        let lo = logSigmas[low], hi = logSigmas[low + 1]
        let w = min(max((lo - l) / (lo - hi), 0), 1)
        return (1 - w) * Float(low) + w * Float(low + 1)
    }

    /// `t_to_sigma`.
    public func tToSigma(_ t: Float) -> Float {
        let low = Int(t.rounded(.down)), high = Int(t.rounded(.up)), w = t - t.rounded(.down)
        return Foundation.exp((1 - w) * logSigmas[low] + w * logSigmas[high])
    }

    /// The sigma list (n levels then 0) of a schedule type, as A1111's `sd_schedulers` makes it.
    public func sigmas(_ schedule: KSchedule, steps n: Int) -> [Float] {
        let smin = sigmas[0], smax = sigmas[sigmas.count - 1]
        switch schedule {
        case .automatic, .uniform:
            return NoiseSchedule.torchLinspace(Float(sigmas.count - 1), 0, n).map(tToSigma) + [0]
        case .karras:
            // As torch: the Python scalars (ρ-th roots and their difference, in double) meet the
            // float32 ramp as float32.
            let minInv = pow(Double(smin), 1 / 7.0), maxInv = pow(Double(smax), 1 / 7.0)
            let base = Float(maxInv), span = Float(minInv - maxInv)
            return NoiseSchedule.torchLinspace(0, 1, n).map { Foundation.pow(base + $0 * span, 7) } + [0]
        case .exponential:
            return NoiseSchedule.torchLinspace(Float(Foundation.log(Double(smax))), Float(Foundation.log(Double(smin))), n).map { Foundation.exp($0) } + [0]
        case .polyexponential:
            let span = Float(Foundation.log(Double(smax)) - Foundation.log(Double(smin))), low = Float(Foundation.log(Double(smin)))
            return NoiseSchedule.torchLinspace(1, 0, n).map { Foundation.exp($0 * span + low) } + [0]
        case .simple:
            let ss = Double(sigmas.count) / Double(n)
            return (0..<n).map { sigmas[sigmas.count - 1 - Int(Double($0) * ss)] } + [0]
        case .normal:
            return NoiseSchedule.torchLinspace(sigmaToT(smax), sigmaToT(smin), n).map(tToSigma) + [0]
        case .sgm_uniform:
            // n + 1 timesteps from σ_max's to σ_min's, the last dropped (SGM's uniform spacing).
            return NoiseSchedule.torchLinspace(sigmaToT(smax), sigmaToT(smin), n + 1).dropLast().map(tToSigma) + [0]
        }
    }

    /// What A1111 samples with: the sampler's automatic schedule where asked, one step more and
    /// the next-to-last dropped for DPM2 and DPM2 a.
    public func sigmas(for sampler: A1111Sampler, schedule: KSchedule, steps: Int) -> [Float] {
        let kind = schedule == .automatic ? sampler.automatic : schedule
        guard sampler.discardsPenultimateSigma else { return sigmas(kind, steps: steps) }
        var s = sigmas(kind, steps: steps + 1)
        s.remove(at: s.count - 2)
        return s
    }
}

/// A sampler as a person names it: one of diffusers' schedulers (`euler_a`; `euler_a (diffusers)`
/// in Pareidolia's infotext) or one of A1111's (`Euler a`, `DPM++ 2M`) with a schedule type.
public enum SamplerChoice: Equatable, Sendable {
    case diffusers(SamplerKind)
    case a1111(A1111Sampling)

    /// `schedule`: A1111's schedule type (`--schedule`, `Schedule type:`); A1111's names before
    /// v1.9 carried it in the sampler name (`DPM++ 2M Karras`), read as well.
    public static func parse(_ name: String, schedule: String?) throws -> SamplerChoice {
        // diffusers' names are lower case (`euler`), A1111's capitalised (`Euler`): the case decides.
        var base = name
        if base.hasSuffix(" (diffusers)") { base = String(base.dropLast(" (diffusers)".count)) }
        if let kind = SamplerKind(rawValue: base) {
            if let schedule { throw SamplerError("schedule type '\(schedule)': diffusers' \(kind.rawValue) has its own schedule (schedule types go with A1111's samplers)") }
            return .diffusers(kind)
        }
        var sched = try schedule.map(KSchedule.init(parsing:)) ?? .automatic
        for suffix in [" Karras", " Exponential"] where name.hasSuffix(suffix) && schedule == nil {
            if let s = try A1111Sampler.named(String(name.dropLast(suffix.count))) {
                sched = try KSchedule(parsing: String(suffix.dropFirst()))
                return .a1111(A1111Sampling(sampler: s, schedule: sched))
            }
        }
        if let s = try A1111Sampler.named(name) {
            if s.runsTimesteps && sched != .automatic {
                throw SamplerError("schedule type '\(schedule ?? "")': \(name) runs A1111's own timesteps (schedule types go with its k-diffusion samplers)")
            }
            return .a1111(A1111Sampling(sampler: s, schedule: sched))
        }
        throw SamplerError("unknown sampler '\(name)'; diffusers' schedulers: \(SamplerKind.validNames); A1111's: \(A1111Sampler.allCases.map(\.rawValue).joined(separator: ", "))")
    }

    /// Draws noise after the initial one (ancestral).
    public var drawsNoise: Bool {
        switch self {
        case let .diffusers(k): return k == .euler_a
        case let .a1111(a): return a.sampler.drawsNoise
        }
    }

    /// Model evaluations a run of `steps` steps makes.
    public func evaluations(steps: Int) -> Int {
        switch self {
        case let .diffusers(k): return k.evaluations(steps: steps)
        case let .a1111(a): return a.sampler.evaluations(steps: steps)
        }
    }
}

extension GenerationSettings {
    /// The sampler the run uses.
    public var samplerChoice: SamplerChoice {
        get { a1111.map(SamplerChoice.a1111) ?? .diffusers(sampler) }
        set {
            switch newValue {
            case let .diffusers(k): sampler = k; a1111 = nil
            case let .a1111(a): a1111 = a
            }
        }
    }
}
