// Run-time ISA selection shared by every kernel file (see isa.h).
#include "isa.h"
#include "CKernels.h"
#include <stdlib.h>
#include <string.h>

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

// PAREIDOLIA_ISA caps the level for the whole process (to run on an AVX-512 machine as an AVX2
// or a baseline one would): "avx512", "avx2", "sse" / "scalar" / "baseline", unset = no cap.
// Returns the cap, PD_ISA_AVX512 when unset, or -1 for a value it does not know.
static int parse_isa_cap(void) {
    const char *v = getenv("PAREIDOLIA_ISA");
    if (v == NULL || v[0] == '\0') return PD_ISA_AVX512;
    if (strcmp(v, "avx512") == 0) return PD_ISA_AVX512;
    if (strcmp(v, "avx2") == 0) return PD_ISA_AVX2;
    if (strcmp(v, "sse") == 0 || strcmp(v, "scalar") == 0 || strcmp(v, "baseline") == 0) return PD_ISA_GENERIC;
    return -1;
}

// -1 = not decided yet. Racing first calls all store the same value, so a relaxed atomic is enough.
static int detected_isa = -1;
static int isa_cap = -2;
// A level forced for the calling thread only (tests, benchmarks), -1 = none. Per thread, so that
// code computing beside a test that forces a level keeps its own kernels (Parallel hands the
// caller's value to its worker threads for the duration of a loop).
static __thread int forced_isa = -1;

int pd_isa_cpu(void) {
    int v = __atomic_load_n(&detected_isa, __ATOMIC_RELAXED);
    if (v >= 0) return v;
    v = detect_isa();
    __atomic_store_n(&detected_isa, v, __ATOMIC_RELAXED);
    return v;
}

int pd_isa_cap(void) {
    int v = __atomic_load_n(&isa_cap, __ATOMIC_RELAXED);
    if (v > -2) return v;
    v = parse_isa_cap();
    __atomic_store_n(&isa_cap, v, __ATOMIC_RELAXED);
    return v;
}

int pd_isa_supported(void) {
    const int cpu = pd_isa_cpu(), cap = pd_isa_cap();
    // An unknown PAREIDOLIA_ISA is reported by the callers (pd_isa_cap() < 0); kernels stay at
    // the baseline meanwhile rather than above what was asked.
    if (cap < 0) return PD_ISA_GENERIC;
    return cpu < cap ? cpu : cap;
}

int pd_isa(void) {
    const int f = forced_isa;
    return f >= 0 ? f : pd_isa_supported();
}

int pd_forced_isa(void) { return forced_isa; }

int pd_set_isa(int level) {
    const int best = pd_isa_supported();
    if (level < 0) { forced_isa = -1; return best; }
    if (level > best) level = best;
    forced_isa = level;
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
