import Foundation
import Testing
import TestSupport
@testable import Tensors

extension KernelTests {
    @Suite struct Attention {
        let f = KernelFixtures.kernels

        func load(_ name: String) throws -> (q: Tensor, k: Tensor, v: Tensor, y: Tensor, heads: Int) {
            let heads = try #require(f.parameters(name)["heads"] as? Int)
            return (try f.tensor("\(name).q"), try f.tensor("\(name).k"), try f.tensor("\(name).v"), try f.tensor("\(name).y"), heads)
        }

        /// Naive float64 attention, diffusers head layout, top-left causal mask.
        func reference(_ q: Tensor, _ k: Tensor, _ v: Tensor, heads: Int, causal: Bool, scale: Double? = nil) -> Tensor {
            let (B, Nq, HD, Nk) = (q.shape[0], q.shape[1], q.shape[2], k.shape[1])
            let D = HD / heads, s = scale ?? 1 / Double(D).squareRoot()
            let y = Tensor(zeros: q.shape)
            for b in 0..<B { for h in 0..<heads { for i in 0..<Nq {
                let keys = causal ? min(Nk, i + 1) : Nk
                var logits = [Double](repeating: 0, count: keys)
                for j in 0..<keys {
                    var dot = 0.0
                    for d in 0..<D { dot += Double(q.pointer[(b * Nq + i) * HD + h * D + d]) * Double(k.pointer[(b * Nk + j) * HD + h * D + d]) }
                    logits[j] = dot * s
                }
                let m = logits.max() ?? 0
                let e = logits.map { exp($0 - m) }, sum = e.reduce(0, +)
                for d in 0..<D {
                    var acc = 0.0
                    for j in 0..<keys { acc += e[j] / sum * Double(v.pointer[(b * Nk + j) * HD + h * D + d]) }
                    y.pointer[(b * Nq + i) * HD + h * D + d] = Float(acc)
                }
            } } }
            return y
        }

        @Test(arguments: ["attention", "attention_long"])
        func matchesFixture(_ name: String) throws {
            let c = try load(name)
            try forEachISA { isa in
                expectClose(try attention(q: c.q, k: c.k, v: c.v, heads: c.heads), c.y, "\(name) [\(isa)]")
            }
        }

        /// The sgemm-based schedules (kept for comparison benchmarks) must agree too.
        @Test func sgemmSchedulesMatchFixtures() throws {
            for schedule in [AttentionSchedule.sgemmAcrossCores] {
                try KernelTuning.with({ $0.attention.schedule = schedule }) {
                    for (name, causal) in [("attention", false), ("attention_long", false), ("attention_causal", true)] {
                        let c = try load(name)
                        expectClose(try attention(q: c.q, k: c.k, v: c.v, heads: c.heads, causal: causal, sliceRows: 5), c.y, "\(name) via \(schedule)")
                    }
                }
            }
        }

        @Test func causalMatchesFixture() throws {
            let c = try load("attention_causal")
            try forEachISA { isa in
                expectClose(try attention(q: c.q, k: c.k, v: c.v, heads: c.heads, causal: true), c.y, "attention_causal [\(isa)]")
            }
        }

        /// Query slicing only bounds memory: tiny and uneven slices give identical results.
        @Test func slicesDoNotChangeResults() throws {
            for (name, causal) in [("attention_long", false), ("attention_causal", true), ("attention", false)] {
                let c = try load(name)
                let whole = try attention(q: c.q, k: c.k, v: c.v, heads: c.heads, causal: causal, sliceRows: c.q.shape[1])
                for rows in [1, 7, 64] {
                    let sliced = try attention(q: c.q, k: c.k, v: c.v, heads: c.heads, causal: causal, sliceRows: rows)
                    expectClose(sliced, whole, relTol: 0, "\(name) with sliceRows \(rows)")
                }
            }
        }

        /// The callback sees every (batch, head, row) once, in slices of at most sliceRows rows,
        /// as probabilities (rows sum to 1) equal to the fixture's.
        @Test func probabilitiesCallback() throws {
            let c = try load("attention")
            let (B, Nq, Nk, H) = (c.q.shape[0], c.q.shape[1], c.k.shape[1], c.heads)
            let expected = try f.tensor("attention.probs")
            #expect(expected.shape == [B, H, Nq, Nk])
            for sliceRows in [nil, 5] as [Int?] {
                let seen = Tensor(zeros: [B, H, Nq, Nk])
                var visits = [Int](repeating: 0, count: B * H * Nq)
                var worstSum: Float = 0
                let y = try attention(q: c.q, k: c.k, v: c.v, heads: H, sliceRows: sliceRows) { b, h, r0, rows, probs in
                    if let sliceRows { #expect(rows <= sliceRows) }
                    for r in 0..<rows {
                        visits[(b * H + h) * Nq + r0 + r] += 1
                        var sum: Float = 0
                        for j in 0..<Nk {
                            seen.pointer[((b * H + h) * Nq + r0 + r) * Nk + j] = probs[r * Nk + j]
                            sum += probs[r * Nk + j]
                        }
                        worstSum = max(worstSum, abs(sum - 1))
                    }
                }
                #expect(visits.allSatisfy { $0 == 1 }, "every row reported exactly once")
                #expect(worstSum < 1e-5, "probability rows sum to 1 (worst |sum − 1| = \(worstSum))")
                expectClose(seen, expected, "attention.probs via callback, sliceRows \(String(describing: sliceRows))")
                expectClose(y, c.y, "attention with callback")
            }
        }

        @Test func causalWithMoreKeysAndCustomScale() throws {
            let q = randomTensor([2, 9, 12], seed: 1), k = randomTensor([2, 14, 12], seed: 2), v = randomTensor([2, 14, 12], seed: 3)
            for causal in [false, true] {
                for rows in [nil, 2] as [Int?] {
                    let y = try attention(q: q, k: k, v: v, heads: 3, causal: causal, scale: 0.7, sliceRows: rows)
                    expectClose(y, reference(q, k, v, heads: 3, causal: causal, scale: 0.7), "causal \(causal) Nq < Nk, scale 0.7, slice \(String(describing: rows))")
                }
            }
        }

        /// The kernel walks keys in chunks of 384 (QK and PV alike); 1000 keys are two whole chunks
        /// and a partial one, with D = 40 (SD 1.5's head) and a causal mask whose diagonal crosses
        /// chunk boundaries. Against float64 at every ISA, and slicing still changes nothing.
        @Test func keysOverSeveralChunks() throws {
            let q = randomTensor([1, 1000, 80], seed: 4), k = randomTensor([1, 1000, 80], seed: 5), v = randomTensor([1, 1000, 80], seed: 6)
            for causal in [false, true] {
                let want = reference(q, k, v, heads: 2, causal: causal)
                try forEachISA { isa in
                    let whole = try attention(q: q, k: k, v: v, heads: 2, causal: causal)
                    expectClose(whole, want, "1000 keys, causal \(causal) [\(isa)]")
                    let sliced = try attention(q: q, k: k, v: v, heads: 2, causal: causal, sliceRows: 7)
                    expectClose(sliced, whole, relTol: 0, "1000 keys, causal \(causal), sliceRows 7 [\(isa)]")
                }
            }
        }

        @Test func rejectsBadShapes() throws {
            let q = randomTensor([1, 4, 8], seed: 1), k = randomTensor([1, 5, 8], seed: 2)
            #expect(throws: TensorError.self) { try attention(q: q, k: k, v: k, heads: 3) }
            #expect(throws: TensorError.self) { try attention(q: q, k: k, v: randomTensor([1, 6, 8], seed: 3), heads: 2) }
            #expect(throws: TensorError.self) { try attention(q: q, k: randomTensor([2, 5, 8], seed: 2), v: randomTensor([2, 5, 8], seed: 2), heads: 2) }
            #expect(throws: TensorError.self) { try attention(q: q, k: k, v: k, heads: 2, sliceRows: 0) }
        }
    }
}
