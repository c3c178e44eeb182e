import Diffusion
import Foundation
import Models
import Tensors

/// Where input vectors sit among the text encoder's vocabulary: their norms against the
/// vocabulary's, their nearest tokens by cosine, and their cosines with each other. The first
/// look at why two textual-inversion tokens merge: vectors that sit close, or near one word.
public struct VocabularyNeighbours {
    /// The token-embedding table, each row scaled to unit length: [V, D].
    let unitRows: Tensor
    /// Every row's norm, ascending (for percentiles).
    let sortedNorms: [Float]
    let tokenizer: CLIPTokenizer
    public var vocabularySize: Int { unitRows.shape[0] }
    public var width: Int { unitRows.shape[1] }

    public init(textEncoder: CLIPTextModel, tokenizer: CLIPTokenizer) throws {
        let table = try textEncoder.tokenEmbeddingTable()  // [V, D]
        let (v, d) = (table.shape[0], table.shape[1])
        let unit = Tensor(uninitializedShape: [v, d])  // [V, D]
        var norms = [Float](repeating: 0, count: v)
        norms.withUnsafeMutableBufferPointer { normsOut in
            Parallel.forRanges(v, grain: 1024) { rows in
                for r in rows {
                    let src = table.pointer + r * d, dst = unit.pointer + r * d
                    var s: Double = 0
                    for c in 0..<d { s += Double(src[c]) * Double(src[c]) }
                    let n = Float(s.squareRoot())
                    normsOut[r] = n
                    let inv = n > 0 ? 1 / n : 0
                    for c in 0..<d { dst[c] = src[c] * inv }
                }
            }
        }
        unitRows = unit
        sortedNorms = norms.sorted()
        self.tokenizer = tokenizer
    }

    public struct Neighbour: Sendable, Equatable {
        public let id: Int32
        /// The token's text (`</w>`, the end-of-word mark, shown as a trailing space dropped).
        public let text: String
        public let cosine: Float
    }

    /// The `k` vocabulary tokens of highest cosine with each vector (best first), by one GEMM of
    /// the unit vectors against the unit table. Vectors must have the table's width.
    public func nearest(_ vectors: [[Float]], top k: Int) throws -> [[Neighbour]] {
        let (n, d, v) = (vectors.count, width, vocabularySize)
        guard vectors.allSatisfy({ $0.count == d }) else {
            throw TensorError("nearest tokens: vectors must be \(d) wide (this text encoder's width)")
        }
        guard n > 0 else { return [] }
        let q = Tensor(uninitializedShape: [n, d])  // [n, D], unit rows
        for (i, x) in vectors.enumerated() {
            let norm = Float(x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())
            for c in 0..<d { q.pointer[i * d + c] = norm > 0 ? x[c] / norm : 0 }
        }
        let cos = try linear(q, weight: unitRows)  // [n, V] = q · tableᵀ
        let kk = max(0, min(k, v))
        return (0..<n).map { i in
            let row = UnsafeBufferPointer(start: cos.pointer + i * v, count: v)
            // Partial selection: keep the best kk in a small sorted list (kk ≪ V).
            var best: [(Float, Int)] = []
            best.reserveCapacity(kk + 1)
            for (j, c) in row.enumerated() where best.count < kk || c > best[best.count - 1].0 {
                let at = best.firstIndex { $0.0 < c } ?? best.count
                best.insert((c, j), at: at)
                if best.count > kk { best.removeLast() }
            }
            return best.map { Neighbour(id: Int32($0.1), text: tokenizer.decode(Int32($0.1)).text, cosine: $0.0) }
        }
    }

    /// The fraction of vocabulary rows whose norm is below `norm` (0…1).
    public func normPercentile(_ norm: Float) -> Double {
        var lo = 0, hi = sortedNorms.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if sortedNorms[mid] < norm { lo = mid + 1 } else { hi = mid }
        }
        return sortedNorms.isEmpty ? 0 : Double(lo) / Double(sortedNorms.count)
    }

    /// The token-embedding rows of a word as CLIP splits it (one vector per sub-token).
    public func vectors(ofWord word: String, textEncoder: CLIPTextModel) throws -> [(token: String, id: Int32, vector: [Float])] {
        let table = try textEncoder.tokenEmbeddingTable()
        return tokenizer.tokenize(word).map { t in
            (t.text, t.id, Array(UnsafeBufferPointer(start: table.pointer + Int(t.id) * width, count: width)))
        }
    }
}

/// Euclidean norm of a vector (double sums).
public func vectorNorm(_ x: [Float]) -> Float { Float(x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) }

/// Cosine similarity of every pair (double sums; 0 for a zero vector).
public func cosineMatrix(_ vectors: [[Float]]) -> [[Float]] {
    let norms = vectors.map(vectorNorm)
    return vectors.indices.map { i in
        vectors.indices.map { j in
            let dot = zip(vectors[i], vectors[j]).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let n = Double(norms[i]) * Double(norms[j])
            return n > 0 ? Float(dot / n) : 0
        }
    }
}

/// The mean of an embedding's vectors (its single-vector summary).
public func meanVector(_ vectors: [[Float]]) -> [Float] {
    guard let first = vectors.first else { return [] }
    var sum = [Double](repeating: 0, count: first.count)
    for v in vectors { for (c, x) in v.enumerated() { sum[c] += Double(x) } }
    return sum.map { Float($0 / Double(vectors.count)) }
}
