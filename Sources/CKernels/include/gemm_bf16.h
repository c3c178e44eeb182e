#ifndef PAREIDOLIA_CKERNELS_GEMM_BF16_H
#define PAREIDOLIA_CKERNELS_GEMM_BF16_H
// bfloat16 GEMM for the fast mode (gemm_bf16.c): weights and activations rounded to bf16,
// products summed in fp32 by AVX512-BF16's vdpbf16ps. The weight W [M, K] is packed once;
// the fp32 right-hand operand is rounded and packed block by block into `work` on each call.
// Note: vdpbf16ps treats bf16 subnormals (|x| < 1.2e-38) as zero, and B's packing reads fp32
// subnormals as zero: values that small contribute nothing.
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// 1 when the CPU has AVX512F, AVX512BW and AVX512_BF16 and the OS saves the zmm state.
int pd_bf16_cpu(void);
// pd_bf16_cpu(), and the process not capped below AVX-512 (PAREIDOLIA_ISA): what may be used.
int pd_bf16_supported(void);

// float32 -> bfloat16 bits, round to nearest even; NaN stays NaN (made quiet, sign kept),
// ±inf stays ±inf, subnormals are rounded like any other value (not flushed).
uint16_t pd_bf16_round(float x);

// Rows are packed in panels of 16, K in pairs: see gemm_bf16.c.
long pd_bf16_packed_count(int M, int K);  // uint16 elements of the packed weight
// Packs rows [16*p0, 16*p1) (panels p0..<p1, of (M + 15) / 16) of the row-major W [M, K]:
// panels are independent, so callers may pack them in parallel. pd_bf16_pack does all of them.
void pd_bf16_pack_panels(const float *w, int M, int K, int p0, int p1, uint16_t *packed);
void pd_bf16_pack(const float *w, int M, int K, uint16_t *packed);

// Floats of `work` that pd_gemm_bf16 needs for columns [n0, n1) (at most a few hundred KB).
long pd_gemm_bf16_work_count(int K, long n0, long n1);
// For columns n in [n0, n1): C[m, n] = (or += when accumulate) sum_k W[m, k] B[k, n], where
// B[k, n] = B[k*rsb + n*csb] (fp32, rounded to bf16 here) and C[m, n] = C[m*rsc + n*csc].
// Fast paths: csb = 1 or rsb = 1 for B, csc = 1 or rsc = 1 for C; other strides work, slower.
// Single-threaded; callers split [0, N) over threads (multiples of 16 columns are best).
// On a CPU without BF16 support, or on a thread forced below AVX-512 (pd_set_isa), a slow
// scalar loop gives the same result.
void pd_gemm_bf16(const uint16_t *packed, int M, int K, const float *B, long rsb, long csb,
                  long n0, long n1, float *C, long rsc, long csc, int accumulate, float *work);

#ifdef __cplusplus
}
#endif
#endif
