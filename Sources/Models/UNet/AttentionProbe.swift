import Tensors

/// Instrumentation of the UNet's attention layers. Sites are named as diffusers names the
/// modules (`down_blocks.1.attentions.0.transformer_blocks.0.attn2`); an observer says which it
/// wants before anything is copied, so with no observer — or none interested — attention runs
/// exactly as uninstrumented.
public protocol AttentionObserver: AnyObject {
    /// Asked once per layer call; `crossAttention` is true for `attn2` (queries: latent pixels,
    /// keys: text tokens).
    func wantsAttention(site: String, crossAttention: Bool) -> Bool

    /// Post-softmax probabilities of `rows` queries starting at `rowStart` for one (batch item,
    /// head), row-major [rows, keys]; queries are the pixels of a `height × width` map. Valid only
    /// during the call; calls for one layer are serialised but may come in any order.
    func attention(site: String, batch: Int, head: Int, heads: Int, rowStart: Int, rows: Int, keys: Int,
                   probabilities: UnsafePointer<Float>, height: Int, width: Int)

    /// The layer at `site` has delivered all its rows for this call.
    func attentionDone(site: String)
}

/// The UNet's instrumentation switchboard, shared by all its attention layers.
public final class ProbeHub: @unchecked Sendable {
    /// Set for the evaluations to record; nil costs nothing.
    public var attention: AttentionObserver?
    /// Set to bound the attention layers (a merge remedy); nil leaves them exactly as they are.
    public var regional: RegionalAttention?
    public init() {}
}
