// Elementwise arithmetic; memory-bound, compiled per ISA so the wide loads are used.
#include "isa.h"
#include "CKernels.h"

PD_INLINE void add_body(const float *a, const float *b, float *y, long n) {
    PD_ELEMENTWISE_SAFE
    for (long i = 0; i < n; i++) y[i] = a[i] + b[i];
}
PD_MULTIVERSION(pd_add, add_body, (const float *a, const float *b, float *y, long n), (a, b, y, n))

PD_INLINE void mul_body(const float *a, const float *b, float *y, long n) {
    PD_ELEMENTWISE_SAFE
    for (long i = 0; i < n; i++) y[i] = a[i] * b[i];
}
PD_MULTIVERSION(pd_mul, mul_body, (const float *a, const float *b, float *y, long n), (a, b, y, n))

PD_INLINE void scale_body(const float *x, float s, float *y, long n) {
    PD_ELEMENTWISE_SAFE
    for (long i = 0; i < n; i++) y[i] = x[i] * s;
}
PD_MULTIVERSION(pd_scale, scale_body, (const float *x, float s, float *y, long n), (x, s, y, n))

PD_INLINE void add_plane_values_body(const float *x, const float *v, float *y, long S,
                                     long period, long p0, long p1) {
    for (long p = p0; p < p1; p++) {
        const float c = v[p % period];
        const float *xs = x + p * S;
        float *ys = y + p * S;
        PD_ELEMENTWISE_SAFE
        for (long i = 0; i < S; i++) ys[i] = xs[i] + c;
    }
}
PD_MULTIVERSION(pd_add_plane_values, add_plane_values_body,
                (const float *x, const float *v, float *y, long S, long period, long p0, long p1),
                (x, v, y, S, period, p0, p1))
