// bfloat16 GEMM with fp32 accumulation (AVX512-BF16 vdpbf16ps), for the fast mode.
//
// Layouts. K is taken in pairs (k = 2p, 2p + 1), one 32-bit word per pair with the even k in
// the low half: vdpbf16ps multiplies word lanes pairwise and adds both products to an fp32 lane.
//  - W: panels of 16 rows; panel q holds Kp = ceil(K / 2) pair words for each of its rows,
//    word (q*Kp + p)*16 + r = (W[16q + r, 2p], W[16q + r, 2p + 1]). Missing rows / k are zero.
//  - B, packed per call into `work` for a block of KCP pairs × NC columns: tiles of 16 columns,
//    tile t holds kc × 16 words, word (t*kc + p)*16 + j = (B[2p, n], B[2p + 1, n]), n = 16t + j.
// Micro-kernel: a 16 × 16 tile of C in 16 zmm (row i = lane-wise columns), one zmm of B per
// pair, each W word broadcast. At these sizes every tile shape from 4×64 to 16×16 reaches the
// same peak in L1 (measured 230 GFLOP/s per core), so the tile is chosen for the layout: 16
// rows = one 64-byte line of W per pair, and a 16 × 16 tile transposes in registers for the
// column-major store (linear layers write C[n*out + m]).
// Rounding: W with pd_bf16_round (once); B with vcvtne2ps2bf16 (one instruction per 32
// values, 3× cheaper than the integer form): the same round-to-nearest-even and quiet NaNs, but
// it reads fp32 subnormals as zero, as vdpbf16ps reads bf16 subnormals anyway (|x| < 1.2e-38).
#include "isa.h"
#include "gemm_bf16.h"
#if PD_X86
#include <immintrin.h>
#include <cpuid.h>
#endif

enum {
    MR = 16, NR = 16,
    KCP = 320,  // pairs per K block: the W slice (16 × KCP words, 20 KB) stays in L1
    NC = 256,   // columns per block: the packed B block (KCP × NC words, 320 KB) stays in L2
    MC_BYTES = 256 << 10,  // W panels per block in the column-major-C order (see gemm_avx512)
};

uint16_t pd_bf16_round(float x) { return pd_round_to_bf16(x); }

static inline uint32_t bf16_pair(float lo, float hi) {
    return (uint32_t)pd_bf16_round(lo) | (uint32_t)pd_bf16_round(hi) << 16;
}

long pd_bf16_packed_count(int M, int K) { return (long)((M + MR - 1) / MR) * MR * ((K + 1) / 2) * 2; }

void pd_bf16_pack_panels(const float *w, int M, int K, int p0, int p1, uint16_t *packed) {
    const long Kp = (K + 1) / 2;
    uint32_t *dst = (uint32_t *)packed;
    for (long q = p0; q < p1; q++) {
        for (long p = 0; p < Kp; p++) {
            for (int r = 0; r < MR; r++) {
                const long m = q * MR + r, k = 2 * p;
                float lo = 0, hi = 0;
                if (m < M) { lo = w[m * K + k]; hi = k + 1 < K ? w[m * K + k + 1] : 0; }
                dst[(q * Kp + p) * MR + r] = bf16_pair(lo, hi);
            }
        }
    }
}

void pd_bf16_pack(const float *w, int M, int K, uint16_t *packed) {
    pd_bf16_pack_panels(w, M, K, 0, (M + MR - 1) / MR, packed);
}

long pd_gemm_bf16_work_count(int K, long n0, long n1) {
    const long kp = (K + 1) / 2, n = n1 > n0 ? n1 - n0 : 0;
    const long cols = (n < NC ? (n + NR - 1) / NR * NR : NC);
    return (kp < KCP ? kp : KCP) * cols;  // one 32-bit word (a float's size) per pair and column
}

// The CPU's own answer (cpuid, and xgetbv for the OS's zmm support).
static int cpu_has_bf16(void) {
#if PD_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;  // OSXSAVE
    unsigned xlo, xhi;
    __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
    if ((xlo & 0xE6u) != 0xE6u) return 0;  // OS saves xmm, ymm, opmask, zmm0-15 high, zmm16-31
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    if (!(b & (1u << 16)) || !(b & (1u << 30))) return 0;  // AVX512F, AVX512BW
    if (a < 1 || !__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1;  // AVX512_BF16
#else
    return 0;
#endif
}

static int bf16_cpu = -1;  // cached cpu_has_bf16(); racing first calls store the same value

int pd_bf16_cpu(void) {
    int ok = __atomic_load_n(&bf16_cpu, __ATOMIC_RELAXED);
    if (ok < 0) { ok = cpu_has_bf16(); __atomic_store_n(&bf16_cpu, ok, __ATOMIC_RELAXED); }
    return ok;
}

// AVX512-BF16 is an AVX-512 extension: a process capped below AVX-512 (PAREIDOLIA_ISA) lacks it.
int pd_bf16_supported(void) { return pd_bf16_cpu() && pd_isa_supported() == PD_ISA_AVX512; }

// The same sums, one product at a time in fp32 (the order differs from the vector path only).
static void gemm_scalar(const uint16_t *packed, int M, int K, const float *B, long rsb, long csb,
                        long n0, long n1, float *C, long rsc, long csc, int accumulate) {
    const long Kp = (K + 1) / 2;
    for (long m = 0; m < M; m++) {
        const uint16_t *wrow = packed + (m / MR * Kp * MR + m % MR) * 2;
        for (long n = n0; n < n1; n++) {
            float s = 0;
            for (long k = 0; k < K; k++) {
                const float wv = pd_bits_to_float((uint32_t)wrow[(k / 2) * MR * 2 + (k & 1)] << 16);
                s += wv * pd_bits_to_float((uint32_t)pd_bf16_round(B[k * rsb + n * csb]) << 16);
            }
            float *c = C + m * rsc + n * csc;
            *c = accumulate ? *c + s : s;
        }
    }
}

#if PD_X86
#define PD_TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// 16 × 16 transpose of 32-bit lanes in place: unpack 32-bit, then 64-bit, then 128-bit lanes.
PD_INLINE PD_TARGET_BF16 void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {  // u[4i + c], lane L: column 4L + c of rows 4i..4i+3
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int c = 0; c < 4; c++) {  // 4 × 4 transpose of 128-bit lanes across row groups
        const __m512i x0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88);
        const __m512i x1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88);
        const __m512i y1 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
        r[c] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(x0, y0, 0xDD);
        r[12 + c] = _mm512_shuffle_i32x4(x1, y1, 0xDD);
    }
}

// Packs pairs [pb, pe) × columns [nb, ne) of B into `dst` (layout above).
static PD_TARGET_BF16 void pack_b(const float *B, long rsb, long csb, int K, long pb, long pe,
                                  long nb, long ne, uint32_t *dst) {
    const long kc = pe - pb, tiles = (ne - nb + NR - 1) / NR;
    if (csb == 1) {  // rows of B contiguous: two rows make one zmm of pairs
        // Word j of the result from word j/2 of row 2p (even j) or of row 2p + 1 (odd j).
        const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                                               23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
        for (long p = pb; p < pe; p++) {
            const int odd = 2 * p + 1 >= K;  // last pair of an odd K: the high half is 0
            const float *r0 = B + 2 * p * rsb, *r1 = odd ? r0 : r0 + rsb;
            for (long t = 0; t < tiles; t++) {
                const long n = nb + t * NR, left = ne - n;
                const __mmask16 m = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                const __m512 lo = _mm512_maskz_loadu_ps(m, r0 + n);
                const __m512 hi = odd ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, r1 + n);
                const __m512i words = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // [lo 0..15, hi 0..15]
                _mm512_storeu_si512(dst + (t * kc + p - pb) * NR, _mm512_permutexvar_epi16(inter, words));
            }
        }
    } else if (rsb == 1) {  // columns contiguous in k: 16 columns × 16 pairs, transposed
        for (long t = 0; t < tiles; t++) {
            for (long p = pb; p < pe; p += 16) {
                const long k = 2 * p, left = K - k;
                const __mmask16 m0 = left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1);
                const __mmask16 m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : (__mmask16)((1u << (left - 16)) - 1);
                __m512i v[16];
                for (int j = 0; j < 16; j++) {
                    const long n = nb + t * NR + j;
                    if (n >= ne) { v[j] = _mm512_setzero_si512(); continue; }
                    const float *src = B + n * csb + k;
                    // 32 consecutive k of column n in order: already 16 pair words.
                    v[j] = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, src + 16),
                                                        _mm512_maskz_loadu_ps(m0, src));
                }
                transpose16(v);  // v[r]: pair p + r of the 16 columns
                const long rows = pe - p < 16 ? pe - p : 16;
                for (long r = 0; r < rows; r++) _mm512_storeu_si512(dst + (t * kc + p - pb + r) * NR, v[r]);
            }
        }
    } else {  // any strides
        for (long t = 0; t < tiles; t++)
            for (long p = pb; p < pe; p++)
                for (long j = 0; j < NR; j++) {
                    const long n = nb + t * NR + j, k = 2 * p;
                    float lo = 0, hi = 0;
                    if (n < ne) { lo = B[k * rsb + n * csb]; hi = k + 1 < K ? B[(k + 1) * rsb + n * csb] : 0; }
                    dst[(t * kc + p - pb) * NR + j] = bf16_pair(lo, hi);
                }
    }
}

// C tile [rows, cols] (=|+=) W slice (16 rows × kc pairs) · B tile (kc pairs × 16 columns).
static PD_TARGET_BF16 void kernel16x16(const uint32_t *w, const uint32_t *b, long kc, float *C,
                                       long rsc, long csc, int rows, int cols, int accumulate) {
    // Start fetching the C tile now: its rows (or columns) are lines that the K loop below
    // hides the latency of, instead of stalling the store at the end.
    if (csc == 1) for (int i = 0; i < rows; i++) _mm_prefetch((const char *)(C + i * rsc), _MM_HINT_T0);
    else if (rsc == 1) for (int j = 0; j < cols; j++) _mm_prefetch((const char *)(C + j * csc), _MM_HINT_T0);
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    for (long p = 0; p < kc; p++) {
        const __m512bh bv = (__m512bh)_mm512_loadu_si512(b + p * NR);
        for (int i = 0; i < 16; i++)
            // The broadcast word as the last operand folds into the instruction ({1to16}):
            // a separate vbroadcastss costs a third of the rate on Zen 4.
            acc[i] = _mm512_dpbf16_ps(acc[i], bv, (__m512bh)_mm512_set1_epi32((int)w[p * MR + i]));
    }
    if (csc == 1) {  // row-major C: row i of the tile is one (masked) zmm
        const __mmask16 m = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1);
        for (int i = 0; i < rows; i++) {
            float *c = C + i * rsc;
            const __m512 v = accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), acc[i]) : acc[i];
            _mm512_mask_storeu_ps(c, m, v);
        }
    } else if (rsc == 1) {  // column-major C (linear layers): transpose, then column j is one zmm
        __m512i v[16];
        for (int i = 0; i < 16; i++) v[i] = _mm512_castps_si512(acc[i]);
        transpose16(v);
        const __mmask16 m = rows >= 16 ? 0xFFFF : (__mmask16)((1u << rows) - 1);
        for (int j = 0; j < cols; j++) {
            float *c = C + j * csc;
            const __m512 x = _mm512_castsi512_ps(v[j]);
            _mm512_mask_storeu_ps(c, m, accumulate ? _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), x) : x);
        }
    } else {
        float tile[16 * 16];
        for (int i = 0; i < 16; i++) _mm512_storeu_ps(tile + i * 16, acc[i]);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) {
                float *c = C + i * rsc + j * csc;
                *c = accumulate ? *c + tile[i * 16 + j] : tile[i * 16 + j];
            }
    }
}

static PD_TARGET_BF16 void gemm_avx512(const uint32_t *w, int M, int K, const float *B, long rsb,
                                       long csb, long n0, long n1, float *C, long rsc, long csc,
                                       int accumulate, uint32_t *bp) {
    const long Kp = (K + 1) / 2, panels = (M + MR - 1) / MR;
    for (long nb = n0; nb < n1; nb += NC) {
        const long ne = n1 < nb + NC ? n1 : nb + NC, tiles = (ne - nb + NR - 1) / NR;
        for (long pb = 0; pb < Kp; pb += KCP) {
            const long pe = Kp < pb + KCP ? Kp : pb + KCP, kc = pe - pb;
            pack_b(B, rsb, csb, K, pb, pe, nb, ne, bp);
            const int acc = accumulate || pb > 0;  // later K blocks add onto the first
            // Consecutive kernels write neighbouring C (measured: up to +20% for linear layers).
            // Row-major C: one W slice (L1) meets every B tile of the block (L2) in turn.
            // Column-major C (rows of y): one B tile meets a block of W slices (MC_BYTES, L2).
            const int by_columns = rsc == 1 && csc != 1;
            const long mc = by_columns ? (MC_BYTES / (kc * MR * 4) > 1 ? MC_BYTES / (kc * MR * 4) : 1) : panels;
            for (long q0 = 0; q0 < panels; q0 += mc) {
                const long q1 = q0 + mc < panels ? q0 + mc : panels;
                const long outer = by_columns ? tiles : q1 - q0, inner = by_columns ? q1 - q0 : tiles;
                for (long o = 0; o < outer; o++) {
                    for (long i = 0; i < inner; i++) {
                        const long q = q0 + (by_columns ? i : o), t = by_columns ? o : i;
                        const long n = nb + t * NR;
                        const int rows = M - q * MR < MR ? (int)(M - q * MR) : MR;
                        const int cols = ne - n < NR ? (int)(ne - n) : NR;
                        kernel16x16(w + (q * Kp + pb) * MR, bp + t * kc * NR, kc,
                                    C + q * MR * rsc + n * csc, rsc, csc, rows, cols, acc);
                    }
                }
            }
        }
    }
}
#endif

void pd_gemm_bf16(const uint16_t *packed, int M, int K, const float *B, long rsb, long csb,
                  long n0, long n1, float *C, long rsc, long csc, int accumulate, float *work) {
    if (n1 <= n0 || M <= 0) return;
#if PD_X86
    // The calling thread's level decides, so a thread forced below AVX-512 takes the scalar path.
    if (pd_bf16_cpu() && pd_isa() == PD_ISA_AVX512 && K > 0) {
        gemm_avx512((const uint32_t *)packed, M, K, B, rsb, csb, n0, n1, C, rsc, csc, accumulate,
                    (uint32_t *)work);
        return;
    }
#endif
    (void)work;
    gemm_scalar(packed, M, K, B, rsb, csb, n0, n1, C, rsc, csc, accumulate);
}
