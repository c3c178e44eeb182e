import Foundation
import Models
import Tensors

/// Collects cross-attention maps of one UNet evaluation, as DAAM aggregates them: for every
/// cross-attention layer, the head-mean of the conditional batch item's post-softmax
/// probabilities, upsampled bilinearly to latent size and summed over layers → [T, h, w]
/// (T text tokens). Per-layer maps can be kept too.
public final class CrossAttentionMaps: AttentionObserver {
    /// Which batch item is the conditional one (1 with classifier-free guidance, else 0).
    public let conditionalBatch: Int
    public let latentHeight: Int, latentWidth: Int
    /// Keep each layer's head-mean map ([T, h_l, w_l]) as well as the sum.
    public let keepLayers: Bool

    private var pending: [String: (buffer: Tensor, height: Int, width: Int)] = [:]
    /// Layer sums and per-layer maps of the evaluation in progress.
    public private(set) var aggregate: Tensor?
    public private(set) var layers: [String: Tensor] = [:]
    private let lock = NSLock()

    public init(conditionalBatch: Int, latentHeight: Int, latentWidth: Int, keepLayers: Bool = false) {
        self.conditionalBatch = conditionalBatch
        self.latentHeight = latentHeight
        self.latentWidth = latentWidth
        self.keepLayers = keepLayers
    }

    public func wantsAttention(site: String, crossAttention: Bool) -> Bool { crossAttention }

    public func attention(site: String, batch: Int, head: Int, heads: Int, rowStart: Int, rows: Int, keys: Int,
                          probabilities p: UnsafePointer<Float>, height: Int, width: Int) {
        guard batch == conditionalBatch else { return }
        lock.lock()
        defer { lock.unlock() }
        let n = height * width
        if pending[site] == nil { pending[site] = (Tensor(zeros: [keys, height, width]), height, width) }  // [T, h, w]
        let buf = pending[site]!.buffer.pointer
        let w = 1 / Float(heads)
        // Transpose [rows, keys] into the token-major map while averaging heads.
        for r in 0..<rows {
            let row = p + r * keys, q = rowStart + r
            for k in 0..<keys { buf[k * n + q] += row[k] * w }
        }
    }

    public func attentionDone(site: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let (buffer, h, w) = pending.removeValue(forKey: site) else { return }
        if keepLayers { layers[site] = buffer }
        let resized = (h == latentHeight && w == latentWidth) ? buffer : (try? resizeBilinear(buffer, height: latentHeight, width: latentWidth))
        guard let resized else { return }
        if let aggregate, aggregate.shape == resized.shape {
            for i in 0..<aggregate.count { aggregate.pointer[i] += resized.pointer[i] }
        } else {
            aggregate = resized.copy()
        }
    }

    /// Hands over this evaluation's maps and starts afresh for the next one.
    public func take() -> (aggregate: Tensor?, layers: [String: Tensor]) {
        lock.lock()
        defer { lock.unlock() }
        let out = (aggregate, layers)
        aggregate = nil
        layers = [:]
        pending = [:]
        return out
    }
}
