// One attention slice: a block of query rows of one (batch, head), with its scores kept
// transposed, St[key, query], so that every inner loop runs along queries in vector lanes:
//   QK:  St[j, i] = sum_d K[j, d] * (alpha Q[i, d])   (keys broadcast, queries in lanes)
//   exp: St[j, i] = exp(St[j, i] - max_j St[., i]);  sum[i] += St[j, i]
//   PV:  Ot[d, i] = sum_j V[j, d] * St[j, i]          (values broadcast, queries in lanes)
//   out[i, d] = Ot[d, i] / sum[i]                      (normalisation deferred to D values)
// K and V are read in place (row stride H*D); only the slice's Q and output are transposed.
// Every value is summed in a fixed order that does not depend on the slice, so slicing never
// changes results. The column max is taken while the QK block is still in registers.
#include "isa.h"
#include "CKernels.h"

// The v16 helpers are always inlined into ISA-specific callers, so no 64-byte vector ever
// crosses a call boundary; the ABI warning for the baseline copy does not apply.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
// Not (v16){0} + x: adding +0 is not an identity for -0, so that would cost an add per splat.
PD_INLINE v16 splat16(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
#define vec v16
#define veci v16i
#define VL 16
#define vsplat splat16
#include "attention_slice.h"

long pd_attention_work_floats(int Nk, int D, int rows) {
    const long rp = (rows + PAD - 1) / PAD * PAD;
    return (long)Nk * rp + 2L * D * rp + 5 * rp;  // St, Qt, Ot, max, sum, 1/sum, double sums
}

#if PD_X86
void pd_attention_slice_avx2 ATTENTION_PARAMS;  // attention_avx2.c: 8 lanes
static PD_TARGET_AVX512 void attention_avx512 ATTENTION_PARAMS { attention_slice_body(ATTENTION_ARGS, 3, 8, 3, 8); }
#endif
static void attention_generic ATTENTION_PARAMS { attention_slice_body(ATTENTION_ARGS, 1, 2, 1, 2); }  // v16 = 4 xmm

void pd_attention_slice ATTENTION_PARAMS {
#if PD_X86
    switch (pd_isa()) {
    case PD_ISA_AVX512: attention_avx512(ATTENTION_ARGS); return;
    case PD_ISA_AVX2: pd_attention_slice_avx2(ATTENTION_ARGS); return;
    default: break;
    }
#endif
    attention_generic(ATTENTION_ARGS);
}
