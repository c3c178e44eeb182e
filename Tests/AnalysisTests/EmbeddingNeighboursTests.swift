import Foundation
import Testing
import TestSupport
@testable import Analysis
import Diffusion
import Models
import Tensors

@Suite("Embedding neighbours")
struct EmbeddingNeighboursTests {
    static let model = try? StableDiffusionModel.load(Fixtures.path("tiny-sd"), vaeEncoder: false, fast: [])

    func setup() throws -> (StableDiffusionModel, VocabularyNeighbours, Tensor) {
        let sd = try #require(Self.model)
        return (sd, try VocabularyNeighbours(textEncoder: sd.textEncoder, tokenizer: sd.tokenizer), try sd.textEncoder.tokenEmbeddingTable())
    }

    /// A vocabulary row plus tiny noise has that token first, at a cosine of almost 1.
    @Test func knownAnswer() throws {
        let (_, table, rows) = try setup()
        let d = table.width
        for id in [2308, 2368, 49406, 320] {
            var v = Array(UnsafeBufferPointer(start: rows.pointer + id * d, count: d))
            for c in v.indices { v[c] += 1e-4 * Float((c * 7919 + id) % 13 - 6) }
            let top = try table.nearest([v], top: 3)[0]
            #expect(top.first?.id == Int32(id) && (top.first?.cosine ?? 0) > 0.9999, "\(id): \(top)")
            #expect(top.map(\.cosine) == top.map(\.cosine).sorted(by: >))
        }
    }

    /// Top-K ids and cosines equal a brute-force double-precision scan of the whole table.
    @Test func matchesBruteForce() throws {
        let (_, table, rows) = try setup()
        let (v, d, k) = (table.vocabularySize, table.width, 10)
        var g = UInt64(12345)
        func next() -> Float { g = g &* 6364136223846793005 &+ 1442695040888963407; return Float(Int64(bitPattern: g >> 11) % 2001 - 1000) / 1000 }
        let queries = (0..<4).map { _ in (0..<d).map { _ in next() } }
        let found = try table.nearest(queries, top: k)
        for (q, x) in queries.enumerated() {
            let xn = x.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            var scored: [(Double, Int)] = []
            for r in 0..<v {
                var dot = 0.0, rn = 0.0
                for c in 0..<d { let w = Double(rows.pointer[r * d + c]); dot += w * Double(x[c]); rn += w * w }
                scored.append((rn > 0 ? dot / (rn.squareRoot() * xn) : 0, r))
            }
            scored.sort { $0.0 > $1.0 }
            #expect(found[q].map { Int($0.id) } == scored.prefix(k).map(\.1), "query \(q)")
            for (a, b) in zip(found[q], scored.prefix(k)) { #expect(abs(Double(a.cosine) - b.0) <= 1e-5) }
        }
    }

    /// Norms, percentiles, top-10 ids and cosines, and the cosine matrix of the three fixture
    /// embeddings (A1111 .pt with 2 vectors, diffusers .bin, kohya .safetensors with 3) against
    /// numpy float64 (Tools/reference/make_embedding_fixtures.py).
    @Test func matchesNumpy() throws {
        let (sd, table, _) = try setup()
        let golden = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: Fixtures.path("embedding_neighbours.json")))) as? [String: Any])
        let entries = try #require(golden["vectors"] as? [[String: Any]])
        let vectors = try ["corajr.pt", "winniecat.bin", "kokocat.safetensors"].flatMap {
            try EmbeddingLoader.load(Fixtures.path("pipeline/\($0)"), tokenizer: sd.tokenizer, width: table.width).vectors
        }
        #expect(vectors.count == entries.count)
        let found = try table.nearest(vectors, top: 10)
        for (i, e) in entries.enumerated() where i < vectors.count {
            let label = e["label"] as? String ?? "?"
            let norm = try #require(e["norm"] as? Double), pctl = try #require(e["norm_percentile"] as? Double)
            #expect(abs(Double(vectorNorm(vectors[i])) - norm) <= 1e-5 * norm, "\(label) norm")
            #expect(abs(table.normPercentile(vectorNorm(vectors[i])) - pctl) <= 2.0 / Double(table.vocabularySize), "\(label) percentile")
            #expect(found[i].map { Int($0.id) } == (e["top_ids"] as? [Int] ?? []), "\(label) top ids")
            for (a, b) in zip(found[i], e["top_cosines"] as? [Double] ?? []) { #expect(abs(Double(a.cosine) - b) <= 1e-5, "\(label) cosine") }
        }
        let m = cosineMatrix(vectors), ref = try #require(golden["cosine"] as? [[Double]])
        for i in ref.indices { for j in ref[i].indices { #expect(abs(Double(m[i][j]) - ref[i][j]) <= 1e-5) } }
    }

    @Test func normsAndCosines() throws {
        let (_, table, _) = try setup()
        #expect(table.normPercentile(0) == 0 && table.normPercentile(.infinity) == 1)
        #expect(table.normPercentile(1) <= table.normPercentile(2))
        let m = cosineMatrix([[1, 0, 0], [1, 1, 0], [0, 0, 0], [-2, 0, 0]])
        #expect(abs(m[0][1] - Float(0.5.squareRoot())) < 1e-6 && m[1][0] == m[0][1])
        #expect(m[0][0] == 1 && m[2][2] == 0 && m[0][3] == -1)
        #expect(meanVector([[1, 2], [3, 4]]) == [2, 3])
    }

    @Test("vectors of the wrong width are refused in one line")
    func wrongWidth() throws {
        let (_, table, _) = try setup()
        #expect(throws: TensorError.self) { try table.nearest([[1, 2, 3]], top: 2) }
    }
}

@Suite("Contextual states")
struct ContextualStatesTests {
    @Test func subjectsInAPrompt() throws {
        let sd = try #require(EmbeddingNeighboursTests.model)
        let cora = try EmbeddingLoader.load(Fixtures.path("pipeline/corajr.pt"), tokenizer: sd.tokenizer, width: sd.textEncoder.config.hiddenSize)
        let states = ContextualStates(textEncoder: sd.textEncoder, tokenizer: sd.tokenizer, embeddings: [cora])
        let prompt = "a photo of corajr and a cat"
        let found = try states.states(of: ["corajr", "cat", "dog"], in: prompt)
        #expect(found[0] != nil && found[1] != nil && found[2] == nil)
        // The trigger's state is the mean of the conditioning rows its two vectors fill.
        let (z, result) = try PromptEncoder(model: sd.textEncoder, tokenizer: sd.tokenizer, embeddings: [cora]).encode(prompt)
        let fix = try #require(result.chunks[0].fixes.first)
        let d = z.shape[2]
        let expected = (0..<d).map { c in (z.pointer[fix.position * d + c] + z.pointer[(fix.position + 1) * d + c]) / 2 }
        #expect(zip(found[0]!, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        // A class word's state is its state in "a photo of a WORD".
        let cat = try states.classStates(["cat"])[0]!
        #expect(try states.states(of: ["cat"], in: "a photo of a cat")[0]! == cat)
    }
}
