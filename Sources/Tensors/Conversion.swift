import CKernels

// 16-bit float → float32 for checkpoint loading. Exact (every half and bfloat16 is a float32);
// F16C / AVX-512 where available, a bit-identical scalar path elsewhere (signalling NaNs come
// out quiet with their payload, as the hardware does). Large arrays use all cores.

private let conversionGrain = 1 << 17

/// IEEE half (little-endian bit patterns) → float32.
public func convertHalfToFloat(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    Parallel.forRanges(count, grain: conversionGrain) { r in pd_f16_to_f32(src + r.lowerBound, dst + r.lowerBound, r.count) }
}

/// bfloat16 (little-endian bit patterns) → float32.
public func convertBFloat16ToFloat(_ src: UnsafePointer<UInt16>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
    Parallel.forRanges(count, grain: conversionGrain) { r in pd_bf16_to_f32(src + r.lowerBound, dst + r.lowerBound, r.count) }
}
