/// numpy's `np.random.SeedSequence(entropy, spawn_key=..., pool_size=...)` and its
/// `generate_state(n)` (uint32 words): the seeds torchsde's Brownian tree gives each of its nodes.
///
/// What numpy does (numpy/random/bit_generator.pyx, checked against numpy 2.4 on
/// Tests/Fixtures/brownian.json): the entropy and every spawn-key element are little-endian uint32
/// words (0 is one word `[0]`); with a spawn key, the entropy is zero-padded to the pool size first (so
/// spawned keys cannot collide with a longer entropy); the words are hashed into the pool, every pool
/// word mixed into every other, remaining words mixed into each pool word; the state is the pool,
/// cycled and hashed again. All arithmetic is uint32 with wrap-around.
public struct SeedSequence: Sendable {
    public let pool: [UInt32]

    static let initA: UInt32 = 0x43b0_d7e5, multA: UInt32 = 0x931e_8875
    static let initB: UInt32 = 0x8b51_f9dd, multB: UInt32 = 0x58f3_8ded
    static let mixMultL: UInt32 = 0xca01_f9dd, mixMultR: UInt32 = 0x4973_f715

    /// `entropy` and each spawn-key element as little-endian words (`words(of:)`).
    public init(entropy: [UInt32], spawnKey: [[UInt32]] = [], poolSize: Int = 4) {
        var run = entropy
        let spawn = spawnKey.flatMap { $0 }
        if !spawn.isEmpty && run.count < poolSize { run += [UInt32](repeating: 0, count: poolSize - run.count) }
        let words = run + spawn
        var hashConst = Self.initA
        func hashmix(_ value: UInt32) -> UInt32 {
            var v = value ^ hashConst
            hashConst &*= Self.multA
            v &*= hashConst
            return v ^ (v >> 16)
        }
        func mix(_ x: UInt32, _ y: UInt32) -> UInt32 {
            let r = Self.mixMultL &* x &- Self.mixMultR &* y
            return r ^ (r >> 16)
        }
        var mixer = (0..<poolSize).map { hashmix($0 < words.count ? words[$0] : 0) }
        // Every pool word into every other (so late words reach early ones), in numpy's order.
        for src in 0..<poolSize {
            for dst in 0..<poolSize where dst != src { mixer[dst] = mix(mixer[dst], hashmix(mixer[src])) }
        }
        if words.count > poolSize {
            for src in poolSize..<words.count {
                for dst in 0..<poolSize { mixer[dst] = mix(mixer[dst], hashmix(words[src])) }
            }
        }
        pool = mixer
    }

    /// `generate_state(n)` as uint32 words.
    public func generateState(_ n: Int) -> [UInt32] {
        var hashConst = Self.initB
        return (0..<n).map { i in
            var v = pool[i % pool.count] ^ hashConst
            hashConst &*= Self.multB
            v &*= hashConst
            return v ^ (v >> 16)
        }
    }

    /// A non-negative integer as numpy coerces it: little-endian uint32 words, `[0]` for 0.
    public static func words(of value: UInt64) -> [UInt32] {
        if value == 0 { return [0] }
        var out: [UInt32] = [], n = value
        while n > 0 {
            out.append(UInt32(truncatingIfNeeded: n))
            n >>= 32
        }
        return out
    }
}
