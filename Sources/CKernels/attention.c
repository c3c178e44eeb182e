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
typedef float v16u __attribute__((vector_size(64), aligned(4)));

#define PAD 48  // queries are padded to a multiple of this (every ISA's block width divides it)

PD_INLINE v16 load16(const float *p) { return *(const v16u *)p; }
PD_INLINE void store16(float *p, v16 v) { *(v16u *)p = v; }
// Not (v16){0} + x: adding +0 is not an identity for -0, so that would cost an add per splat.
PD_INLINE v16 splat(float x) { return (v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x}; }
typedef int32_t v16i __attribute__((vector_size(64)));
// (a > b) ? a : b lane-wise, which x86 does in one maxps; __builtin_elementwise_max's NaN rules
// cost two more instructions per vector.
PD_INLINE v16 vmax(v16 a, v16 b) {
    const v16i gt = a > b;
    return (v16)(((v16i)a & gt) | ((v16i)b & ~gt));
}

long pd_attention_work_floats(int Nk, int D, int rows) {
    const long rp = (rows + PAD - 1) / PAD * PAD;
    return (long)Nk * rp + 2L * D * rp + 5 * rp;  // St, Qt, Ot, max, sum, 1/sum, double sums
}

// St block for keys j0..j0+JB and queries i0..i0+16*NV. Causal blocks that straddle the
// diagonal store -inf above it (key j > query r0 + i).
PD_INLINE void qk_block(const float *k, long ldk, const float *qt, long rp, int D, float *st, float *mx,
                        int j0, int i0, int JB, int NV, int causal, long r0) {
    v16 acc[8][3];
    for (int jj = 0; jj < JB; jj++)
        for (int v = 0; v < NV; v++) acc[jj][v] = splat(0);
    for (int d = 0; d < D; d++) {
        v16 qv[3];
        for (int v = 0; v < NV; v++) qv[v] = load16(qt + (long)d * rp + i0 + 16 * v);
        for (int jj = 0; jj < JB; jj++) {
            const v16 kb = splat(k[(long)(j0 + jj) * ldk + d]);
            for (int v = 0; v < NV; v++) acc[jj][v] += kb * qv[v];
        }
    }
    const int masked = causal && (long)j0 + JB - 1 > r0 + i0;
    for (int v = 0; v < NV; v++) {
        v16 m = load16(mx + i0 + 16 * v);
        for (int jj = 0; jj < JB; jj++) {
            v16 s = acc[jj][v];
            if (masked) {
                for (int l = 0; l < 16; l++)
                    if ((long)j0 + jj > r0 + i0 + 16 * v + l) s[l] = -INFINITY;
            }
            store16(st + (long)(j0 + jj) * rp + i0 + 16 * v, s);
            m = vmax(m, s);
        }
        store16(mx + i0 + 16 * v, m);
    }
}

// Ot block for values d0..d0+DB and queries i0..i0+16*NV, over keys 0..jend.
PD_INLINE void pv_block(const float *val, long ldv, const float *st, long rp, float *ot, int jend,
                        int d0, int i0, int DB, int NV) {
    v16 acc[8][3];
    for (int dd = 0; dd < DB; dd++)
        for (int v = 0; v < NV; v++) acc[dd][v] = splat(0);
    for (int j = 0; j < jend; j++) {
        v16 p[3];
        for (int v = 0; v < NV; v++) p[v] = load16(st + (long)j * rp + i0 + 16 * v);
        for (int dd = 0; dd < DB; dd++) {
            const v16 vb = splat(val[(long)j * ldv + d0 + dd]);
            for (int v = 0; v < NV; v++) acc[dd][v] += vb * p[v];
        }
    }
    for (int dd = 0; dd < DB; dd++)
        for (int v = 0; v < NV; v++) store16(ot + (long)(d0 + dd) * rp + i0 + 16 * v, acc[dd][v]);
}

// NV vectors of 16 queries per block, JB keys (and values) per block: sized to the register
// file of each ISA (AVX-512: 3 x 8 = 24 zmm accumulators).
PD_INLINE void attention_body(const float *q, const float *k, const float *v, float *out, int HD,
                              int D, int Nk, long r0, int rows, float alpha, int causal,
                              float *work, float *probs, int NV, int JB) {
    const long rp = (rows + PAD - 1) / PAD * PAD;
    const int IB = 16 * NV;
    float *st = work, *qt = st + (long)Nk * rp, *ot = qt + (long)D * rp;
    float *mx = ot + (long)D * rp, *sum = mx + rp, *inv = sum + rp;
    double *dsum = (double *)(inv + rp);  // rp is a multiple of 48: 8-byte aligned

    for (int d = 0; d < D; d++) {  // Qt[d, i] = alpha Q[r0 + i, d], zero padding
        for (long i = 0; i < rows; i++) qt[d * rp + i] = alpha * q[(r0 + i) * HD + d];
        for (long i = rows; i < rp; i++) qt[d * rp + i] = 0.0f;
    }
    for (long i = 0; i < rp; i++) { mx[i] = -INFINITY; sum[i] = 0.0f; }

    for (int i0 = 0; i0 < rp; i0 += IB) {
        const int jlast = causal ? (int)(r0 + i0 + IB < Nk ? r0 + i0 + IB : Nk) : Nk;  // keys beyond: masked
        int j0 = 0;
        for (; j0 + JB <= jlast; j0 += JB) qk_block(k, HD, qt, rp, D, st, mx, j0, i0, JB, NV, causal, r0);
        for (; j0 < jlast; j0++) qk_block(k, HD, qt, rp, D, st, mx, j0, i0, 1, NV, causal, r0);
        for (int j = jlast; j < Nk; j++)
            for (int l = 0; l < IB; l++) st[(long)j * rp + i0 + l] = -INFINITY;
    }

    // exp and column sums: float partial sums over 64 keys, accumulated in double.
    for (long i = 0; i < rp; i++) dsum[i] = 0;
    for (int j0 = 0; j0 < Nk; j0 += 64) {
        const int j1 = j0 + 64 < Nk ? j0 + 64 : Nk;
        for (long i = 0; i < rp; i++) sum[i] = 0.0f;
        for (int j = j0; j < j1; j++) {
            float *row = st + (long)j * rp;
            for (long i = 0; i < rp; i++) {
                const float e = pd_expf(row[i] - mx[i]);
                row[i] = e;
                sum[i] += e;
            }
        }
        for (long i = 0; i < rp; i++) dsum[i] += sum[i];
    }
    for (long i = 0; i < rp; i++) inv[i] = (float)(1.0 / dsum[i]);

    for (int i0 = 0; i0 < rp; i0 += IB) {
        const int jend = causal ? (int)(r0 + i0 + IB < Nk ? r0 + i0 + IB : Nk) : Nk;  // zeros beyond
        int d0 = 0;
        for (; d0 + JB <= D; d0 += JB) pv_block(v, HD, st, rp, ot, jend, d0, i0, JB, NV);
        for (; d0 < D; d0++) pv_block(v, HD, st, rp, ot, jend, d0, i0, 1, NV);
    }

    for (long i = 0; i < rows; i++)
        for (int d = 0; d < D; d++) out[(r0 + i) * HD + d] = ot[(long)d * rp + i] * inv[i];
    if (probs) {
        for (long i = 0; i < rows; i++)
            for (int j = 0; j < Nk; j++) probs[i * Nk + j] = st[(long)j * rp + i] * inv[i];
    }
}

#define ATTENTION_PARAMS                                                                       \
    (const float *q, const float *k, const float *v, float *out, int HD, int D, int Nk, long r0, \
     int rows, float alpha, int causal, float *work, float *probs)
#define ATTENTION_ARGS q, k, v, out, HD, D, Nk, r0, rows, alpha, causal, work, probs

#if PD_X86
static PD_TARGET_AVX512 void attention_avx512 ATTENTION_PARAMS { attention_body(ATTENTION_ARGS, 3, 8); }
static PD_TARGET_AVX2 void attention_avx2 ATTENTION_PARAMS { attention_body(ATTENTION_ARGS, 1, 6); }  // v16 = 2 ymm
#endif
static void attention_generic ATTENTION_PARAMS { attention_body(ATTENTION_ARGS, 1, 2); }  // v16 = 4 xmm

void pd_attention_slice ATTENTION_PARAMS {
#if PD_X86
    switch (pd_isa()) {
    case PD_ISA_AVX512: attention_avx512(ATTENTION_ARGS); return;
    case PD_ISA_AVX2: attention_avx2(ATTENTION_ARGS); return;
    default: break;
    }
#endif
    attention_generic(ATTENTION_ARGS);
}
