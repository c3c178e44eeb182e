#define _GNU_SOURCE
#include "COpenBLAS.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
static unsigned long long pd_xgetbv0(void) {
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
#endif

pd_cpu_features pd_cpu_detect(void) {
    pd_cpu_features f;
    memset(&f, 0, sizeof f);
#if defined(__x86_64__) || defined(__i386__)
    unsigned int a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
    unsigned int max_leaf = a;
    f.vendor_intel = (b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e);  // GenuineIntel
    f.vendor_amd = (b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163);    // AuthenticAMD
    __get_cpuid(1, &a, &b, &c, &d);
    int osxsave = (c >> 27) & 1;
    f.fma = (c >> 12) & 1;
    f.f16c = (c >> 29) & 1;
    if (osxsave) {
        unsigned long long xcr0 = pd_xgetbv0();
        f.os_ymm = (xcr0 & 0x6) == 0x6;
        f.os_zmm = (xcr0 & 0xe6) == 0xe6;
    }
    if (max_leaf >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        f.avx2 = (b >> 5) & 1;
        f.avx512f = (b >> 16) & 1;
        f.avx512dq = (b >> 17) & 1;
        f.avx512cd = (b >> 28) & 1;
        f.avx512bw = (b >> 30) & 1;
        f.avx512vl = (b >> 31) & 1;
        f.avx512fp16 = (d >> 23) & 1;
        __cpuid_count(7, 1, a, b, c, d);
        f.avx512bf16 = (a >> 5) & 1;
    }
#endif
    return f;
}

const char *pd_openblas_coretype_for(pd_cpu_features f) {
    // SkylakeX kernels need AVX-512 F/CD/BW/DQ/VL and an OS that saves zmm state.
    if (f.os_zmm && f.avx512f && f.avx512cd && f.avx512bw && f.avx512dq && f.avx512vl) return "SkylakeX";
    // AVX2 + FMA: Haswell kernels (AMD's Zen entry uses them with its own blocking).
    if (f.os_ymm && f.avx2 && f.fma) return f.vendor_amd ? "Zen" : "Haswell";
    return NULL;  // older CPUs: OpenBLAS's own detection is right there
}

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int,
                         float, float *, int);
typedef char *(*str_fn)(void);
typedef void (*set_threads_fn)(int);
typedef int (*get_threads_fn)(void);

// A CPU's features as a lesser one would have them: `level` 1 keeps AVX2/FMA and drops AVX-512,
// 0 keeps neither (the kernels' ISA levels, see CKernels.h).
pd_cpu_features pd_cpu_capped(pd_cpu_features f, int level) {
    if (level < 2) f.avx512f = f.avx512cd = f.avx512bw = f.avx512dq = f.avx512vl = f.avx512bf16 = f.avx512fp16 = 0;
    if (level < 1) f.avx2 = f.fma = 0;
    return f;
}

const char *pd_openblas_coretype_request(pd_cpu_features cpu, int level) {
    const char *core = pd_openblas_coretype_for(pd_cpu_capped(cpu, level));
    // Capped below AVX2 on a CPU that has it: OpenBLAS's own detection would pick AVX kernels,
    // so ask for the SSE family every AVX2 CPU also has.
    if (core == NULL && pd_openblas_coretype_for(cpu) != NULL) core = "Nehalem";
    return core;
}

static pthread_once_t pd_once = PTHREAD_ONCE_INIT;
static int pd_isa_level = 2;
static int pd_status = -1;
static char pd_error[512];
static char pd_library[256];
static int pd_set_coretype;
static sgemm_fn pd_sgemm_ptr;
static str_fn pd_corename_ptr, pd_config_ptr;
static set_threads_fn pd_set_threads_ptr;
static get_threads_fn pd_get_threads_ptr;

static void pd_load_once(void) {
    const char *user = getenv("OPENBLAS_CORETYPE");
    if (user == NULL || user[0] == '\0') {
        const char *core = pd_openblas_coretype_request(pd_cpu_detect(), __atomic_load_n(&pd_isa_level, __ATOMIC_RELAXED));
        if (core != NULL) {
            setenv("OPENBLAS_CORETYPE", core, 1);
            pd_set_coretype = 1;
        }
    }
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0",
                                  "libopenblas.0.dylib", "libopenblas.dylib"};
    void *handle = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && handle == NULL; i++) {
        handle = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
        if (handle) snprintf(pd_library, sizeof pd_library, "%s", names[i]);
    }
    // The variable was only needed by OpenBLAS's constructor; do not leak it into child processes.
    if (pd_set_coretype) unsetenv("OPENBLAS_CORETYPE");
    if (handle == NULL) {
        snprintf(pd_error, sizeof pd_error,
                 "cannot load OpenBLAS (libopenblas.so.0): %s; install it with 'apt-get install libopenblas-dev'",
                 dlerror());
        return;
    }
    pd_sgemm_ptr = (sgemm_fn)dlsym(handle, "cblas_sgemm");
    pd_corename_ptr = (str_fn)dlsym(handle, "openblas_get_corename");
    pd_config_ptr = (str_fn)dlsym(handle, "openblas_get_config");
    pd_set_threads_ptr = (set_threads_fn)dlsym(handle, "openblas_set_num_threads");
    pd_get_threads_ptr = (get_threads_fn)dlsym(handle, "openblas_get_num_threads");
    if (pd_sgemm_ptr == NULL) {
        snprintf(pd_error, sizeof pd_error, "%s has no cblas_sgemm symbol: not a usable OpenBLAS", pd_library);
        return;
    }
    // One OpenBLAS thread, for good: Pareidolia spreads its GEMMs over the cores itself. OpenBLAS's
    // thread count is process-wide and changes the bits of some products (333×517×1001 on 1 and 2
    // threads: 75% of the elements differ), so work running side by side could not otherwise be
    // reproducible.
    if (pd_set_threads_ptr) pd_set_threads_ptr(1);
    pd_status = 0;
}

int pd_blas_load(int isa_level, char *error, size_t error_len) {
    // Only the first load uses it: OpenBLAS picks its kernels once. (Swift calls this from one
    // lazily initialised value, so there is a single caller.)
    __atomic_store_n(&pd_isa_level, isa_level, __ATOMIC_RELAXED);
    pthread_once(&pd_once, pd_load_once);
    if (pd_status != 0 && error != NULL && error_len > 0) snprintf(error, error_len, "%s", pd_error);
    return pd_status;
}

const char *pd_blas_corename(void) { return pd_corename_ptr ? pd_corename_ptr() : "unknown"; }
const char *pd_blas_config(void) { return pd_config_ptr ? pd_config_ptr() : "unknown"; }
int pd_blas_coretype_was_set(void) { return pd_set_coretype; }
const char *pd_blas_library(void) { return pd_library; }
int pd_blas_get_threads(void) { return pd_get_threads_ptr ? pd_get_threads_ptr() : 1; }

enum { PD_ROW_MAJOR = 101, PD_NO_TRANS = 111, PD_TRANS = 112 };

void pd_sgemm(int trans_a, int trans_b, int m, int n, int k, float alpha,
              const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc) {
    pd_sgemm_ptr(PD_ROW_MAJOR, trans_a ? PD_TRANS : PD_NO_TRANS, trans_b ? PD_TRANS : PD_NO_TRANS,
                 m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
