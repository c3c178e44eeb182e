// Private to CKernels: run-time ISA choice and the vector math shared by the kernel files.
//
// A kernel body is written once as plain, branch-free C (`static inline`, always inlined) and
// compiled three times through PD_MULTIVERSION: for AVX-512, for AVX2+FMA, and for the baseline
// x86-64 (SSE2) or any other CPU. Clang auto-vectorises each copy for its ISA; pd_isa() picks one
// at run time, so the binary stays correct on CPUs without AVX-512 or AVX2.
#ifndef PAREIDOLIA_CKERNELS_ISA_H
#define PAREIDOLIA_CKERNELS_ISA_H
#include <stdint.h>
#include <string.h>
#include <math.h>

enum { PD_ISA_GENERIC = 0, PD_ISA_AVX2 = 1, PD_ISA_AVX512 = 2 };

// The level the calling thread's kernels use: the CPU's best, capped by PAREIDOLIA_ISA, or the
// one the thread forced with pd_set_isa (tests, benchmarks). pd_isa_supported(): without forcing.
int pd_isa(void);
int pd_isa_supported(void);

#define PD_INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) || defined(__i386__)
#define PD_X86 1
#define PD_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma,f16c")))
#define PD_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
// Defines name_avx512, name_avx2, name_generic, each an inlined copy of `body`, and `name`,
// which dispatches on pd_isa(). `params` / `args` are the parenthesised lists.
#define PD_MULTIVERSION(name, body, params, args)                                    \
    static PD_TARGET_AVX512 void name##_avx512 params { body args; }                 \
    static PD_TARGET_AVX2 void name##_avx2 params { body args; }                     \
    static void name##_generic params { body args; }                                 \
    void name params {                                                               \
        switch (pd_isa()) {                                                          \
        case PD_ISA_AVX512: name##_avx512 args; break;                               \
        case PD_ISA_AVX2: name##_avx2 args; break;                                   \
        default: name##_generic args; break;                                         \
        }                                                                            \
    }
#else
#define PD_MULTIVERSION(name, body, params, args) \
    void name params { body args; }
#endif

// For element-by-element loops that also run in place (output == an input): clang's runtime
// overlap check sends an in-place call to its scalar loop (the text encoder's in-place quick GELU
// ran scalar, 6% of an encode), so such loops are marked safe, which they are when each output
// pointer either equals an input or does not overlap it.
#define PD_ELEMENTWISE_SAFE _Pragma("clang loop vectorize(assume_safety)")

PD_INLINE float pd_bits_to_float(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
PD_INLINE uint32_t pd_float_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
// float32 -> bfloat16 bits, round to nearest even; NaN stays NaN (quiet, sign kept). Adding
// 0x7FFF plus the kept lsb rounds ties to even; a carry into the exponent is the correct rounding
// up (to inf past the largest bf16). Shared by the weight conversion and the bf16 GEMM's packing.
PD_INLINE uint16_t pd_round_to_bf16(float f) {
    const uint32_t u = pd_float_to_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x0040u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// e^x, within 2 ulp for x in [-87.3, 88.3]; 0 below, clamped to ~2.4e38 above. Branch-free
// (selects only) so loops that call it vectorise. Cephes polynomial on x - n ln2.
PD_INLINE float pd_expf(float x) {
    const float lo = -87.33654f, hi = 88.3762626647949f;
    float xc = x < lo ? lo : x;
    xc = xc > hi ? hi : xc;
    // n = round(x / ln 2) via the 1.5 * 2^23 trick (exact for |n| < 2^22)
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;  // ln2 split in two for an exact reduction
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    float scale = pd_bits_to_float((uint32_t)((int32_t)n + 127) << 23);
    float y = p * scale;
    return x < lo ? 0.0f : y;
}

PD_INLINE float pd_sigmoidf(float x) { return 1.0f / (1.0f + pd_expf(-x)); }

// erfc(z) for z >= 0, relative error < 1e-6 where erfc(z) > 1e-30. Two fitted branches,
// both evaluated and selected: z < 0.875: 1 - z P(z^2); else exp(-z^2) Q(1 / (1 + z/2)).
// z^2 is split (z = zh + zl, zh with 12 mantissa bits; zh^2 is exact) so exp(-z^2) does not
// inherit the rounding error of z^2, large in relative terms for the tail:
// exp(-z^2) = exp(-zh^2) exp(-e), e = zl (z + zh) < 0.04, the second factor by its series.
PD_INLINE float pd_erfcf_pos(float z) {
    float u = z * z;
    float ps = -6.205732352100313e-4f;
    ps = ps * u + 5.032690241932869e-3f;
    ps = ps * u - 2.679183892905712e-2f;
    ps = ps * u + 1.128246709704399e-1f;
    ps = ps * u - 3.761255145072937e-1f;
    ps = ps * u + 1.128379106521606f;
    float small = 1.0f - z * ps;

    float zc = z < 10.0f ? z : 10.0f;
    float t = 1.0f / (1.0f + 0.5f * zc);
    float q = 7.265220582485199e-2f;
    q = q * t - 1.591989547014237e-1f;
    q = q * t - 9.401551447808743e-3f;
    q = q * t + 1.308216303586960e-1f;
    q = q * t + 1.466355770826340e-1f;
    q = q * t + 2.561293244361877e-1f;
    q = q * t + 2.804610431194305e-1f;
    q = q * t + 2.822484374046326e-1f;
    q = q * t - 6.022570232744329e-6f;
    float zh = pd_bits_to_float(pd_float_to_bits(zc) & 0xFFFFF000u);
    float zl = zc - zh;
    float e = zl * (zc + zh);
    float large = pd_expf(-(zh * zh)) * (((-0.16666667f * e + 0.5f) * e - 1.0f) * e + 1.0f) * q;
    return z < 0.875f ? small : large;
}

// GELU, exact form 0.5 x (1 + erf(x / sqrt 2)), written with erfc so that the negative tail
// keeps its relative accuracy instead of cancelling in 1 + erf.
PD_INLINE float pd_geluf(float x) {
    float ax = x < 0.0f ? -x : x;
    float h = 0.5f * x * pd_erfcf_pos(ax * 0.70710678118654752f);
    return x > 0.0f ? x - h : h;
}

#endif
