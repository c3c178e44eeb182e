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

// Scalar transpose of the block rows [m0, m1) x columns [n0, n1) of one [M, N] matrix.
static inline void transpose_scalar(const float *x, float *y, long M, long N, long m0, long m1, long n0, long n1) {
    for (long n = n0; n < n1; n++)
        for (long m = m0; m < m1; m++) y[n * M + m] = x[m * N + n];
}

static void transpose_tiles_generic(const float *x, float *y, long M, long N, long t0, long t1) {
    const long mt = (M + TILE - 1) / TILE;
    for (long t = t0; t < t1; t++) {
        const long b = t / mt, m0 = (t % mt) * TILE, m1 = m0 + TILE < M ? m0 + TILE : M;
        // 32 x 32 tiles: each source line is read once per tile and each destination line is
        // filled from one tile.
        for (long n0 = 0; n0 < N; n0 += TILE)
            transpose_scalar(x + b * M * N, y + b * M * N, M, N, m0, m1, n0, n0 + TILE < N ? n0 + TILE : N);
    }
}

#if PD_X86
#include <immintrin.h>

// 8 x 8 block in registers (unpack, shuffle, lane permute): plain loops would compile to
// gathers or scalar moves, several times slower.
static inline __attribute__((always_inline)) PD_TARGET_AVX2 void transpose8x8(const float *src, long lds, float *dst, long ldd) {
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds),
           r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds),
           r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE), u2 = _mm256_shuffle_ps(t1, t3, 0x44),
           u3 = _mm256_shuffle_ps(t1, t3, 0xEE), u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

static PD_TARGET_AVX2 void transpose_tiles_avx2(const float *x, float *y, long M, long N, long t0, long t1) {
    const long mt = (M + TILE - 1) / TILE;
    for (long t = t0; t < t1; t++) {
        const long b = t / mt, m0 = (t % mt) * TILE, m1 = m0 + TILE < M ? m0 + TILE : M;
        const float *xb = x + b * M * N;
        float *yb = y + b * M * N;
        const long m8 = m0 + (m1 - m0) / 8 * 8, n8 = N / 8 * 8;  // full 8 x 8 blocks end here
        for (long n0 = 0; n0 < n8; n0 += TILE) {
            const long n1 = n0 + TILE < n8 ? n0 + TILE : n8;
            for (long m = m0; m < m8; m += 8)
                for (long n = n0; n < n1; n += 8) transpose8x8(xb + m * N + n, N, yb + n * M + m, M);
        }
        transpose_scalar(xb, yb, M, N, m8, m1, 0, N);   // leftover rows
        transpose_scalar(xb, yb, M, N, m0, m8, n8, N);  // leftover columns
    }
}
#endif

void pd_transpose_tiles(const float *x, float *y, long M, long N, long t0, long t1) {
#if PD_X86
    if (pd_isa() >= PD_ISA_AVX2) { transpose_tiles_avx2(x, y, M, N, t0, t1); return; }
#endif
    transpose_tiles_generic(x, y, M, N, t0, t1);
}
