// GroupNorm (optionally fused with SiLU) and LayerNorm.
// Statistics: corrected two-pass (mean, then sums of d = x - mean and d^2), with 16 float lanes
// flushed into doubles every 1024 elements, so long groups (VAE: 4 x 512 x 512 values) keep
// float32-exact means and variances without a slow scalar double loop.
#include "isa.h"
#include "CKernels.h"

#define LANES 16
#define FLUSH 1024

// Sum of (x - m) and of (x - m)^2 over n values (want_sq = 0 skips the squares).
PD_INLINE void moments(const float *x, long n, float m, int want_sq, double *s1, double *s2) {
    double t1 = 0, t2 = 0;
    long i = 0;
    while (n - i >= LANES) {
        float a1[LANES] = {0}, a2[LANES] = {0};
        long end = i + FLUSH < n ? i + FLUSH : n;
        for (; end - i >= LANES; i += LANES) {
            for (int l = 0; l < LANES; l++) {
                float d = x[i + l] - m;
                a1[l] += d;
                a2[l] += d * d;
            }
        }
        for (int l = 0; l < LANES; l++) { t1 += a1[l]; if (want_sq) t2 += a2[l]; }
    }
    for (; i < n; i++) { double d = (double)x[i] - m; t1 += d; t2 += d * d; }
    *s1 = t1;
    *s2 = t2;
}

// y = (x - mean) * a + b over n values, then SiLU when asked. The mean comes as hi + lo floats
// and is subtracted first: x * a + (b - mean * a) would cancel catastrophically when
// |mean| >> std, and even x - (float)mean loses the mean's rounding error (x - hi is exact
// for x near the mean).
PD_INLINE void affine(const float *x, float *y, long n, float hi, float lo, float a, float b, int silu) {
    if (silu) {
        for (long i = 0; i < n; i++) { float v = ((x[i] - hi) - lo) * a + b; y[i] = v * pd_sigmoidf(v); }
    } else {
        for (long i = 0; i < n; i++) y[i] = ((x[i] - hi) - lo) * a + b;
    }
}

// Mean (as hi + lo) and 1/sqrt(var + eps) of n values (biased variance, as PyTorch's norms use).
PD_INLINE void stats(const float *x, long n, float eps, float *mean, float *mean_lo, float *rstd) {
    double s1, s2;
    moments(x, n, 0.0f, 0, &s1, &s2);
    float m = (float)(s1 / (double)n);
    moments(x, n, m, 1, &s1, &s2);
    // s1 is the residual sum of d; subtracting s1^2 / n corrects for mean's rounding.
    double var = (s2 - s1 * s1 / (double)n) / (double)n;
    if (var < 0) var = 0;
    const double exact = (double)m + s1 / (double)n;
    *mean = (float)exact;
    *mean_lo = (float)(exact - (double)*mean);
    *rstd = (float)(1.0 / sqrt(var + (double)eps));
}

PD_INLINE void group_norm_body(const float *x, float *y, const float *weight, const float *bias,
                               int C, long S, int groups, long i0, long i1, float eps, int silu) {
    const int cpg = C / groups;
    const long len = (long)cpg * S;
    for (long item = i0; item < i1; item++) {
        const float *xs = x + item * len;
        float *ys = y + item * len;
        float mean, lo, rstd;
        stats(xs, len, eps, &mean, &lo, &rstd);
        const int c0 = (int)(item % groups) * cpg;
        for (int cc = 0; cc < cpg; cc++) {
            const float w = weight ? weight[c0 + cc] : 1.0f;
            const float b = bias ? bias[c0 + cc] : 0.0f;
            const float a = rstd * w;
            affine(xs + cc * S, ys + cc * S, S, mean, lo, a, b, silu);
        }
    }
}

PD_MULTIVERSION(pd_group_norm, group_norm_body,
                (const float *x, float *y, const float *weight, const float *bias, int C, long S,
                 int groups, long i0, long i1, float eps, int silu),
                (x, y, weight, bias, C, S, groups, i0, i1, eps, silu))

PD_INLINE void layer_norm_body(const float *x, float *y, const float *weight, const float *bias,
                               int D, long r0, long r1, float eps) {
    for (long r = r0; r < r1; r++) {
        const float *xr = x + r * D;
        float *yr = y + r * D;
        float mean, lo, rstd;
        stats(xr, D, eps, &mean, &lo, &rstd);
        if (weight && bias) {
            for (int i = 0; i < D; i++) yr[i] = ((xr[i] - mean) - lo) * rstd * weight[i] + bias[i];
        } else {
            for (int i = 0; i < D; i++) {
                float v = ((xr[i] - mean) - lo) * rstd;
                if (weight) v *= weight[i];
                if (bias) v += bias[i];
                yr[i] = v;
            }
        }
    }
}

PD_MULTIVERSION(pd_layer_norm, layer_norm_body,
                (const float *x, float *y, const float *weight, const float *bias, int D, long r0,
                 long r1, float eps),
                (x, y, weight, bias, D, r0, r1, eps))
