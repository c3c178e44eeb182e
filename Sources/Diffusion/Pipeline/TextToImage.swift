import Foundation
import Models
import Tensors

/// What to generate: the settings a user gives `pareidolia generate`.
public struct GenerationSettings: Sendable {
    public var prompt: String
    public var negativePrompt = ""
    public var seed: UInt64 = 0
    public var steps = 20
    public var guidance: Float = 7.5
    public var sampler: SamplerKind = .pndm
    public var width = 512
    public var height = 512
    public var rng: RNGKind = .cpu
    public var clipSkip = 1
    /// A merge remedy (bounded regional attention); nil runs the plain pipeline.
    public var separation: Separation?
    /// One of A1111's samplers with its schedule type (then `sampler` is not used).
    public var a1111: A1111Sampling?

    public init(prompt: String) { self.prompt = prompt }

    /// Checks what can be checked before any work: sizes, steps, guidance.
    public func validate() throws {
        guard width > 0, height > 0, width % 8 == 0, height % 8 == 0 else {
            throw PipelineError(description: "--width/--height \(width)×\(height): both must be positive multiples of 8")
        }
        guard (1...1000).contains(steps) else { throw PipelineError(description: "--steps \(steps): expected 1…1000") }
        guard guidance.isFinite, guidance >= 0 else { throw PipelineError(description: "--guidance \(guidance): expected a number ≥ 0") }
        try separation?.validate()
    }
}

public struct PipelineError: Error, CustomStringConvertible {
    public let description: String
}

/// What one UNet evaluation produced, as observers see it.
public struct EvaluationRecord {
    public let index: Int
    public let timestep: Float
    public let sigma: Float
    /// The latent after this evaluation's sampler step [1, 4, h, w].
    public let latent: Tensor
    /// The sampler's denoised estimate x̂₀ for this evaluation [1, 4, h, w].
    public let predictedOriginal: Tensor?
    /// The guided noise prediction, and the two halves when guidance ran.
    public let eps: Tensor
    public let epsConditional: Tensor?
    public let epsUnconditional: Tensor?
    public let seconds: Double
}

/// Called by the pipeline around each UNet evaluation (the trace and the progress bar listen here).
public protocol GenerationObserver: AnyObject {
    /// Before the first evaluation: the initial latent (noise × the sampler's initial sigma).
    func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor)
    /// After the prompts are split into chunks (before any evaluation).
    func didEncodePrompt(_ prompt: PromptChunker.Result, negative: PromptChunker.Result?, tokenizer: CLIPTokenizer)
    /// Just before evaluation `index` runs the UNet (probes arm themselves here).
    func willEvaluate(index: Int)
    /// After evaluation `index` (0-based).
    func didEvaluate(_ record: EvaluationRecord)
}

extension GenerationObserver {
    public func didEncodePrompt(_ prompt: PromptChunker.Result, negative: PromptChunker.Result?, tokenizer: CLIPTokenizer) {}
    public func willEvaluate(index: Int) {}
}

/// txt2img as diffusers' `StableDiffusionPipeline` runs it, with A1111's prompt handling.
public final class TextToImagePipeline {
    public let model: StableDiffusionModel
    /// Give the text encoder's weight pages back once the prompt is encoded, and the UNet's before
    /// the VAE decodes, so the peak memory is one network's weights, not all three. A mapped file
    /// reads them back from the page cache when the next run needs them (≈1 s for the UNet).
    public var releasesWeightsBetweenPhases = true

    public init(model: StableDiffusionModel) { self.model = model }

    public struct Output {
        /// Decoded image [1, 3, H, W] in about [-1, 1].
        public let image: Tensor
        /// The last latent [1, 4, H/8, W/8] (UNet scale).
        public let latent: Tensor
        public let prompt: PromptChunker.Result
        public let negativePrompt: PromptChunker.Result?
    }

    /// Runs the whole generation. `shouldStop` is asked between evaluations; when it says yes the
    /// run ends with `PipelineError` (observers have seen every evaluation done).
    public func generate(_ s: GenerationSettings, embeddings: [PromptEmbedding] = [], observer: GenerationObserver? = nil,
                         shouldStop: () -> Bool = { false }) throws -> Output {
        try s.validate()
        let encoder = PromptEncoder(model: model.textEncoder, tokenizer: model.tokenizer, embeddings: embeddings, clipSkip: s.clipSkip)
        let guided = s.guidance > 1  // as diffusers: guidance ≤ 1 runs no unconditional pass
        var scheduled = ScheduledConditioning(settings: s)
        if !scheduled.isPlain {
            return try generateScheduled(s, conditioning: &scheduled, encoder: encoder, guided: guided, observer: observer, shouldStop: shouldStop)
        }
        var (cond, condInfo) = try encoder.encode(s.prompt)  // [1, 77·n, D]
        var regional: RegionalAttention?
        if let separation = s.separation {
            (cond, regional) = try Self.separate(separation, prompt: s.prompt, cond: cond, info: condInfo, encoder: encoder,
                                                 tokenizer: model.tokenizer, conditionalBatch: guided ? 1 : 0)
        }
        model.unet.probes.regional = regional
        defer { model.unet.probes.regional = nil }
        var context = cond
        var negInfo: PromptChunker.Result?
        if guided {
            var (uncond, info) = try encoder.encode(s.negativePrompt)  // [1, 77·m, D]
            negInfo = info
            // A1111 pads the shorter conditioning with encoded empty chunks.
            let empty = try encoder.encode(chunks: [PromptChunker.emptyChunk])  // [1, 77, D]
            var c = cond
            while uncond.shape[1] < c.shape[1] { uncond = try concat([uncond, empty], axis: 1) }
            while c.shape[1] < uncond.shape[1] { c = try concat([c, empty], axis: 1) }
            context = try concat([uncond, c], axis: 0)  // [2, T, D]: unconditional first, as diffusers
        }

        if releasesWeightsBetweenPhases { model.releaseResidentWeights(.textEncoder) }
        observer?.didEncodePrompt(condInfo, negative: negInfo, tokenizer: model.tokenizer)
        let calls = CallConditioning(batch: guided ? 2 : 1, context: { _ in context },
                                     guide: { guided ? try Self.guide($0, scale: s.guidance) : $0 })
        let x = try s.a1111.map { try generateA1111(s, $0, conditioning: calls, regional: regional, observer: observer, shouldStop: shouldStop) }
            ?? diffusersLoop(s, conditioning: calls, regional: regional, observer: observer, shouldStop: shouldStop)
        return try finish(x, prompt: condInfo, negative: negInfo)
    }

    /// What each model call is given: the UNet batch size, its context [batch, T, D] at call k,
    /// and how the batch's noise predictions become one (guidance).
    struct CallConditioning {
        let batch: Int
        let context: (Int) throws -> Tensor
        let guide: (Tensor) throws -> Tensor
    }

    /// One model call's guided noise prediction, and the batch's pieces when it has several
    /// (unconditional first) for the trace.
    func predict(_ input: Tensor, timestep: Float, call: Int, _ c: CallConditioning) throws -> (eps: Tensor, pieces: [Tensor]?) {
        let context = try c.context(call)  // [batch, T, D]
        guard c.batch > 1 else { return (try model.unet(input, timesteps: [timestep], context: context), nil) }
        let out = try model.unet(try concat(Array(repeating: input, count: c.batch), axis: 0), timesteps: [timestep], context: context)  // [batch, 4, h, w]
        return (try c.guide(out), try split(out, axis: 0, sizes: Array(repeating: 1, count: c.batch)))  // [1, 4, h, w]
    }

    /// diffusers' scheduler loop: one model call an evaluation.
    func diffusersLoop(_ s: GenerationSettings, conditioning c: CallConditioning, regional: RegionalAttention?,
                       observer: GenerationObserver?, shouldStop: () -> Bool) throws -> Tensor {
        var sampler = try makeSampler(s.sampler, steps: s.steps)
        var rng = s.rng.makeGenerator(seed: s.seed)
        let latentShape = [1, model.unet.config.inChannels, s.height / 8, s.width / 8]
        var x = scale(rng.randn(latentShape), sampler.initNoiseSigma)  // [1, 4, h, w]
        let timesteps = sampler.timesteps
        let bounded = s.separation?.boundedEvaluations(of: timesteps.count) ?? 0
        observer?.didStart(settings: s, evaluations: timesteps.count, timesteps: timesteps,
                           sigmas: (0...timesteps.count).map { sampler.sigma(evaluation: $0) }, initialLatent: x)
        for i in timesteps.indices {
            if shouldStop() { throw PipelineError(description: "interrupted after \(i) of \(timesteps.count) evaluations") }
            observer?.willEvaluate(index: i)
            regional?.active = i < bounded
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (eps, pieces) = try predict(sampler.scaleModelInput(x, evaluation: i), timestep: timesteps[i], call: i, c)
            x = sampler.step(eps: eps, evaluation: i, sample: x) { rng.randn(latentShape) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            observer?.didEvaluate(EvaluationRecord(
                index: i, timestep: timesteps[i], sigma: sampler.sigma(evaluation: i), latent: x,
                predictedOriginal: sampler.predictedOriginal, eps: eps, epsConditional: pieces?[1],
                epsUnconditional: pieces?[0], seconds: seconds))
        }
        return x
    }

    /// The UNet's weights given back, the last latent decoded.
    func finish(_ x: Tensor, prompt: PromptChunker.Result, negative: PromptChunker.Result?) throws -> Output {
        if releasesWeightsBetweenPhases {
            model.releaseResidentWeights(.unet)
            releaseCachedMemory()
        }
        let image = try model.vae.decodeUNetLatent(x)  // [1, 3, H, W]
        return Output(image: image, latent: x, prompt: prompt, negativePrompt: negative)
    }

    /// The run of a prompt that edits, alternates or composes: the same loop with the context of
    /// each call picked from the schedule (`ScheduledConditioning`).
    func generateScheduled(_ s: GenerationSettings, conditioning c: inout ScheduledConditioning, encoder: PromptEncoder,
                           guided: Bool, observer: GenerationObserver?, shouldStop: () -> Bool) throws -> Output {
        guard s.separation == nil else {
            throw PipelineError(description: "--separate: not with prompt editing, alternation or AND (give the subjects' prompt plainly)")
        }
        guard guided || c.parts.count == 1 else {
            throw PipelineError(description: "--guidance \(s.guidance): AND composes prompts through guidance; give a scale above 1")
        }
        try c.encode(with: encoder, negative: guided)
        let empty = try encoder.encode(chunks: [PromptChunker.emptyChunk])  // [1, 77, D]
        if releasesWeightsBetweenPhases { model.releaseResidentWeights(.textEncoder) }
        let count = s.samplerChoice.evaluations(steps: s.steps)
        // The trace's token rows: the first part's text at the last call (what the image ends on).
        let last = c.texts(at: count - 1)
        let condInfo = c.info(last.prompts[0])!
        let negInfo = guided ? c.info(last.negative) : nil
        observer?.didEncodePrompt(condInfo, negative: negInfo, tokenizer: model.tokenizer)
        let scheduled = c
        let calls = CallConditioning(batch: c.parts.count + (guided ? 1 : 0),
                                     context: { try scheduled.context(at: $0, guided: guided, empty: empty) },
                                     guide: { guided ? scheduled.guide($0, scale: s.guidance) : $0 })
        let x = try s.a1111.map { try generateA1111(s, $0, conditioning: calls, regional: nil, observer: observer, shouldStop: shouldStop) }
            ?? diffusersLoop(s, conditioning: calls, regional: nil, observer: observer, shouldStop: shouldStop)
        return try finish(x, prompt: condInfo, negative: negInfo)
    }

    /// The remedy's conditioning: each subject's rows of the base context replaced by the same
    /// tokens encoded in its own prompt (the other subjects removed), and — from the `cross` stage
    /// on — the attention bounds with those prompts as regional contexts.
    static func separate(_ sep: Separation, prompt: String, cond: Tensor, info: PromptChunker.Result,
                         encoder: PromptEncoder, tokenizer: CLIPTokenizer,
                         conditionalBatch: Int) throws -> (Tensor, RegionalAttention?) {
        let spliced = cond.copy()  // [1, T, D]
        let width = cond.shape[2]
        let baseRows = info.rows(tokenizer: tokenizer)
        var regions: [RegionalAttention.Region] = []
        for (i, subject) in sep.subjects.enumerated() {
            let at = Separation.positions(of: subject, in: baseRows)
            guard !at.isEmpty else {
                throw PipelineError(description: "--separate \(subject): not a word or embedding trigger of the prompt \"\(prompt)\"")
            }
            let (own, ownInfo) = try encoder.encode(sep.ownPrompt(prompt, subject: i))  // [1, 77·m, D]
            let from = Separation.positions(of: subject, in: ownInfo.rows(tokenizer: tokenizer))
            guard from.count == at.count else {
                throw PipelineError(description: "--separate \(subject): its tokens differ once the other subjects are removed from the prompt")
            }
            for (dst, src) in zip(at, from) {
                (spliced.pointer + dst * width).update(from: own.pointer + src * width, count: width)
            }
            regions.append(.init(box: sep.boxes[i], context: sep.stage >= .cross ? own : nil, tokens: at))
        }
        guard sep.stage >= .cross else { return (spliced, nil) }
        return (spliced, RegionalAttention(regions: regions, baseBlend: sep.baseBlend, conditionalBatch: conditionalBatch,
                                           boundsCrossAttention: true, boundsSelfAttention: sep.stage == .full))
    }

    /// ε = ε_u + g·(ε_c − ε_u) from the [2, …] batch (unconditional first).
    static func guide(_ out: Tensor, scale g: Float) throws -> Tensor {
        let n = out.count / 2
        let eps = Tensor(uninitializedShape: [1] + Array(out.shape.dropFirst()))
        for i in 0..<n {
            let u = out.pointer[i], c = out.pointer[n + i]
            eps.pointer[i] = u + g * (c - u)
        }
        return eps
    }
}
