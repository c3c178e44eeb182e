import Foundation
import Tensors

/// `torch.Generator("cpu").manual_seed(seed)` followed by `torch.randn(shape, generator=g)` calls,
/// float32, reproduced bit for bit as x86-64 torch computes it.
///
/// What torch does (checked against torch 2.13.0+cpu, `Tests/Fixtures/rng.safetensors`):
///
/// * Engine: MT19937 seeded with the seed's low 32 bits (`MT19937`).
/// * Float uniform: `(random() & 0xFFFFFF) · 2⁻²⁴`; double uniform: `(random64() & (2⁵³−1)) · 2⁻⁵³`
///   where `random64()` puts its first draw in the high word.
/// * numel ≥ 16 (`normal_fill`): draw all numel float uniforms first, then Box–Muller in place on
///   each full block of 16: for j in 0..<8, `u1 = 1 − d[j]`, `u2 = d[j+8]`,
///   `r = sqrt(−2·log u1)`, `θ = 2π·u2`, `d[j] = r·cos θ`, `d[j+8] = r·sin θ`. If numel % 16 ≠ 0, draw 16
///   *fresh* uniforms over the last 16 slots (overwriting finished values) and transform them as
///   one more block.
/// * numel < 16: the scalar `normal_distribution<double>` path per element, with the generator's
///   cached second normal (see `scalarNormal()`), cast to float.
///
/// On x86 the block transform is `NormalFill16<float, true>` of torch's AVX2 kernel (AVX-512
/// machines run it too: `normal_stub` is registered without an AVX-512 variant). It evaluates
/// log, sin and cos with the Cephes/Pommier polynomials of `avx_mathfun.h` (`log256_ps`,
/// `sincos256_ps`) in float32, and GCC contracted many of its multiply–adds into FMAs. The exact
/// sequence of roundings is ported here (`normalFill16`) from the disassembly of
/// `libtorch_cpu.so` 2.13.0 (`at::native::templates::cpu::NormalFill16<float, true>::operator()`),
/// which makes the values bit-identical to torch on x86 (ARM/macOS torch uses libm
/// `logf`/`cosf`/`sinf` instead and differs in the last bits).
public struct TorchCPUGenerator: NoiseSource, Sendable {
    public private(set) var engine: MT19937
    /// The cached second value of the last scalar Box–Muller (torch's
    /// `next_double_normal_sample`), consumed by the next scalar draw.
    public private(set) var cachedNormal: Double?

    public init(seed: UInt64) {
        engine = MT19937(seed: seed)
        cachedNormal = nil
    }

    /// torch `random()`.
    public mutating func random() -> UInt32 { engine.next32() }
    /// torch `random64()`.
    public mutating func random64() -> UInt64 { engine.next64() }

    /// `uniform_real_distribution<float>(0, 1)`: 24 random bits, exact, in [0, 1).
    public mutating func uniformFloat() -> Float { Float(engine.next32() & 0xff_ffff) * 0x1p-24 }

    /// `uniform_real_distribution<double>(0, 1)`: 53 random bits from `random64()`, in [0, 1).
    public mutating func uniformDouble() -> Double {
        Double(engine.next64() & ((1 << 53) - 1)) * 0x1p-53
    }

    /// `normal_distribution<double>(0, 1)` with torch's cache: returns the cached value if there is
    /// one; otherwise draws `u1` then `u2` (double uniforms), returns `r·cos θ` and caches `r·sin θ`
    /// where `r = sqrt(−2·log1p(−u2))`, `θ = 2π·u1`.
    public mutating func scalarNormal() -> Double {
        if let cached = cachedNormal {
            cachedNormal = nil
            return cached
        }
        let u1 = uniformDouble()
        let u2 = uniformDouble()
        let r = (-2.0 * Foundation.log1p(-u2)).squareRoot()
        let theta = 2.0 * Double.pi * u1
        cachedNormal = r * Foundation.sin(theta)
        return r * Foundation.cos(theta)
    }

    public mutating func randn(_ shape: [Int]) -> Tensor {
        let out = Tensor(uninitializedShape: shape)
        fillNormal(out.pointer, count: noiseElementCount(shape))
        return out
    }

    /// Writes what `torch.randn(count)` would (a contiguous float32 tensor of `count` elements).
    public mutating func fillNormal(_ data: UnsafeMutablePointer<Float>, count n: Int) {
        if n < 16 {
            for i in 0..<n { data[i] = Float(scalarNormal()) }
            return
        }
        engine.fillUniformFloats(data, count: n)
        var i = 0
        while i < n - 15 {
            Self.normalFill16(data + i)
            i += 16
        }
        if n % 16 != 0 {
            engine.fillUniformFloats(data + (n - 16), count: 16)
            Self.normalFill16(data + (n - 16))
        }
    }

    /// Box–Muller on 16 uniforms in place, pairs (j, j+8): cosines to the first 8, sines to the last 8.
    @inline(__always) static func normalFill16(_ d: UnsafeMutablePointer<Float>) {
        for j in 0..<8 {
            let u1 = 1.0 - d[j]
            let u2 = d[j + 8]
            let radius = (CephesAVX2.log(u1) * -2.0).squareRoot()
            let theta = CephesAVX2.twoPi * u2
            let (s, c) = CephesAVX2.sincos(theta)
            // torch stores fma(n, std, mean) with std = 1, mean = 0: n + 0 (a −0 becomes +0).
            d[j] = radius * c + 0.0
            d[j + 8] = radius * s + 0.0
        }
    }
}
