import Tensors

// The one seam for 16-bit float conversion in checkpoints. Widening goes through the vectorised,
// multi-core kernels of the Tensors layer (F16C / AVX-512); narrowing (writing traces) is scalar.

/// IEEE half → float32, exact (every half is representable); signalling NaNs come back quiet,
/// as the F16C instruction makes them.
public func convertF16toF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    convertHalfToFloat(src, dst, count: count)
}

/// bfloat16 → float32, exact: bf16 is the top half of a float32.
public func convertBF16toF32(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    convertBFloat16ToFloat(src, dst, count: count)
}

/// float32 → IEEE half, round to nearest even; overflow → ±inf, NaN stays NaN.
public func convertF32toF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count { dst[i] = floatToHalf(src[i]).littleEndian }
}

/// float32 → bfloat16, round to nearest even; NaN stays NaN.
public func convertF32toBF16(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt16>, count: Int) {
    for i in 0..<count {
        let x = src[i].bitPattern
        let b: UInt32
        if x & 0x7FFF_FFFF > 0x7F80_0000 {
            b = (x >> 16) | 0x40  // quiet NaN; truncation alone could turn it into inf
        } else {
            b = (x &+ 0x7FFF &+ ((x >> 16) & 1)) >> 16
        }
        dst[i] = UInt16(truncatingIfNeeded: b).littleEndian
    }
}

@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let em = UInt32(h & 0x7FFF)
    if em >= 0x7C00 {  // inf / NaN
        return Float(bitPattern: sign | 0x7F80_0000 | ((em & 0x3FF) << 13))
    }
    if em >= 0x0400 {  // normal: rebias the exponent (127 - 15 = 112)
        return Float(bitPattern: sign | ((em << 13) &+ (112 << 23)))
    }
    let v = Float(em) * 0x1p-24  // zero or subnormal: exact
    return sign != 0 ? -v : v
}

@inline(__always)
func floatToHalf(_ f: Float) -> UInt16 {
    let x = f.bitPattern
    let sign = UInt16(truncatingIfNeeded: (x >> 16) & 0x8000)
    let a = x & 0x7FFF_FFFF
    if a >= 0x7F80_0000 {  // inf / NaN
        let nan: UInt16 = a > 0x7F80_0000 ? 0x200 | UInt16(truncatingIfNeeded: (a >> 13) & 0x3FF) : 0
        return sign | 0x7C00 | nan
    }
    if a >= 0x477F_F000 { return sign | 0x7C00 }  // at or past the midpoint above 65504
    if a < 0x3880_0000 {  // below 2^-14: half subnormal (a result of 0x400 is the smallest normal)
        let v = Float(bitPattern: a) * 0x1p24
        return sign | UInt16(v.rounded(.toNearestOrEven))
    }
    var h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3FF)
    let rest = a & 0x1FFF
    if rest > 0x1000 || (rest == 0x1000 && h & 1 != 0) { h += 1 }  // a carry into the exponent is right
    return sign | UInt16(truncatingIfNeeded: h)
}
