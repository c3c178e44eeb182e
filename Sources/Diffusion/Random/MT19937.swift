/// The 32-bit Mersenne Twister exactly as torch's CPU generator runs it
/// (`aten/src/ATen/core/MT19937RNGEngine.h`).
///
/// Seeding keeps only the low 32 bits of the seed (torch's `init_with_uint32`); the state is
/// regenerated lazily, so the first draw after seeding regenerates the whole block, and the
/// output sequence is the textbook MT19937 one (seed 5489 → 3499211612, …).
public struct MT19937: Sendable {
    static let n = 624
    static let m = 397
    static let matrixA: UInt32 = 0x9908_b0df
    static let upperMask: UInt32 = 0x8000_0000
    static let lowerMask: UInt32 = 0x7fff_ffff

    /// The 624 words of state.
    private var state: [UInt32]
    /// Index of the next word to temper; 624 means "regenerate before the next draw".
    private var next: Int

    public init(seed: UInt64) {
        var s = [UInt32](repeating: 0, count: Self.n)
        s[0] = UInt32(truncatingIfNeeded: seed)
        for j in 1..<Self.n {
            s[j] = 1_812_433_253 &* (s[j - 1] ^ (s[j - 1] >> 30)) &+ UInt32(j)
        }
        state = s
        // torch sets left = 1, next = 0: the first draw regenerates. Same thing.
        next = Self.n
    }

    @inline(__always) private static func twist(_ u: UInt32, _ v: UInt32) -> UInt32 {
        (((u & upperMask) | (v & lowerMask)) >> 1) ^ ((v & 1) != 0 ? matrixA : 0)
    }

    @inline(__always) private static func temper(_ x: UInt32) -> UInt32 {
        var y = x
        y ^= y >> 11
        y ^= (y << 7) & 0x9d2c_5680
        y ^= (y << 15) & 0xefc6_0000
        y ^= y >> 18
        return y
    }

    private mutating func regenerate() {
        state.withUnsafeMutableBufferPointer { s in
            let n = Self.n, m = Self.m
            for k in 0..<(n - m) { s[k] = s[k + m] ^ Self.twist(s[k], s[k + 1]) }
            for k in (n - m)..<(n - 1) { s[k] = s[k + m - n] ^ Self.twist(s[k], s[k + 1]) }
            s[n - 1] = s[m - 1] ^ Self.twist(s[n - 1], s[0])
        }
        next = 0
    }

    /// One 32-bit output (torch `random()`).
    @inline(__always) public mutating func next32() -> UInt32 {
        if next == Self.n { regenerate() }
        let y = state[next]
        next += 1
        return Self.temper(y)
    }

    /// Two outputs, the first one as the high word (torch `random64()`).
    @inline(__always) public mutating func next64() -> UInt64 {
        let hi = UInt64(next32())
        let lo = UInt64(next32())
        return (hi << 32) | lo
    }

    /// `count` consecutive float uniforms `(random() & 0xFFFFFF) · 2⁻²⁴` (torch's
    /// `uniform_real_distribution<float>(0, 1)`), written to `out`. Same values as `count` calls of
    /// `next32()`, block by block without per-draw bookkeeping.
    public mutating func fillUniformFloats(_ out: UnsafeMutablePointer<Float>, count: Int) {
        var done = 0
        while done < count {
            if next == Self.n { regenerate() }
            let take = min(count - done, Self.n - next)
            let start = next
            state.withUnsafeBufferPointer { s in
                for i in 0..<take {
                    out[done + i] = Float(Self.temper(s[start + i]) & 0xff_ffff) * 0x1p-24
                }
            }
            next += take
            done += take
        }
    }
}
