// Large tensor blocks (1 MB and up): their own mappings, on huge pages where the kernel allows
// (transparent huge pages in "madvise" mode), and a small cache of freed blocks for reuse.
//
// In the heap, a UNet evaluation's mix of 1–64 MB activations fragments it: 0.6–1.4 GB more than
// the live tensors stayed resident, varying from run to run. Fresh 4 KB-page mappings give memory
// back on free but fault every page in again (UNet 12% slower). On 2 MB pages the faults are few;
// a freed block also waits in a small cache (PD_BLOCK_CACHE_BYTES) for the next request of about
// its size. Measured (512² txt2img, peak RSS / UNet evaluation): heap 3.98–4.95 GiB / 6.7–6.9 s;
// huge pages with a cache of 0: 3.56 GiB / 7.15 s, 64 MB: 3.61 / 7.00, 128 MB: 3.70 / 7.35,
// 256 MB: 3.82 / 6.72–7.00 (one sitting; times within about 0.3 s of noise).
#include "CKernels.h"
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#define PD_BLOCKS_MAPPED 1
#else
#include <stdlib.h>
#define PD_BLOCKS_MAPPED 0
#endif

#define HUGE_PAGE (2UL << 20)
#define CACHE_SLOTS 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct { void *p; size_t bytes; } cache[CACHE_SLOTS];
static int cached = 0;
static size_t cached_bytes = 0;
static const size_t cache_cap = PD_BLOCK_CACHE_BYTES;

static size_t rounded(size_t bytes) { return (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1); }

#if PD_BLOCKS_MAPPED
// A mapping of `bytes` (a multiple of 2 MB) starting on a 2 MB boundary, so that it can be backed
// by huge pages; NULL when the system is out of memory.
static void *map_block(size_t bytes) {
    uint8_t *raw = mmap(NULL, bytes + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uint8_t *start = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (start > raw) munmap(raw, (size_t)(start - raw));
    uint8_t *end = start + bytes, *raw_end = raw + bytes + HUGE_PAGE;
    if (raw_end > end) munmap(end, (size_t)(raw_end - end));
#ifdef MADV_HUGEPAGE
    madvise(start, bytes, MADV_HUGEPAGE);
#endif
    return start;
}
static void unmap_block(void *p, size_t bytes) { munmap(p, bytes); }
#else
static void *map_block(size_t bytes) {
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}
static void unmap_block(void *p, size_t bytes) { (void)bytes; free(p); }
#endif

void *pd_block_alloc(size_t bytes) {
    const size_t size = rounded(bytes);
    pthread_mutex_lock(&lock);
    // The smallest cached block that fits and wastes at most a quarter of itself.
    int best = -1;
    for (int i = 0; i < cached; i++)
        if (cache[i].bytes >= size && cache[i].bytes - size <= cache[i].bytes / 4 &&
            (best < 0 || cache[i].bytes < cache[best].bytes))
            best = i;
    if (best >= 0) {
        void *p = cache[best].p;
        cached_bytes -= cache[best].bytes;
        cache[best] = cache[--cached];
        pthread_mutex_unlock(&lock);
        return p;
    }
    pthread_mutex_unlock(&lock);
    return map_block(size);
}

void pd_block_free(void *p, size_t bytes) {
    if (!p) return;
    const size_t size = rounded(bytes);
    pthread_mutex_lock(&lock);
    // Make room by dropping the oldest blocks; a block larger than the whole cache is not kept.
    void *drop[CACHE_SLOTS];
    size_t drop_bytes[CACHE_SLOTS];
    int dropped = 0;
    if (size <= cache_cap) {
        while (cached > 0 && (cached == CACHE_SLOTS || cached_bytes + size > cache_cap)) {
            drop[dropped] = cache[0].p;
            drop_bytes[dropped++] = cache[0].bytes;
            cached_bytes -= cache[0].bytes;
            memmove(cache, cache + 1, (size_t)(--cached) * sizeof cache[0]);
        }
        cache[cached].p = p;
        cache[cached++].bytes = size;
        cached_bytes += size;
        p = NULL;
    }
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < dropped; i++) unmap_block(drop[i], drop_bytes[i]);
    if (p) unmap_block(p, size);
}

void pd_block_purge(void) {
    pthread_mutex_lock(&lock);
    const int n = cached;
    void *drop[CACHE_SLOTS];
    size_t drop_bytes[CACHE_SLOTS];
    for (int i = 0; i < n; i++) { drop[i] = cache[i].p; drop_bytes[i] = cache[i].bytes; }
    cached = 0;
    cached_bytes = 0;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) unmap_block(drop[i], drop_bytes[i]);
}
