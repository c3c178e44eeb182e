// Run-time ISA selection shared by every kernel file (see isa.h).
#include "isa.h"
#include "CKernels.h"

int pd_ckernels_present(void) { return 1; }

static int detect_isa(void) {
#if PD_X86
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the wider registers (xgetbv).
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw"))
        return PD_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c"))
        return PD_ISA_AVX2;
#endif
    return PD_ISA_GENERIC;
}

// -1 = not decided yet. Racing first calls all store the same value, so a relaxed atomic is enough.
static int chosen_isa = -1;
static int detected_isa = -1;

int pd_isa(void) {
    int v = __atomic_load_n(&chosen_isa, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    v = pd_isa_supported();
    __atomic_store_n(&chosen_isa, v, __ATOMIC_RELAXED);
    return v;
}

int pd_isa_supported(void) {
    int v = __atomic_load_n(&detected_isa, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    v = detect_isa();
    __atomic_store_n(&detected_isa, v, __ATOMIC_RELAXED);
    return v;
}

int pd_set_isa(int level) {
    int best = pd_isa_supported();
    if (level < 0 || level > best) level = best;
    __atomic_store_n(&chosen_isa, level, __ATOMIC_RELAXED);
    return level;
}

#if defined(__GLIBC__)
#include <malloc.h>
#endif

void pd_tune_allocator(void) {
#if defined(__GLIBC__)
    // Keep blocks up to 64 MB in the heap (see TensorStorage): mmap'd blocks fault afresh on every use.
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif
}

void pd_set_mmap_threshold(long bytes) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, (int)bytes);
#else
    (void)bytes;
#endif
}

void pd_trim_heap(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
