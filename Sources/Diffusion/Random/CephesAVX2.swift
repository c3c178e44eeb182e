/// Scalar port of the float32 `log256_ps` and `sincos256_ps` (Cephes polynomials, by way of
/// Pommier's `sse_mathfun.h` and `avx_mathfun.h`) as torch 2.13's x86 build runs them inside
/// `NormalFill16<float, true>`.
///
/// Each lane of the AVX2 code is an independent scalar computation, so one scalar function per
/// lane gives identical results as long as every rounding step is the same. The order of
/// operations, and which multiply–adds GCC fused into FMA instructions (`vfmadd…`/`vfnmadd…`/
/// `vfmsub…`), were read from the disassembly of `libtorch_cpu.so` (torch 2.13.0+cpu, GCC 13).
/// Every `fma(…)` below is one of those instructions; every other `*`, `+`, `-` is a separate
/// rounded float32 operation. Constants are the float32 values loaded by that code.
///
/// The domain here is Box–Muller's: `log` gets u ∈ (0, 1], `sincos` gets θ ∈ [0, 2π).
enum CephesAVX2 {
    /// `Float(2π)` (0x40C90FDB), multiplied in float32 by the uniform.
    static let twoPi = Float(bitPattern: 0x40c9_0fdb)

    // log256_ps
    static let minNormPos = Float(bitPattern: 0x0080_0000)
    static let sqrtHalf = Float(bitPattern: 0x3f35_04f3)  // 0.707106781186547524
    static let logP: (Float, Float, Float, Float, Float, Float, Float, Float, Float) = (
        7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
        -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1
    )
    static let logQ1: Float = -2.12194440e-4
    static let logQ2: Float = 0.693359375

    // sincos256_ps
    static let fourOverPi: Float = 1.27323954473516
    static let minusDP1: Float = -0.78515625
    static let minusDP2: Float = -2.4187564849853515625e-4
    static let minusDP3: Float = -3.77489497744594108e-8
    static let sinP: (Float, Float, Float) = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
    static let cosP: (Float, Float, Float) = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)

    /// `log256_ps` for one lane.
    @inline(__always) static func log(_ input: Float) -> Float {
        if !(input > 0) { return .nan }  // the vector code ORs an all-ones mask in: NaN
        let clamped = max(input, minNormPos)  // cut off denormals
        let bits = clamped.bitPattern
        var e = Float(Int32(bitPattern: bits >> 23) - 0x7f) + 1.0
        // Mantissa in [0.5, 1).
        var x = Float(bitPattern: (bits & 0x807f_ffff) | 0x3f00_0000)
        let below = x < sqrtHalf
        let tmp: Float = below ? x : 0
        e = e - (below ? 1.0 : 0.0)
        x = x + -1.0
        x = x + tmp
        let z = x * x
        var y = fma(logP.0, x, logP.1)
        y = fma(y, x, logP.2)
        y = fma(y, x, logP.3)
        y = fma(y, x, logP.4)
        y = fma(y, x, logP.5)
        y = fma(y, x, logP.6)
        y = fma(y, x, logP.7)
        y = fma(y, x, logP.8)
        let eq1 = e * logQ1
        y = y * x
        y = fma(y, z, eq1)
        y = fma(-z, 0.5, y)
        x = x + y
        return fma(e, logQ2, x)
    }

    /// `sincos256_ps` for one lane: (sin θ, cos θ).
    @inline(__always) static func sincos(_ theta: Float) -> (sin: Float, cos: Float) {
        var signSin = theta.bitPattern & 0x8000_0000
        let ax = Float(bitPattern: theta.bitPattern & 0x7fff_ffff)
        // j = (int(|θ|·4/π) + 1) & ~1; octant bits from it.
        let j = Int32(ax * fourOverPi) &+ 1
        let jEven = j & ~1
        let y = Float(jEven)
        signSin ^= UInt32(bitPattern: j & 4) << 29
        let useSinPoly = (j & 2) == 0
        // Extended-precision reduction x = ((|θ| − y·DP1) − y·DP2) − y·DP3, fused.
        var x = fma(y, minusDP1, ax)
        x = fma(y, minusDP2, x)
        x = fma(y, minusDP3, x)
        let signCos = UInt32(bitPattern: ~(jEven &- 2) & 4) << 29
        let z = x * x
        let halfZ = z * 0.5
        var yc = fma(cosP.0, z, cosP.1)
        yc = fma(yc, z, cosP.2)
        yc = z * yc
        yc = fma(z, yc, -halfZ)
        yc = yc + 1.0
        var ys = fma(sinP.0, z, sinP.1)
        ys = fma(ys, z, sinP.2)
        ys = z * ys
        ys = fma(x, ys, x)
        // The vector code selects by masking and adding the other (zeroed) polynomial: v + 0.
        let s = (useSinPoly ? ys : yc) + 0.0
        let c = (useSinPoly ? yc : ys) + 0.0
        return (Float(bitPattern: s.bitPattern ^ signSin), Float(bitPattern: c.bitPattern ^ signCos))
    }

    /// Correctly rounded float32 `a·b + c` (one rounding), like `vfmadd`.
    ///
    /// Swift builds for baseline x86-64 here, where `Float.addingProduct` becomes a call to libm's
    /// `fmaf`. This computes it inline instead: `a·b` is exact in Double (24 + 24 bits), so
    /// `s = a·b + c` in Double carries one rounding, and rounding `s` to Float is correct unless
    /// `s` lands exactly on a Float rounding boundary (a tie) while the Double sum was inexact —
    /// then the exact error term (TwoSum) says which way to go. Valid when the result is a
    /// normal float or zero (always the case here).
    @inline(__always) static func fma(_ a: Float, _ b: Float, _ c: Float) -> Float {
        let p = Double(a) * Double(b)
        let cd = Double(c)
        let s = p + cd
        // A tie between two floats: the 29 bits dropped when rounding to Float are 1000…0.
        if _slowPath(s.bitPattern & 0x1fff_ffff == 0x1000_0000) {
            let pv = s - cd
            let cv = s - pv
            let err = (p - pv) + (cd - cv)  // s + err == p + c exactly
            if err > 0 { return Float(s.nextUp) }
            if err < 0 { return Float(s.nextDown) }
        }
        return Float(s)
    }
}
