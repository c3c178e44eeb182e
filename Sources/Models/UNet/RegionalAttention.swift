import Foundation
import Tensors

/// Bounded regional attention: keeps two (or more) subjects apart inside the UNet's attention
/// layers, forward only (Bounded Attention's bounded denoising with Regional Prompter's blend; see
/// docs/REMEDY.md for the choices).
///
/// - Cross-attention, conditional batch item only: a subject's tokens in the base context are seen
///   only by the pixels of its region; inside region r the output is
///   (1 − baseBlend) · attention(x; regionContext[r]) + baseBlend · attention(x; base, masked).
/// - Self-attention, every batch item: a pixel of one region does not attend to another region's
///   pixels (background pixels, and background keys, stay free).
///
/// Regions are normalised boxes; at each layer's resolution a pixel belongs to the first region
/// whose box holds its centre. Set on `ProbeHub.regional`; `active` is switched per evaluation.
public final class RegionalAttention: @unchecked Sendable {
    public struct Region: Sendable {
        /// Normalised x0, y0, x1, y1 (0…1, top-left origin).
        public var box: [Float]
        /// This subject's own prompt encoded [1, T_r, D] (nil: no regional context, base only).
        public var context: Tensor?
        /// Positions of the subject's tokens in the base context.
        public var tokens: [Int]

        public init(box: [Float], context: Tensor?, tokens: [Int]) {
            self.box = box
            self.context = context
            self.tokens = tokens
        }
    }

    public let regions: [Region]
    /// The weight of the base context inside a region (Regional Prompter's base ratio).
    public let baseBlend: Float
    /// Which batch item of the UNet's input is the conditional one (1 with guidance, else 0).
    public let conditionalBatch: Int
    /// The channels bounded: cross-attention (tokens and regional contexts), self-attention.
    public let boundsCrossAttention: Bool, boundsSelfAttention: Bool
    /// Off for the evaluations after `--separate-until`.
    public var active = true

    public init(regions: [Region], baseBlend: Float = 0.2, conditionalBatch: Int,
                boundsCrossAttention: Bool = true, boundsSelfAttention: Bool = true) {
        self.regions = regions
        self.baseBlend = baseBlend
        self.conditionalBatch = conditionalBatch
        self.boundsCrossAttention = boundsCrossAttention
        self.boundsSelfAttention = boundsSelfAttention
    }

    private let lock = NSLock()
    private var labelCache: [Int: [UInt8]] = [:]

    /// Region label (1-based; 0 = background) of each pixel of an h × w map, row-major.
    public func labels(height h: Int, width w: Int) -> [UInt8] {
        lock.lock()
        defer { lock.unlock() }
        if let l = labelCache[h << 32 | w] { return l }
        let l = Self.labels(boxes: regions.map(\.box), height: h, width: w)
        labelCache[h << 32 | w] = l
        return l
    }

    /// Nearest sampling of the boxes at pixel centres: pixel (y, x) is in a box when
    /// x0 ≤ (x + ½)/w < x1 and y0 ≤ (y + ½)/h < y1; the first box wins.
    public static func labels(boxes: [[Float]], height h: Int, width w: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: h * w)
        for y in 0..<h {
            let cy = (Float(y) + 0.5) / Float(h)
            for x in 0..<w {
                let cx = (Float(x) + 0.5) / Float(w)
                if let r = boxes.firstIndex(where: { $0[0] <= cx && cx < $0[2] && $0[1] <= cy && cy < $0[3] }) {
                    out[y * w + x] = UInt8(r + 1)
                }
            }
        }
        return out
    }

    /// Label of each base-context key: the region whose subject the token is, else 0.
    func keyLabels(count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        for (r, region) in regions.enumerated() {
            for t in region.tokens where t < count { out[t] = UInt8(r + 1) }
        }
        return out
    }
}
