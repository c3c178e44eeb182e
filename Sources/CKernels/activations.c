// Elementwise activations (SiLU, exact GELU, quick GELU) and GEGLU. Branch-free vector math
// from isa.h, compiled per ISA.
#include "isa.h"
#include "CKernels.h"

PD_INLINE void silu_body(const float *src, float *dst, long n) {
    PD_ELEMENTWISE_SAFE
    for (long i = 0; i < n; i++) { float v = src[i]; dst[i] = v * pd_sigmoidf(v); }
}
PD_MULTIVERSION(pd_silu, silu_body, (const float *src, float *dst, long n), (src, dst, n))

PD_INLINE void gelu_body(const float *src, float *dst, long n) {
    PD_ELEMENTWISE_SAFE
    for (long i = 0; i < n; i++) dst[i] = pd_geluf(src[i]);
}
PD_MULTIVERSION(pd_gelu, gelu_body, (const float *src, float *dst, long n), (src, dst, n))

PD_INLINE void quick_gelu_body(const float *src, float *dst, long n) {
    PD_ELEMENTWISE_SAFE
    for (long i = 0; i < n; i++) { float v = src[i]; dst[i] = v * pd_sigmoidf(1.702f * v); }
}
PD_MULTIVERSION(pd_quick_gelu, quick_gelu_body, (const float *src, float *dst, long n),
                (src, dst, n))

PD_INLINE void geglu_body(const float *x, float *y, int F, long r0, long r1) {
    for (long r = r0; r < r1; r++) {
        const float *hidden = x + r * 2 * F, *gate = hidden + F;
        float *out = y + r * F;
        for (int i = 0; i < F; i++) out[i] = hidden[i] * pd_geluf(gate[i]);
    }
}
PD_MULTIVERSION(pd_geglu, geglu_body, (const float *x, float *y, int F, long r0, long r1),
                (x, y, F, r0, r1))
