import CKernels
import Foundation

/// Which (query, key) pairs attention may not join, from one small label per query and per key
/// (0 = unlabelled): the masks of bounded regional attention, built on the fly rather than stored
/// as an Nq × Nk matrix (4096² at 512 px).
public struct AttentionLabelMask: Sendable, Equatable {
    public enum Rule: Sendable, Equatable {
        /// Self-attention between regions: a labelled query may not see a key with another label
        /// (unlabelled queries and keys are free).
        case regionsApart
        /// Cross-attention to subject tokens: a labelled key is seen only by queries with its
        /// label (background queries see no subject token).
        case keysInOwnRegion
    }
    public let queryLabels: [UInt8]
    public let keyLabels: [UInt8]
    public let rule: Rule

    public init(queryLabels: [UInt8], keyLabels: [UInt8], rule: Rule) {
        self.queryLabels = queryLabels
        self.keyLabels = keyLabels
        self.rule = rule
    }

    /// For each query label, the blocked keys as runs (start, count): a mask row is a few memsets,
    /// not a test per key (halves at 64² block 64 runs of 32 keys per query).
    func blockedRuns() -> [UInt8: [(Int, Int)]] {
        var out: [UInt8: [(Int, Int)]] = [:]
        for q in Set(queryLabels) {
            var runs: [(Int, Int)] = []
            var j = 0
            while j < keyLabels.count {
                guard blocked(query: q, key: keyLabels[j]) else { j += 1; continue }
                let start = j
                while j < keyLabels.count, blocked(query: q, key: keyLabels[j]) { j += 1 }
                runs.append((start, j - start))
            }
            out[q] = runs
        }
        return out
    }

    @inline(__always)
    func blocked(query q: UInt8, key k: UInt8) -> Bool {
        switch rule {
        case .regionsApart: return q != 0 && k != 0 && q != k
        case .keysInOwnRegion: return k != 0 && k != q
        }
    }
}

/// `attention` with blocked pairs: their scaled logits are −∞ before the softmax (as Bounded
/// Attention's additive `finfo.min` mask, which underflows to the same zero). Same head layout as
/// `attention`: q [B, Nq, H·D], k and v [B, Nk, H·D] → [B, Nq, H·D]; the mask applies to every
/// batch item and head. A query row whose keys are all blocked would have no softmax: refused.
///
/// `probabilities`, when given, sees each slice's softmax of the **unmasked** logits when
/// `probeUnmasked` (a probe that the mask does not dictate), else of the masked ones.
/// Runs sgemm → mask → softmax → sgemm per (batch, head, slice), items spread over the cores.
public func maskedAttention(
    q: Tensor, k: Tensor, v: Tensor, heads: Int, mask: AttentionLabelMask, scale: Float? = nil,
    probabilities: AttentionProbabilities? = nil, probeUnmasked: Bool = false
) throws -> Tensor {
    let (B, Nq, HD, Nk, D) = try attentionShapes(q: q, k: k, v: v, heads: heads)
    guard mask.queryLabels.count == Nq, mask.keyLabels.count == Nk else {
        throw TensorError("masked attention: \(mask.queryLabels.count) query and \(mask.keyLabels.count) key labels for \(Nq) queries and \(Nk) keys")
    }
    // Every query must keep at least one key.
    let keySet = Set(mask.keyLabels)
    for label in Set(mask.queryLabels) where keySet.allSatisfy({ mask.blocked(query: label, key: $0) }) {
        throw TensorError("masked attention: queries labelled \(label) would see no key")
    }
    let alpha = scale ?? 1 / Float(D).squareRoot()
    let y = Tensor(uninitializedShape: [B, Nq, HD])  // [B, Nq, H·D]
    if y.count == 0 || Nk == 0 { y.pointer.update(repeating: 0, count: y.count); return y }

    let slices = AttentionSlices(q: q, k: k, v: v, y: y, heads: heads, rowsPerSlice: min(Nq, max(16, (1 << 20) / (4 * Nk))), alpha: alpha)
    let callbackLock = NSLock()
    let probe = probabilities != nil && probeUnmasked
    let runs = mask.blockedRuns()
    let rowsPerSlice = slices.rowsPerSlice
    mask.queryLabels.withUnsafeBufferPointer { ql in
        Parallel.forRanges(slices.count) { range in
            Scratch.withBuffer(rowsPerSlice * Nk * (probe ? 2 : 1)) { scores in
                let copy = scores + rowsPerSlice * Nk
                for item in range {
                    let s = slices.slice(item)
                    slices.scores(s, into: scores)
                    if probe, let probabilities {
                        copy.update(from: scores, count: s.rows * Nk)
                        pd_softmax_rows(copy, Int32(Nk), Nk, 0, s.rows, 0, s.r0)
                        callbackLock.lock()
                        probabilities(s.b, s.h, s.r0, s.rows, copy)
                        callbackLock.unlock()
                    }
                    for r in 0..<s.rows {
                        let row = scores + r * Nk
                        for (start, count) in runs[ql[s.r0 + r]] ?? [] { (row + start).update(repeating: -.infinity, count: count) }
                    }
                    pd_softmax_rows(scores, Int32(Nk), Nk, 0, s.rows, 0, s.r0)
                    if !probe, let probabilities {
                        callbackLock.lock()
                        probabilities(s.b, s.h, s.r0, s.rows, scores)
                        callbackLock.unlock()
                    }
                    slices.output(s, from: scores)
                }
            }
        }
    }
    return y
}
