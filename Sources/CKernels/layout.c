// Data movement: nearest 2x upsampling and batched transposes ([B, C, HW] <-> [B, HW, C]).
#include "isa.h"
#include "CKernels.h"

PD_INLINE void upsample_body(const float *x, float *y, int H, int W, long p0, long p1) {
    const long W2 = 2L * W;
    for (long p = p0; p < p1; p++) {
        const float *xs = x + p * H * W;
        float *ys = y + p * 4 * H * W;
        for (int h = 0; h < H; h++) {
            float *row = ys + (2L * h) * W2;
            for (int w = 0; w < W; w++) { row[2 * w] = xs[h * W + w]; row[2 * w + 1] = xs[h * W + w]; }
            memcpy(row + W2, row, (size_t)W2 * sizeof(float));  // the duplicate row
        }
    }
}
PD_MULTIVERSION(pd_upsample_nearest2x, upsample_body,
                (const float *x, float *y, int H, int W, long p0, long p1), (x, y, H, W, p0, p1))

#define TILE 32

// 32 x 32 tiles: each source cache line is read once and each destination line is filled
// from one tile, instead of striding through a whole column of y per source row.
PD_INLINE void transpose_body(const float *x, float *y, long M, long N, long t0, long t1) {
    const long mt = (M + TILE - 1) / TILE;
    for (long t = t0; t < t1; t++) {
        const long b = t / mt, m0 = (t % mt) * TILE;
        const long m1 = m0 + TILE < M ? m0 + TILE : M;
        const float *xb = x + b * M * N;
        float *yb = y + b * M * N;
        for (long n0 = 0; n0 < N; n0 += TILE) {
            const long n1 = n0 + TILE < N ? n0 + TILE : N;
            for (long n = n0; n < n1; n++)
                for (long m = m0; m < m1; m++) yb[n * M + m] = xb[m * N + n];
        }
    }
}
PD_MULTIVERSION(pd_transpose_tiles, transpose_body,
                (const float *x, float *y, long M, long N, long t0, long t1), (x, y, M, N, t0, t1))
