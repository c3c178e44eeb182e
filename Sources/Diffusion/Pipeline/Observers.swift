import Models
import Tensors

/// Forwards every event to several observers, in order.
public final class Observers: GenerationObserver {
    let members: [GenerationObserver]
    public init(_ members: [GenerationObserver]) { self.members = members }

    public func didStart(settings: GenerationSettings, evaluations: Int, timesteps: [Float], sigmas: [Float], initialLatent: Tensor) {
        for m in members { m.didStart(settings: settings, evaluations: evaluations, timesteps: timesteps, sigmas: sigmas, initialLatent: initialLatent) }
    }

    public func didEncodePrompt(_ prompt: PromptChunker.Result, negative: PromptChunker.Result?, tokenizer: CLIPTokenizer) {
        for m in members { m.didEncodePrompt(prompt, negative: negative, tokenizer: tokenizer) }
    }

    public func willEvaluate(index: Int) {
        for m in members { m.willEvaluate(index: index) }
    }

    public func didEvaluate(_ record: EvaluationRecord) {
        for m in members { m.didEvaluate(record) }
    }
}

/// The engine's version, stamped into traces and infotext.
public enum Version {
    public static let engine = "0.1.0"
}
