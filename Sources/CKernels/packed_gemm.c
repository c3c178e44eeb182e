// y = x Wᵀ + b with W packed once into panels: the linear layers of few rows (the text encoder's
// 2 × 77 tokens). OpenBLAS packs all of W on every call there (12% of an encode, perf) and its
// kernel runs at 75–87% of the FMA peak on these shapes; with W already in panels the product
// streams each panel once from memory and reuses it from L2 for every block of rows.
//
// Layouts: W [N, K] → panels of PD_PANEL = 32 output features, panel p holding
// wp[(p·K + k)·32 + j] = W[p·32 + j, k] (0 past N). x [M, K] → blocks of mr rows,
// xp[(b·K + k)·mr + i] = x[b·mr + i, k] (0 past M). mr is 12 for the AVX-512 kernel (12 × 32:
// 24 accumulators), 6 otherwise (AVX2: 6 × 16 on each half panel, 12 accumulators).
//
// Every output is bias + Σ_k x·w summed in k order with one fused multiply-add a term, at every
// ISA level and however the panels are split over threads: the bits never depend on either.
#include <math.h>
#include "isa.h"
#include "CKernels.h"
#if PD_X86
#include <immintrin.h>
#endif

#define PD_PANEL 32

long pd_packed_weight_count(int n, int k) { return (long)((n + PD_PANEL - 1) / PD_PANEL) * PD_PANEL * k; }

void pd_pack_weight_panels(const float *w, int n, int k, int p0, int p1, float *wp) {
    for (int p = p0; p < p1; p++) {
        float *dst = wp + (long)p * k * PD_PANEL;
        const int cols = n - p * PD_PANEL < PD_PANEL ? n - p * PD_PANEL : PD_PANEL;
        // Row by row of W (contiguous reads), scattered with stride 32 into the panel.
        for (int j = 0; j < cols; j++) {
            const float *src = w + (long)(p * PD_PANEL + j) * k;
            for (int kk = 0; kk < k; kk++) dst[(long)kk * PD_PANEL + j] = src[kk];
        }
        for (int j = cols; j < PD_PANEL; j++)
            for (int kk = 0; kk < k; kk++) dst[(long)kk * PD_PANEL + j] = 0;
    }
}

int pd_packed_rows_per_block(void) { return pd_isa() >= PD_ISA_AVX512 ? 12 : 6; }

void pd_pack_row_blocks(const float *x, long m, int k, int mr, long b0, long b1, float *xp) {
    for (long b = b0; b < b1; b++) {
        float *dst = xp + b * k * mr;
        const int rows = m - b * mr < mr ? (int)(m - b * mr) : mr;
        const float *src = x + b * mr * k;
        // Written in order (the block's column k is mr consecutive floats), read from mr rows at once.
        for (int kk = 0; kk < k; kk++, dst += mr) {
            int i = 0;
            for (; i < rows; i++) dst[i] = src[(long)i * k + kk];
            for (; i < mr; i++) dst[i] = 0;
        }
    }
}

// One block of rows × one panel, any mr: the baseline path (no AVX2, or another CPU), and
// the reference the vector kernels agree with bit for bit (fmaf: one rounding per term).
static void block_generic(const float *xp, int mr, int k, const float *wp, const float *bias,
                          float *y, long ldy, int rows, int cols) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) {
            float acc = bias ? bias[j] : 0.0f;
            for (int kk = 0; kk < k; kk++) acc = fmaf(xp[(long)kk * mr + i], wp[(long)kk * PD_PANEL + j], acc);
            y[i * ldy + j] = acc;
        }
}

#if PD_X86
PD_TARGET_AVX512 static void block_avx512(const float *xp, int k, const float *wp, const float *bias,
                                          float *y, long ldy, int rows, int cols) {
    const __mmask16 m0 = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
    const __mmask16 m1 = cols <= 16 ? 0 : cols >= 32 ? 0xFFFF : (__mmask16)((1u << (cols - 16)) - 1);
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    __m512 a[12][2];
    for (int i = 0; i < 12; i++) { a[i][0] = b0; a[i][1] = b1; }
    for (int kk = 0; kk < k; kk++) {
        const __m512 w0 = _mm512_load_ps(wp + (long)kk * PD_PANEL), w1 = _mm512_load_ps(wp + (long)kk * PD_PANEL + 16);
        const float *xk = xp + (long)kk * 12;
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) {
            const __m512 xv = _mm512_set1_ps(xk[i]);
            a[i][0] = _mm512_fmadd_ps(xv, w0, a[i][0]);
            a[i][1] = _mm512_fmadd_ps(xv, w1, a[i][1]);
        }
    }
    for (int i = 0; i < rows; i++) {
        _mm512_mask_storeu_ps(y + i * ldy, m0, a[i][0]);
        _mm512_mask_storeu_ps(y + i * ldy + 16, m1, a[i][1]);
    }
}

// A half panel: 16 columns at stride 32.
PD_TARGET_AVX2 static void block_avx2(const float *xp, int k, const float *wp, const float *bias,
                                      float *y, long ldy, int rows, int cols) {
    int lanes[16];
    for (int j = 0; j < 16; j++) lanes[j] = j < cols ? -1 : 0;
    const __m256i m0 = _mm256_loadu_si256((const __m256i *)lanes), m1 = _mm256_loadu_si256((const __m256i *)(lanes + 8));
    const __m256 b0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
    const __m256 b1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
    __m256 a[6][2];
    for (int i = 0; i < 6; i++) { a[i][0] = b0; a[i][1] = b1; }
    for (int kk = 0; kk < k; kk++) {
        const __m256 w0 = _mm256_load_ps(wp + (long)kk * PD_PANEL), w1 = _mm256_load_ps(wp + (long)kk * PD_PANEL + 8);
        const float *xk = xp + (long)kk * 6;
#pragma clang loop unroll(full)
        for (int i = 0; i < 6; i++) {
            const __m256 xv = _mm256_broadcast_ss(xk + i);
            a[i][0] = _mm256_fmadd_ps(xv, w0, a[i][0]);
            a[i][1] = _mm256_fmadd_ps(xv, w1, a[i][1]);
        }
    }
    for (int i = 0; i < rows; i++) {
        _mm256_maskstore_ps(y + i * ldy, m0, a[i][0]);
        _mm256_maskstore_ps(y + i * ldy + 8, m1, a[i][1]);
    }
}
#endif

// Panel by panel, each block of rows through the whole depth: the panel (32 × K floats, 96–384 KB)
// is read from memory once and from L2 by the other blocks. (Passes of 64–256 deep, so that a
// slice of the panel stays in L1, measured slower: 0.141–0.167 s an encode against 0.136 s at
// AVX-512, 0.158–0.200 against 0.146 at AVX2, the running sums stored and reloaded each pass.)
void pd_packed_gemm(const float *xp, long m, int k, int mr, const float *wp, int n, const float *bias,
                    float *y, long ldy, int p0, int p1) {
    const long blocks = (m + mr - 1) / mr;
    const int isa = pd_isa();
    for (int p = p0; p < p1; p++) {
        const float *panel = wp + (long)p * k * PD_PANEL;
        const int cols = n - p * PD_PANEL < PD_PANEL ? n - p * PD_PANEL : PD_PANEL;
        const float *pb = bias ? bias + p * PD_PANEL : NULL;
        for (long b = 0; b < blocks; b++) {
            const float *xb = xp + b * k * mr;
            const int rows = m - b * mr < mr ? (int)(m - b * mr) : mr;
            float *yb = y + b * mr * ldy + p * PD_PANEL;
#if PD_X86
            if (mr == 12 && isa >= PD_ISA_AVX512) { block_avx512(xb, k, panel, pb, yb, ldy, rows, cols); continue; }
            if (mr == 6 && isa >= PD_ISA_AVX2) {
                block_avx2(xb, k, panel, pb, yb, ldy, rows, cols < 16 ? cols : 16);
                if (cols > 16) block_avx2(xb, k, panel + 16, pb ? pb + 16 : NULL, yb + 16, ldy, rows, cols - 16);
                continue;
            }
#endif
            block_generic(xb, mr, k, panel, pb, yb, ldy, rows, cols);
        }
    }
    (void)isa;
}
