#ifndef PAREIDOLIA_COPENBLAS_H
#define PAREIDOLIA_COPENBLAS_H
// Run-time loader for OpenBLAS. OpenBLAS's DYNAMIC_ARCH build chooses its kernels in a load-time
// constructor from OPENBLAS_CORETYPE or its own CPU detection; Debian's 0.3.21 misdetects recent
// AVX-512 Xeons as "Prescott" (SSE3 kernels, ~5x slower). Loading it ourselves lets us set the core
// type from the CPU's real features first, without overriding a value the user chose.

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// CPU features that matter for the choice, read with cpuid/xgetbv (OS support checked).
typedef struct {
    int avx2, fma, f16c;
    int avx512f, avx512cd, avx512bw, avx512dq, avx512vl, avx512bf16, avx512fp16;
    int os_ymm, os_zmm;      // the OS saves ymm / zmm state
    int vendor_amd, vendor_intel;
} pd_cpu_features;

pd_cpu_features pd_cpu_detect(void);

// The OpenBLAS core type to request for these features, or NULL to let OpenBLAS decide.
const char *pd_openblas_coretype_for(pd_cpu_features f);

// The features with everything above `level` (0 baseline, 1 AVX2+FMA, 2 AVX-512) cleared.
pd_cpu_features pd_cpu_capped(pd_cpu_features f, int level);
// What the loader requests for `cpu` when its kernels are capped at `level` (NULL: OpenBLAS decides).
const char *pd_openblas_coretype_request(pd_cpu_features cpu, int level);

// Loads OpenBLAS once (thread-safe), choosing its kernels for the CPU capped at `isa_level` (the
// level Pareidolia's own kernels run at). Returns 0 on success; otherwise writes a one-line reason.
int pd_blas_load(int isa_level, char *error, size_t error_len);

// What was decided at load: the core type OpenBLAS reports, whether we set OPENBLAS_CORETYPE,
// and the library path that was opened. Valid after a successful pd_blas_load.
const char *pd_blas_corename(void);
int pd_blas_coretype_was_set(void);
const char *pd_blas_library(void);
const char *pd_blas_config(void);
int pd_blas_get_threads(void);

// Row-major sgemm: C[M,N] = alpha * op(A) op(B) + beta * C.
void pd_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);

#ifdef __cplusplus
}
#endif
#endif
