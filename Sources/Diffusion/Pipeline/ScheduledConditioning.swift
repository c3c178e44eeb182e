import Foundation
import Models
import Tensors

extension GenerationSettings {
    /// Where a run's conditioning text changes, when its prompt edits, alternates or composes
    /// (nil for a plain prompt): from each such call on, each part's text and weight and the
    /// negative prompt's text.
    public func conditioningChanges(evaluations: Int) -> [(from: Int, prompts: [String], weights: [Float], negative: String)]? {
        let c = ScheduledConditioning(settings: self)
        guard !c.isPlain else { return nil }
        var out: [(from: Int, prompts: [String], weights: [Float], negative: String)] = []
        for k in 0..<evaluations {
            let t = c.texts(at: k)
            if let last = out.last, last.prompts == t.prompts, last.negative == t.negative { continue }
            out.append((k, t.prompts, c.parts.map(\.weight), t.negative))
        }
        return out
    }
}

/// The conditioning of each model call when a prompt edits (`[from:to:when]`), alternates
/// (`[a|b]`) or composes (`AND`), as A1111 builds it: every distinct text encoded once, and at
/// call k each part's text (and the negative prompt's) picked by `PromptSchedule.text(at:)`.
struct ScheduledConditioning {
    let parts: [(schedule: PromptSchedule, weight: Float)]
    let negative: PromptSchedule
    private var encoded: [String: (Tensor, PromptChunker.Result)] = [:]

    /// A prompt without editing, alternation or AND: the pipeline's plain path applies.
    var isPlain: Bool { parts.count == 1 && parts[0].weight == 1 && parts[0].schedule.entries.count == 1 && negative.entries.count == 1 }

    init(settings s: GenerationSettings) {
        parts = ComposedPrompt(s.prompt).parts.map { (PromptSchedule($0.text, steps: s.steps), $0.weight) }
        negative = PromptSchedule(s.negativePrompt, steps: s.steps)
    }

    /// Encodes every text any call will use.
    mutating func encode(with encoder: PromptEncoder, negative guided: Bool) throws {
        let texts = parts.flatMap { $0.schedule.texts } + (guided ? negative.texts : [])
        for t in texts where encoded[t] == nil { encoded[t] = try encoder.encode(t) }  // [1, 77·n, D]
    }

    /// The texts of call `k`: each part's, then the negative prompt's.
    func texts(at k: Int) -> (prompts: [String], negative: String) {
        (parts.map { $0.schedule.text(at: k) }, negative.text(at: k))
    }

    func info(_ text: String) -> PromptChunker.Result? { encoded[text]?.1 }

    /// The UNet's context for call `k`: [unconditional, part 1, …, part K] when guided (each part
    /// lengthened to the longest by repeating its last row, as A1111's `stack_conds`; then the
    /// shorter of that and the unconditional padded with encoded empty chunks), else the parts.
    func context(at k: Int, guided: Bool, empty: Tensor) throws -> Tensor {  // [1+K, T, D] or [K, T, D]
        let (prompts, neg) = texts(at: k)
        var conds = prompts.map { encoded[$0]!.0 }  // K × [1, T_i, D]
        let longest = conds.map { $0.shape[1] }.max() ?? 77
        conds = try conds.map { c in
            guard c.shape[1] < longest else { return c }
            let width = c.shape[2]
            let last = Tensor(uninitializedShape: [1, longest - c.shape[1], width])  // [1, T − T_i, D]
            for r in 0..<last.shape[1] { (last.pointer + r * width).update(from: c.pointer + (c.shape[1] - 1) * width, count: width) }
            return try concat([c, last], axis: 1)  // [1, T, D]
        }
        guard guided else { return try concat(conds, axis: 0) }  // [K, T, D]
        var uncond = encoded[neg]!.0  // [1, T_u, D]
        while uncond.shape[1] < longest { uncond = try concat([uncond, empty], axis: 1) }  // [1, T_u + 77, D]
        while conds[0].shape[1] < uncond.shape[1] { conds = try conds.map { try concat([$0, empty], axis: 1) } }  // K × [1, T + 77, D]
        return try concat([uncond] + conds, axis: 0)  // [1+K, T, D]
    }

    /// ε = ε_u + Σ_k w_k · g · (ε_k − ε_u) from the [1+K, …] batch (composable diffusion, A1111's
    /// `combine_denoised`; the same in ε as in x̂₀, which is affine in ε).
    func guide(_ out: Tensor, scale g: Float) -> Tensor {  // [1+K, 4, h, w] → [1, 4, h, w]
        let n = out.count / (parts.count + 1)
        let eps = Tensor(uninitializedShape: [1] + Array(out.shape.dropFirst()))  // [1, 4, h, w]
        for i in 0..<n {
            let u = out.pointer[i]
            var e = u
            for (k, part) in parts.enumerated() { e += part.weight * g * (out.pointer[(k + 1) * n + i] - u) }
            eps.pointer[i] = e
        }
        return eps
    }
}
