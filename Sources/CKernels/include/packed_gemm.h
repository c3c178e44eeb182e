#ifndef PAREIDOLIA_CKERNELS_PACKED_GEMM_H
#define PAREIDOLIA_CKERNELS_PACKED_GEMM_H
// Exact fp32 y = x Wᵀ + b with W [N, K] packed once into panels of 32 output features
// (packed_gemm.c), for linear layers of few rows. Each output is bias + Σ_k x·w in k order, one
// fused multiply-add a term: the same bits at every ISA level and any split over threads.

#ifdef __cplusplus
extern "C" {
#endif

// Floats the packed W takes (whole panels, zero past N).
long pd_packed_weight_count(int n, int k);
// Packs panels p0..<p1 of W [n, k] (row-major) into wp (64-byte aligned, pd_packed_weight_count).
void pd_pack_weight_panels(const float *w, int n, int k, int p0, int p1, float *wp);
// Rows per block of x the calling thread's kernels take (12 at AVX-512, else 6).
int pd_packed_rows_per_block(void);
// Packs blocks b0..<b1 of mr rows of x [m, k] into xp (ceil(m / mr) · mr · k floats, 0 past m).
void pd_pack_row_blocks(const float *x, long m, int k, int mr, long b0, long b1, float *xp);
// y[r, c] = bias[c] + Σ_k x[r, k] W[c, k] for every row r < m and the columns of panels p0..<p1;
// y has row stride ldy; bias may be NULL.
void pd_packed_gemm(const float *xp, long m, int k, int mr, const float *wp, int n, const float *bias,
                    float *y, long ldy, int p0, int p1);

#ifdef __cplusplus
}
#endif
#endif
