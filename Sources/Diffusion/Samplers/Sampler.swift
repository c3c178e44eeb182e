import Tensors

/// A denoising sampler: diffusers' scheduler of the same name with SD 1.5's scheduler config
/// (see `NoiseSchedule`), reproduced in float32 with the same operation order, so a run matches
/// diffusers step for step (Tests/DiffusionTests/SamplerTests.swift).
///
/// The pipeline drives it like `StableDiffusionPipeline` drives a scheduler, with one model
/// evaluation per entry of `timesteps`:
///
/// ```swift
/// var sampler = try makeSampler(.euler_a, steps: 20)
/// var x = scale(initialNoise, sampler.initNoiseSigma)
/// for i in 0..<sampler.evaluations {
///     let eps = cfg(unet(sampler.scaleModelInput(x, evaluation: i), sampler.timesteps[i], ctx))
///     x = sampler.step(eps: eps, evaluation: i, sample: x, noise: { generator.randn(x.shape) })
/// }
/// ```
///
/// Samplers are stateful (multistep histories, Heun's half steps): call `step` once per
/// evaluation, in order, starting at 0; a fresh run needs a fresh sampler.
public protocol Sampler {
    var kind: SamplerKind { get }
    /// Inference steps asked for (`num_inference_steps`).
    var steps: Int { get }
    /// The UNet timestep of each evaluation, in order. PNDM has `steps + 1` entries, Heun
    /// `2·steps − 1`, the others `steps`. Integer-valued for every sampler here.
    var timesteps: [Float] { get }
    /// The initial latent is `noise · initNoiseSigma`.
    var initNoiseSigma: Float { get }
    /// Whether `step` draws ancestral noise (then once per evaluation, including the last).
    var usesNoise: Bool { get }
    /// The UNet input for evaluation `i` (the σ-space samplers divide by √(σ²+1); others return `x`).
    func scaleModelInput(_ x: Tensor, evaluation i: Int) -> Tensor
    /// One evaluation's update: `eps` is the (guided) noise prediction for
    /// `scaleModelInput(x, evaluation: i)` at `timesteps[i]`; returns the new sample. `noise()`
    /// must return the next standard-normal tensor of `x`'s shape (`torch.randn(shape,
    /// generator=g)`); it is called only by samplers with `usesNoise`, in diffusers' order.
    mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor, noise: () -> Tensor) -> Tensor
    /// The noise level σ = √((1−ᾱ)/ᾱ) that evaluation `i` sees, for traces; `i == evaluations`
    /// gives the level the last step lands on (0, or √((1−ᾱ₀)/ᾱ₀) for DDIM and PNDM).
    func sigma(evaluation i: Int) -> Float
    /// The denoised estimate x̂₀ of the last `step` (diffusers' `pred_original_sample`; for PNDM
    /// computed from the raw ε of that evaluation), for previews. Nil before the first step.
    var predictedOriginal: Tensor? { get }
}

extension Sampler {
    public var name: String { kind.rawValue }
    /// Number of model evaluations (`timesteps.count`).
    public var evaluations: Int { timesteps.count }

    /// `step` for samplers that draw no noise; traps if the sampler needs noise.
    public mutating func step(eps: Tensor, evaluation i: Int, sample x: Tensor) -> Tensor {
        let name = kind.rawValue
        return step(eps: eps, evaluation: i, sample: x, noise: {
            preconditionFailure("sampler \(name) needs ancestral noise: pass noise:")
        })
    }
}

/// The samplers, named as on the command line.
public enum SamplerKind: String, CaseIterable, Sendable {
    /// `PNDMScheduler` (PLMS, skip_prk_steps): diffusers' SD 1.5 default. N+1 evaluations.
    case pndm
    /// `DDIMScheduler`, η = 0.
    case ddim
    /// `EulerDiscreteScheduler`.
    case euler
    /// `EulerAncestralDiscreteScheduler` (draws noise every step).
    case euler_a
    /// `DPMSolverMultistepScheduler`, dpmsolver++, order 2, midpoint, lower_order_final.
    case dpmpp_2m
    /// The same with `use_karras_sigmas=True`.
    case dpmpp_2m_karras
    /// `LMSDiscreteScheduler`, order 4.
    case lms
    /// `HeunDiscreteScheduler`: 2 evaluations per step except the last (2N−1).
    case heun

    /// The valid names, comma-separated, for messages.
    public static var validNames: String { allCases.map(\.rawValue).joined(separator: ", ") }

    /// Parses a sampler name (as `rawValue`, case-insensitive); throws a one-line error naming
    /// the valid samplers otherwise.
    public init(parsing name: String) throws {
        guard let kind = SamplerKind(rawValue: name.lowercased()) else {
            throw SamplerError("unknown sampler '\(name)'; valid samplers: \(SamplerKind.validNames)")
        }
        self = kind
    }

    /// Model evaluations a run of `steps` steps makes.
    public func evaluations(steps: Int) -> Int {
        switch self {
        case .pndm: return steps == 1 ? 1 : steps + 1
        case .heun: return 2 * steps - 1
        default: return steps
        }
    }
}

/// A bad sampler name or step count; `description` is one line.
public struct SamplerError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The sampler `kind` set up for `steps` inference steps (1…1000) with SD 1.5's schedule.
public func makeSampler(_ kind: SamplerKind, steps: Int, schedule: NoiseSchedule = .sd15) throws -> any Sampler {
    guard steps >= 1, steps <= schedule.trainSteps else {
        throw SamplerError("sampler steps must be between 1 and \(schedule.trainSteps), got \(steps)")
    }
    switch kind {
    case .pndm: return PNDMSampler(steps: steps, schedule: schedule)
    case .ddim: return DDIMSampler(steps: steps, schedule: schedule)
    case .euler: return EulerSampler(steps: steps, schedule: schedule)
    case .euler_a: return EulerAncestralSampler(steps: steps, schedule: schedule)
    case .dpmpp_2m: return DPMSolverMultistepSampler(steps: steps, karras: false, schedule: schedule)
    case .dpmpp_2m_karras: return DPMSolverMultistepSampler(steps: steps, karras: true, schedule: schedule)
    case .lms: return LMSSampler(steps: steps, schedule: schedule)
    case .heun: return HeunSampler(steps: steps, schedule: schedule)
    }
}

/// `makeSampler` by name; an unknown name throws a one-line error listing the valid ones.
public func makeSampler(named name: String, steps: Int, schedule: NoiseSchedule = .sd15) throws -> any Sampler {
    try makeSampler(SamplerKind(parsing: name), steps: steps, schedule: schedule)
}
