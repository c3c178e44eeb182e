#ifndef PAREIDOLIA_CKERNELS_H
#define PAREIDOLIA_CKERNELS_H
// Hot loops outside BLAS. Each function does one chunk of work (a range of rows, planes or
// groups) so that Swift can spread chunks over the cores; none allocates or spawns threads.
// All tensors are float32, contiguous, row-major (images NCHW). `long` counts are elements.
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int pd_ckernels_present(void);

// ISA levels: 0 = baseline, 1 = AVX2+FMA+F16C, 2 = AVX-512 (F/VL/DQ/BW).
int pd_isa(void);            // level the calling thread's kernels use
int pd_isa_cpu(void);        // best level this CPU (and OS) supports
// The cap PAREIDOLIA_ISA sets (2 when unset), or -1 when it holds an unknown value.
int pd_isa_cap(void);
int pd_isa_supported(void);  // min(CPU, cap): the level kernels run at unless a thread forces one
// Forces a level for the calling thread only (clamped to what is supported; negative = none).
// Returns the level now in use. pd_forced_isa() returns the thread's forced level or -1.
int pd_set_isa(int level);
int pd_forced_isa(void);

// ---- convolution (im2col.c) ----
// Writes the im2col matrix for rows k in [k0, k1) and output pixels n in [n0, n1) of one image
// x [C, H, W]: cols[(k - k0) * ldc + (n - n0)] = x[c, oh*s - pad + i, ow*s - pad + j] (0 outside),
// with k = (c*kh + i)*kw + j and n = oh*OW + ow.
void pd_im2col(const float *x, int C, int H, int W, int kh, int kw, int stride, int pad,
               int OH, int OW, int k0, int k1, long n0, long n1, float *cols, long ldc);
// y[r * ldy + j] = bias[r] for r in [r0, r1), j < n (a per-row bias, before a beta = 1 sgemm).
void pd_fill_rows(float *y, const float *bias, int r0, int r1, long n, long ldy);
// y[r * n + j] = bias[j] for r in [r0, r1) (a per-column bias, before a beta = 1 sgemm).
void pd_fill_cols(float *y, const float *bias, long r0, long r1, int n);

// ---- normalisation (norm.c) ----
// GroupNorm over items i in [i0, i1), item = (batch, group) = a contiguous block of
// (C / groups) * S values starting at i * (C / groups) * S. weight/bias [C] may be NULL.
// Statistics in double (two passes). silu != 0 applies x * sigmoid(x) to the result.
void pd_group_norm(const float *x, float *y, const float *weight, const float *bias, int C,
                   long S, int groups, long i0, long i1, float eps, int silu);
// LayerNorm over rows r in [r0, r1) of length D; weight/bias [D] may be NULL.
void pd_layer_norm(const float *x, float *y, const float *weight, const float *bias, int D,
                   long r0, long r1, float eps);

// ---- softmax (softmax.c) ----
// In place over rows r in [r0, r1) of n values, row stride ld. causal != 0: row r keeps only
// its first min(n, r + row_offset + 1) values (the rest become 0).
void pd_softmax_rows(float *x, int n, long ld, long r0, long r1, int causal, long row_offset);

// ---- attention (attention.c) ----
// One (batch, head) slice of query rows [r0, r0 + rows): q, k, v and out point at the head's
// first channel of its batch (q + (b*Nq*HD + h*D), k + (b*Nk*HD + h*D), ...), row stride HD.
// out rows get softmax(alpha Q K^T) V; causal: query i sees keys j <= i. work holds
// pd_attention_work_floats(Nk, D, rows) floats (64-byte aligned). probs, if not NULL, receives
// the probabilities [rows, Nk]. Results do not depend on how queries are sliced.
long pd_attention_work_floats(int Nk, int D, int rows);
void pd_attention_slice(const float *q, const float *k, const float *v, float *out, int HD, int D,
                        int Nk, long r0, int rows, float alpha, int causal, float *work,
                        float *probs);

// ---- activations (activations.c); dst may equal src ----
void pd_silu(const float *src, float *dst, long n);
void pd_gelu(const float *src, float *dst, long n);        // exact (erf) form
void pd_quick_gelu(const float *src, float *dst, long n);  // x * sigmoid(1.702 x)
// Rows r in [r0, r1) of x [rows, 2F] -> y [rows, F]: y = x[:, :F] * gelu(x[:, F:]).
void pd_geglu(const float *x, float *y, int F, long r0, long r1);

// ---- elementwise (elementwise.c); y may alias an input ----
void pd_add(const float *a, const float *b, float *y, long n);
void pd_mul(const float *a, const float *b, float *y, long n);
void pd_scale(const float *x, float s, float *y, long n);
// For planes p in [p0, p1) of S values: y[p*S + s] = x[p*S + s] + v[p % period].
// period = C adds a channel bias to [B, C, S]; period = B*C adds a [B, C] tensor.
void pd_add_plane_values(const float *x, const float *v, float *y, long S, long period,
                         long p0, long p1);

// ---- layout (layout.c) ----
// Planes p in [p0, p1) of x [P, H, W] -> y [P, 2H, 2W], nearest neighbour.
void pd_upsample_nearest2x(const float *x, float *y, int H, int W, long p0, long p1);
// Batched transpose x [B, M, N] -> y [B, N, M], for tiles t in [t0, t1) of the
// B * ceil(M / 32) tiles of 32 source rows.
void pd_transpose_tiles(const float *x, float *y, long M, long N, long t0, long t1);

// ---- 16-bit float conversion (convert.c); exact, bit-for-bit equal on every ISA path ----
void pd_f16_to_f32(const uint16_t *src, float *dst, long n);
void pd_bf16_to_f32(const uint16_t *src, float *dst, long n);
// float32 -> 16 bits, round to nearest even (NaN stays NaN, overflow gives inf)
void pd_f32_to_f16(const float *src, uint16_t *dst, long n);
void pd_f32_to_bf16(const float *src, uint16_t *dst, long n);

#ifdef __cplusplus
}
#endif
/// glibc: keep allocations of up to 64 MB in the heap instead of fresh mmaps.
void pd_tune_allocator(void);
// Returns the heap's free memory to the system (glibc malloc_trim), between phases of a run.
void pd_trim_heap(void);
// Allocations of at least `bytes` get their own mmap (glibc; elsewhere nothing).
void pd_set_mmap_threshold(long bytes);

// Tensor blocks of PD_BLOCK_MIN_BYTES and more (blocks.c): own 2 MB-aligned mappings on huge
// pages, freed blocks kept for reuse up to PD_BLOCK_CACHE_BYTES.
#define PD_BLOCK_MIN_BYTES (1L << 20)
#define PD_BLOCK_CACHE_BYTES (64UL << 20)
void *pd_block_alloc(size_t bytes);
void pd_block_free(void *p, size_t bytes);
// Drops every cached block.
void pd_block_purge(void);

// The fast mode's kernels, in their own files.
#include "gemm_bf16.h"
#include "winograd.h"
// Exact products with pre-packed weights (linear layers of few rows).
#include "packed_gemm.h"

#endif
