// im2col for convolution as GEMM, and the bias fills that let sgemm add the bias (beta = 1).
// Memory-bound copies: memcpy/memset do the work, so there is one build for every ISA.
#include "CKernels.h"
#include <string.h>

void pd_im2col(const float *x, int C, int H, int W, int kh, int kw, int stride, int pad,
               int OH, int OW, int k0, int k1, long n0, long n1, float *cols, long ldc) {
    (void)C; (void)OH;
    const int taps = kh * kw;
    for (int k = k0; k < k1; k++) {
        const int c = k / taps, i = (k % taps) / kw, j = k % kw;
        const float *plane = x + (long)c * H * W;
        float *dst = cols + (long)(k - k0) * ldc;
        long n = n0;
        while (n < n1) {
            // One output row (or the part of it inside [n0, n1)) per step.
            const long oh = n / OW, ow = n % OW;
            const long span = (OW - ow) < (n1 - n) ? (OW - ow) : (n1 - n);
            const long ih = oh * stride - pad + i;
            if (ih < 0 || ih >= H) {
                memset(dst, 0, (size_t)span * sizeof(float));
            } else {
                const float *row = plane + ih * W;
                if (stride == 1) {
                    // Source columns iw = ow + t - pad + j: zeros left of 0 and right of W-1.
                    const long iw0 = ow - pad + j;
                    long left = iw0 < 0 ? -iw0 : 0;
                    if (left > span) left = span;
                    long right = iw0 + span - W;
                    if (right < 0) right = 0;
                    if (right > span - left) right = span - left;
                    const long mid = span - left - right;
                    if (left) memset(dst, 0, (size_t)left * sizeof(float));
                    if (mid) memcpy(dst + left, row + iw0 + left, (size_t)mid * sizeof(float));
                    if (right) memset(dst + left + mid, 0, (size_t)right * sizeof(float));
                } else {
                    for (long t = 0; t < span; t++) {
                        const long iw = (ow + t) * stride - pad + j;
                        dst[t] = (iw >= 0 && iw < W) ? row[iw] : 0.0f;
                    }
                }
            }
            dst += span;
            n += span;
        }
    }
}

void pd_fill_rows(float *y, const float *bias, int r0, int r1, long n, long ldy) {
    for (int r = r0; r < r1; r++) {
        float *dst = y + (long)r * ldy;
        const float v = bias[r];
        for (long j = 0; j < n; j++) dst[j] = v;
    }
}

void pd_fill_cols(float *y, const float *bias, long r0, long r1, int n) {
    for (long r = r0; r < r1; r++) memcpy(y + r * n, bias, (size_t)n * sizeof(float));
}
