import Foundation
import Tensors

/// `torch.Generator("cuda").manual_seed(seed)` followed by `torch.randn(shape, generator=g,
/// device="cuda")` calls, float32, computed on the CPU (A1111's "GPU" noise, and its "NV" emulation).
///
/// What torch's CUDA kernel does (`normal_kernel` → `distribution_nullary_kernel` with
/// `curand_normal4`, 256 threads per block, 4 values per thread per Philox call):
///
/// * Philox4x32-10 (`philox4x32`), key = (seed low 32 bits, seed high 32 bits). Thread `t` starts
///   at counter (c0, c1, c2, c3) = (offset, 0, t, 0): `curand_init(seed, subsequence: t,
///   offset: 4·offset)`.
/// * Each Philox call gives (x, y, z, w). `curand_normal4` turns (x, y) into (sin, cos) and
///   (z, w) into another (sin, cos) by `_curand_box_muller`; thread t writes them to elements
///   t, t + T, t + 2T, t + 3T (T = total threads), then calls Philox again for t + 4T, ….
///   When every element has its own thread (numel ≤ T; T = 270 336 on an H200, 221 184 on an
///   A100, 196 608 on an RTX 4090; SD latents are far smaller) element i is simply the **sine**
///   of (x, y) from counter (offset, 0, i, 0) — the mapping A1111's `rng_philox.py` uses.
/// * Afterwards the generator's offset advances by the Philox calls per thread
///   (`((numel − 1) / (4·T) + 1)`; 1 whenever numel ≤ 4T): the second draw of a 256-element
///   tensor uses counter c0 = 1 (verified against the recorded second draws).
///
/// Box–Muller variants (`Math`):
///
/// * `.cuda` (default) mirrors `_curand_box_muller` in float32 as nvcc compiles it:
///   `u = fma(Float(x), 2⁻³², 2⁻³³)`, `v = fma(Float(y), F(2π·2⁻³²), F(2π·2⁻³²)/2)` (both fused by
///   nvcc), `s = sqrtf(−2·logf(u))` (logf and sqrtf correctly rounded here),
///   `__sincosf(v)` modelled as the hardware does it — reduce to revolutions with a
///   **round-toward-zero** multiply `t = RZ(v · Float(1/2π))` (`FMUL.RZ`), then `MUFU.SIN/COS` of
///   2π·t, here `Float(sin(2π·t))` in double — and `s · sin` rounded to float.
///   Against all 167 576 values recorded from torch 2.11 on an H200
///   (`shared/data/torch_cuda_randn.safetensors`: 4 seeds × 7 shapes + second draws) the max |Δ|
///   is 1.19e-6 (23 % bit-exact, ~50 % within 1 ulp). What remains is `MUFU.SIN`'s own
///   approximation error (≈ 2⁻²¹·⁴ absolute, times s), a hardware table we cannot reproduce bit
///   for bit. Other models measured on the same data: reduction rounded to nearest 2.0e-6, the
///   sine of v computed exactly 2.3e-6; whether u, v are fused or not makes no visible difference.
/// * `.a1111` is A1111's `rng_philox.py` (and stable-diffusion.cpp's "cuda" RNG up to float
///   rounding): the same Philox words, Box–Muller in double with its float32 constants
///   `2.3283064e-10` and `Float(2.3283064e-10 · 6.2831855)`, cast to float at the end.
///   Max |Δ| against the recorded CUDA values: 2.6e-6. Use it to match A1111's "NV" source exactly.
public struct PhiloxGenerator: NoiseSource, Sendable {
    public enum Math: String, Sendable {
        case cuda
        case a1111
    }

    public let seed: UInt64
    /// Philox calls consumed per thread so far (torch's `philox_offset_per_thread` / 4); the next
    /// draw starts at counter c0 = offset.
    public var offset: UInt64
    public let math: Math
    /// Total CUDA threads of the launch for large tensors (`T` above); nil = unlimited, one
    /// thread per element (A1111's emulation, and what torch does whenever numel ≤ T).
    public let threadLimit: Int?

    public init(seed: UInt64, offset: UInt64 = 0, math: Math = .cuda, threadLimit: Int? = nil) {
        precondition(threadLimit.map { $0 > 0 } ?? true, "threadLimit must be positive")
        self.seed = seed
        self.offset = offset
        self.math = math
        self.threadLimit = threadLimit
    }

    public mutating func randn(_ shape: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        fillNormal(out.pointer, count: noiseElementCount(shape))
        return out
    }

    /// Writes what `torch.randn(count, device="cuda")` would, and advances `offset`.
    public mutating func fillNormal(_ data: UnsafeMutablePointer<Float>, count n: Int) {
        guard n > 0 else { return }  // torch returns before reserving any offset
        let key = (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
        let threads = min(threadLimit ?? n, n)
        // Philox calls each thread makes: elements are handed out 4 per call, T apart.
        let callsPerThread = (n - 1) / (4 * threads) + 1
        let cuda = math == .cuda
        if threads == n {
            // One element per thread (always the case for SD latents): the sine of (x, y).
            for i in 0..<n {
                let r = Self.philox4x32(counter: Self.counter(offset, thread: i), key: key)
                data[i] = cuda ? Self.cudaBoxMullerSine(r.0, r.1) : Self.a1111BoxMuller(r.0, r.1)
            }
        } else {
            for t in 0..<threads {
                var base = t
                var c = Self.counter(offset, thread: t)
                while base < n {
                    let r = Self.philox4x32(counter: c, key: key)
                    let values: (Float, Float, Float, Float)
                    if cuda {
                        let a = Self.cudaBoxMuller(r.0, r.1), b = Self.cudaBoxMuller(r.2, r.3)
                        values = (a.sin, a.cos, b.sin, b.cos)
                    } else {
                        let a = Self.a1111BoxMullerPair(r.0, r.1), b = Self.a1111BoxMullerPair(r.2, r.3)
                        values = (a.sin, a.cos, b.sin, b.cos)
                    }
                    if base < n { data[base] = values.0 }
                    if base + threads < n { data[base + threads] = values.1 }
                    if base + 2 * threads < n { data[base + 2 * threads] = values.2 }
                    if base + 3 * threads < n { data[base + 3 * threads] = values.3 }
                    base += 4 * threads
                    c = Self.increment(c)
                }
            }
        }
        offset &+= UInt64(callsPerThread)
    }

    // MARK: Philox4x32-10

    typealias Words = (UInt32, UInt32, UInt32, UInt32)

    @inline(__always) static func counter(_ offset: UInt64, thread: Int) -> Words {
        // curand_init: skipahead(4·offset) adds offset to the low 64 bits (c0, c1),
        // skipahead_sequence(thread) adds the thread index to the high 64 bits (c2, c3).
        let t = UInt64(thread)
        return (UInt32(truncatingIfNeeded: offset), UInt32(truncatingIfNeeded: offset >> 32),
                UInt32(truncatingIfNeeded: t), UInt32(truncatingIfNeeded: t >> 32))
    }

    /// The 128-bit counter + 1, as curand steps it between calls.
    @inline(__always) static func increment(_ c: Words) -> Words {
        var r = c
        r.0 &+= 1
        if r.0 == 0 {
            r.1 &+= 1
            if r.1 == 0 {
                r.2 &+= 1
                if r.2 == 0 { r.3 &+= 1 }
            }
        }
        return r
    }

    /// Philox4x32 with 10 rounds (Salmon et al. 2011; curand's `curand_Philox4x32_10`).
    @inline(__always) static func philox4x32(counter: Words, key: (UInt32, UInt32)) -> Words {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            let p0 = UInt64(c0) &* 0xD251_1F53
            let p1 = UInt64(c2) &* 0xCD9E_8D57
            let n0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0
            let n1 = UInt32(truncatingIfNeeded: p1)
            let n2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1
            let n3 = UInt32(truncatingIfNeeded: p0)
            (c0, c1, c2, c3) = (n0, n1, n2, n3)
            if round < 9 {
                k0 &+= 0x9E37_79B9
                k1 &+= 0xBB67_AE85
            }
        }
        return (c0, c1, c2, c3)
    }

    // MARK: Box–Muller

    /// 2⁻³² (`CURAND_2POW32_INV`).
    static let inv2pow32 = Float(bitPattern: 0x2f80_0000)
    /// `CURAND_2POW32_INV_2PI` = Float(2⁻³² · 2π).
    static let inv2pow32TwoPi = Float(2.3283064365386963e-10 * 6.2831853071795864769)
    /// Float(1/2π), the constant of `__sinf`'s range reduction.
    static let invTwoPi = Float(0.15915494309189535)

    /// `_curand_box_muller(x, y)` as it runs on the GPU (see `Math.cuda`).
    @inline(__always) static func cudaBoxMuller(_ x: UInt32, _ y: UInt32) -> (sin: Float, cos: Float) {
        let (s, angle) = cudaRadiusAndAngle(x, y)
        return (s * Float(Foundation.sin(angle)), s * Float(Foundation.cos(angle)))
    }

    /// The sine half of `cudaBoxMuller` (all that a launch with one thread per element uses).
    @inline(__always) static func cudaBoxMullerSine(_ x: UInt32, _ y: UInt32) -> Float {
        let (s, angle) = cudaRadiusAndAngle(x, y)
        return s * Float(Foundation.sin(angle))
    }

    /// s = sqrtf(−2·logf(u)) and the angle 2π·t that `MUFU.SIN/COS` evaluate.
    @inline(__always) static func cudaRadiusAndAngle(_ x: UInt32, _ y: UInt32) -> (radius: Float, angle: Double) {
        let u = fmaOnce(Float(x), inv2pow32, inv2pow32 / 2)
        let v = fmaOnce(Float(y), inv2pow32TwoPi, inv2pow32TwoPi / 2)
        let logU = Float(Foundation.log(Double(u)))
        let s = (-2.0 * logU).squareRoot()
        // __sincosf: FMUL.RZ to revolutions (t = v/2π rounded toward zero), then MUFU.SIN/COS.
        let exact = Double(v) * Double(invTwoPi)  // exact (24 + 24 bits)
        var t = Float(exact)
        if Double(t).magnitude > exact.magnitude { t = t.nextDown }  // v > 0: toward zero
        return (s, 2.0 * Double.pi * Double(t))
    }

    /// A1111 `rng_philox.box_muller` (sine branch), in double.
    @inline(__always) static func a1111BoxMuller(_ x: UInt32, _ y: UInt32) -> Float {
        let two32 = Double(Float(2.3283064e-10))
        let two32pi = Double(Float(2.3283064e-10 * 6.2831855 as Double))
        let u = Double(x) * two32 + two32 / 2
        let v = Double(y) * two32pi + two32pi / 2
        return Float((-2.0 * Foundation.log(u)).squareRoot() * Foundation.sin(v))
    }

    @inline(__always) static func a1111BoxMullerPair(_ x: UInt32, _ y: UInt32) -> (sin: Float, cos: Float) {
        // np.float32 constants; uint32 × float32 arrays promote to float64 in numpy.
        let two32 = Double(Float(2.3283064e-10))
        let two32pi = Double(Float(2.3283064e-10 * 6.2831855 as Double))
        let u = Double(x) * two32 + two32 / 2
        let v = Double(y) * two32pi + two32pi / 2
        let s = (-2.0 * Foundation.log(u)).squareRoot()
        return (Float(s * Foundation.sin(v)), Float(s * Foundation.cos(v)))
    }

    /// Float `a·b + c` with one rounding (what nvcc's contraction produces).
    @inline(__always) static func fmaOnce(_ a: Float, _ b: Float, _ c: Float) -> Float {
        CephesAVX2.fma(a, b, c)
    }
}
