// IEEE half and bfloat16 -> float32. Every 16-bit value is exactly representable, so all paths
// agree bit for bit: the scalar path quiets signalling NaNs (keeping the payload) exactly as
// F16C's vcvtph2ps does.
#include "isa.h"
#include "CKernels.h"
#if PD_X86
#include <immintrin.h>
#endif

static inline float half_to_float(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t em = h & 0x7FFFu;
    if (em >= 0x7C00u) {  // inf, or NaN made quiet (bit 22) with the payload moved up
        const uint32_t mant = (em & 0x3FFu) << 13;
        return pd_bits_to_float(sign | 0x7F800000u | mant | (mant ? 0x00400000u : 0));
    }
    if (em >= 0x0400u) return pd_bits_to_float(sign | ((em << 13) + (112u << 23)));  // rebias 15 -> 127
    const float v = (float)em * 0x1p-24f;  // zero or subnormal: exact
    return sign ? -v : v;
}

static void f16_generic(const uint16_t *src, float *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = half_to_float(src[i]);
}

#if PD_X86
static PD_TARGET_AVX512 void f16_avx512(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; n - i >= 16; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = half_to_float(src[i]);
}

static PD_TARGET_AVX2 void f16_avx2(const uint16_t *src, float *dst, long n) {
    long i = 0;
    for (; n - i >= 8; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = half_to_float(src[i]);
}
#endif

void pd_f16_to_f32(const uint16_t *src, float *dst, long n) {
#if PD_X86
    switch (pd_isa()) {
    case PD_ISA_AVX512: f16_avx512(src, dst, n); return;
    case PD_ISA_AVX2: f16_avx2(src, dst, n); return;  // the AVX2 level requires F16C (kernels.c)
    default: break;
    }
#endif
    f16_generic(src, dst, n);
}

// bf16 is the top half of a float32: a shift, which every ISA vectorises from plain C.
PD_INLINE void bf16_body(const uint16_t *src, float *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = pd_bits_to_float((uint32_t)src[i] << 16);
}
PD_MULTIVERSION(pd_bf16_to_f32, bf16_body, (const uint16_t *src, float *dst, long n), (src, dst, n))

// float32 -> IEEE half and bfloat16, round to nearest even (what torch's .half() / .bfloat16()
// do), for holding fp32 checkpoints in 16 bits. NaN stays NaN (quiet); overflow gives inf.
static inline uint16_t float_to_half(float f) {
    const uint32_t x = pd_float_to_bits(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t ax = x & 0x7FFFFFFFu;
    if (ax > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((ax >> 13) & 0x3FFu));  // NaN
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u);  // rounds to ≥ 65520: inf
    if (ax < 0x38800000u) {  // below the smallest normal half: subnormal or zero, RNE at 2^-24
        const float v = pd_bits_to_float(ax) * 0x1p24f;  // exact scaling; lrintf rounds to even
        return (uint16_t)(sign | (uint32_t)lrintf(v));
    }
    const uint32_t rebased = ax - (112u << 23);
    const uint32_t rounded = rebased + 0x0FFFu + ((rebased >> 13) & 1u);
    return (uint16_t)(sign | (rounded >> 13));
}

static void to_f16_generic(const float *src, uint16_t *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = float_to_half(src[i]);
}

#if PD_X86
static PD_TARGET_AVX512 void to_f16_avx512(const float *src, uint16_t *dst, long n) {
    long i = 0;
    for (; n - i >= 16; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = float_to_half(src[i]);
}
static PD_TARGET_AVX2 void to_f16_avx2(const float *src, uint16_t *dst, long n) {
    long i = 0;
    for (; n - i >= 8; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = float_to_half(src[i]);
}
#endif

void pd_f32_to_f16(const float *src, uint16_t *dst, long n) {
#if PD_X86
    switch (pd_isa()) {
    case PD_ISA_AVX512: to_f16_avx512(src, dst, n); return;
    case PD_ISA_AVX2: to_f16_avx2(src, dst, n); return;
    default: break;
    }
#endif
    to_f16_generic(src, dst, n);
}

PD_INLINE void to_bf16_body(const float *src, uint16_t *dst, long n) {
    for (long i = 0; i < n; i++) dst[i] = pd_round_to_bf16(src[i]);
}
PD_MULTIVERSION(pd_f32_to_bf16, to_bf16_body, (const float *src, uint16_t *dst, long n), (src, dst, n))
