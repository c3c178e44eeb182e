import Foundation
import Testing
import TestSupport
@testable import Diffusion

/// The SDE samplers' noise, piece by piece, against Tools/reference/make_brownian_fixtures.py:
/// numpy's SeedSequence and torchsde's Brownian tree with A1111's per-node generators.
@Suite("Brownian tree noise")
struct BrownianTreeTests {
    static let golden: [String: Any] = {
        guard let data = FileManager.default.contents(atPath: Fixtures.path("brownian.json")),
              let d = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        return d
    }()

    /// A decimal integer of any size as little-endian uint32 words (numpy's coercion; 0 is [0]).
    static func words(_ decimal: String) -> [UInt32] {
        var digits = decimal.compactMap { $0.wholeNumberValue }
        var out: [UInt32] = []
        while !(digits.isEmpty || digits.allSatisfy { $0 == 0 }) {
            // Divide by 2³² in base 10, long hand; the remainder is the next word.
            var rem: UInt64 = 0, next: [Int] = []
            for d in digits {
                let cur = rem * 10 + UInt64(d)
                let q = cur / (1 << 32)
                rem = cur % (1 << 32)
                if !next.isEmpty || q != 0 { next.append(Int(q)) }
            }
            out.append(UInt32(rem))
            digits = next
        }
        return out.isEmpty ? [0] : out
    }

    @Test("numpy SeedSequence.generate_state: entropy and spawn keys of any size, pool sizes 4, 8, 24")
    func seedSequence() throws {
        let cases = try #require(Self.golden["seed_sequences"] as? [[String: Any]])
        #expect(cases.count > 300)
        for c in cases {
            let entropy = Self.words(c["entropy"] as! String)
            let key = (c["spawn_key"] as! [String]).map(Self.words)
            let pool = c["pool_size"] as! Int, n = c["n"] as! Int
            let want = (c["state"] as! [NSNumber]).map { $0.uint32Value }
            let got = SeedSequence(entropy: entropy, spawnKey: key, poolSize: pool).generateState(n)
            #expect(got == want, "entropy \(c["entropy"]!) key \(c["spawn_key"]!) pool \(pool)")
        }
        #expect(SeedSequence.words(of: 0) == [0] && SeedSequence.words(of: 1 << 32 | 5) == [5, 1])
        #expect(BrownianTree.child([0xffff_ffff], 1) == [0xffff_ffff, 1] && BrownianTree.child([0], 0) == [0])
    }

    @Test("torchsde's increments (bit for bit with CPU node noise) and k-diffusion's noise sampler")
    func trees() throws {
        let cases = try #require(Self.golden["trees"] as? [[String: Any]])
        #expect(cases.count == 8)
        for c in cases {
            let rng = try #require(RNGKind(rawValue: c["rng"] as! String))
            let seed = try #require(UInt64(c["seed"] as! String))
            let shape = c["shape"] as! [Int]
            let (t0, t1) = ((c["t0"] as! NSNumber).floatValue, (c["t1"] as! NSNumber).floatValue)
            let queries = (c["queries"] as! [[NSNumber]]).map { ($0[0].floatValue, $0[1].floatValue) }
            let increments = (c["increments"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
            let noise = (c["noise"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
            // One tree queried in the oracle's order; its answers do not depend on the order.
            let tree = BrownianTree(t0: Double(t0), t1: Double(t1), seed: seed, rng: rng, shape: shape)
            for ((a, b), want) in zip(queries, increments) {
                let got = try tree.increment(min(a, b), max(a, b))
                if rng == .cpu {
                    #expect(got == want, "\(rng) seed \(seed) W(\(a), \(b)): worst \(zip(got, want).map { abs($0 - $1) }.max() ?? 0)")
                } else {
                    // The oracle's philox is A1111's numpy port (Box–Muller in float64), the engine's torch's
                    // CUDA kernel (float32): a draw apart by an ulp, some ulps after ~20 levels of the tree.
                    let err = zip(got, want).map { abs($0 - $1) }.max()! / max(want.map(abs).max()!, 1e-30)
                    #expect(err <= 1e-6, "\(rng) seed \(seed) W(\(a), \(b)): relative \(err)")
                }
            }
            let sampler = BrownianTreeNoiseSampler(sigmas: [t1, t0, 0], seed: seed, rng: rng, shape: [1] + shape)
            for ((a, b), want) in zip(queries.filter { $0.0 != $0.1 }, noise) {
                let draw = try sampler(a, b)
                let got = Array(UnsafeBufferPointer(start: draw.pointer, count: draw.count))
                // torch's CPU sqrt of the 0-d |σ' − σ| is MKL's, at times an ulp off the correctly rounded one
                // the engine (and CUDA) take: each value within an ulp or two, more for philox's W (above).
                let bound: Float = rng == .cpu ? 2.5e-7 : 1e-6
                let err = zip(got, want).map { abs($0 - $1) }.max()! / max(want.map(abs).max()!, 1e-30)
                #expect(err <= bound, "\(rng) seed \(seed) noise(\(a), \(b)): relative \(err)")
            }
        }
    }

    @Test("round(x, 6) as Python rounds floats")
    func rounding() {
        #expect(BrownianTree.round6(14.614643096923828) == 14.614643)
        #expect(BrownianTree.round6(0.0078125) == 0.007812)  // an exact tie: to even
        #expect(BrownianTree.round6(0.0234375) == 0.023438)
        #expect(BrownianTree.round6(2.5000004768371582) == 2.5)
    }
}
