// The attention slice (attention.c) for AVX2 in native 8-lane vectors. With attention.c's
// 16-lane vectors split in two, clang ran out of the 16 ymm registers, spilled accumulators and
// rotated the rest through moves on every key; blocks sized in ymm registers keep them all live.
#include "isa.h"
#include "CKernels.h"

#if PD_X86
#pragma clang diagnostic ignored "-Wpsabi"  // the helpers are always inlined into the AVX2 entry point

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
PD_INLINE v8 splat8(float x) { return (v8){x, x, x, x, x, x, x, x}; }
#define vec v8
#define veci v8i
#define VL 8
#define vsplat splat8
#include "attention_slice.h"

// QK: 2 × 8 queries by 6 keys = 12 accumulators, 2 query vectors and a broadcast in 16 ymm;
// PV: 2 × 8 queries by 6 values. Measured on Zen 4 capped at AVX2 (one core, 4096² × 40):
// 2,6,2,6 71 GFLOP/s; 2,5,2,5 70; 3,4,2,6 53; 3,4,3,4 42 (clang spills at 16 live registers).
PD_TARGET_AVX2 void pd_attention_slice_avx2 ATTENTION_PARAMS {
    attention_slice_body(ATTENTION_ARGS, 2, 6, 2, 6);
}
#endif
