// The body of one attention slice (see attention.c for the layout and the order of sums),
// written once for any vector width. The includer defines `vec` (a vector of VL floats), `veci`
// (VL int32s), VL and vsplat(x), then includes this file; each ISA's translation unit gets its own
// always-inlined copy with register blocks sized to its register file.
#ifndef VL
#error "define vec, veci, VL and vsplat before including attention_slice.h"
#endif

// pd_attention_slice's parameters, for each ISA's entry point.
#define ATTENTION_PARAMS                                                                       \
    (const float *q, const float *k, const float *v, float *out, int HD, int D, int Nk, long r0, \
     int rows, float alpha, int causal, float *work, float *probs)
#define ATTENTION_ARGS q, k, v, out, HD, D, Nk, r0, rows, alpha, causal, work, probs

#define JC 384  // keys per chunk (a multiple of every ISA's key block)
#define PAD 48  // queries are padded to a multiple of this (every ISA's block width divides it)

typedef float vecu __attribute__((vector_size(VL * 4), aligned(4)));
PD_INLINE vec vload(const float *p) { return *(const vecu *)p; }
PD_INLINE void vstore(float *p, vec v) { *(vecu *)p = v; }
// (a > b) ? a : b lane-wise, which x86 does in one maxps; __builtin_elementwise_max's NaN rules
// cost two more instructions per vector.
PD_INLINE vec vmax(vec a, vec b) {
    const veci gt = a > b;
    return (vec)(((veci)a & gt) | ((veci)b & ~gt));
}

// St block for keys j0..j0+JB and queries i0..i0+VL*NV. Causal blocks that straddle the
// diagonal store -inf above it (key j > query r0 + i).
PD_INLINE void qk_block(const float *k, long ldk, const float *qt, long rp, int D, float *st, float *mx,
                        int j0, int i0, int JB, int NV, int causal, long r0) {
    vec acc[8][6];
    for (int jj = 0; jj < JB; jj++)
        for (int v = 0; v < NV; v++) acc[jj][v] = vsplat(0);
    for (int d = 0; d < D; d++) {
        vec qv[6];
        for (int v = 0; v < NV; v++) qv[v] = vload(qt + (long)d * rp + i0 + VL * v);
        for (int jj = 0; jj < JB; jj++) {
            const vec kb = vsplat(k[(long)(j0 + jj) * ldk + d]);
            for (int v = 0; v < NV; v++) acc[jj][v] += kb * qv[v];
        }
    }
    const int masked = causal && (long)j0 + JB - 1 > r0 + i0;
    for (int v = 0; v < NV; v++) {
        vec m = vload(mx + i0 + VL * v);
        for (int jj = 0; jj < JB; jj++) {
            vec s = acc[jj][v];
            if (masked) {
                for (int l = 0; l < VL; l++)
                    if ((long)j0 + jj > r0 + i0 + VL * v + l) s[l] = -INFINITY;
            }
            vstore(st + (long)(j0 + jj) * rp + i0 + VL * v, s);
            m = vmax(m, s);
        }
        vstore(mx + i0 + VL * v, m);
    }
}

// Ot block for values d0..d0+DB and queries i0..i0+VL*NV, over keys j0..jend, added to what Ot
// holds from earlier keys (j0 > 0); val holds the block's DB values of each key (key j's at
// val + j * ldv).
PD_INLINE void pv_block(const float *val, long ldv, const float *st, long rp, float *ot, int j0,
                        int jend, int d0, int i0, int DB, int NV) {
    vec acc[8][6];
    for (int dd = 0; dd < DB; dd++)
        for (int v = 0; v < NV; v++)
            acc[dd][v] = j0 > 0 ? vload(ot + (long)(d0 + dd) * rp + i0 + VL * v) : vsplat(0);
    for (int j = j0; j < jend; j++) {
        vec p[6];
        for (int v = 0; v < NV; v++) p[v] = vload(st + (long)j * rp + i0 + VL * v);
        for (int dd = 0; dd < DB; dd++) {
            const vec vb = vsplat(val[(long)j * ldv + dd]);
            for (int v = 0; v < NV; v++) acc[dd][v] += vb * p[v];
        }
    }
    for (int dd = 0; dd < DB; dd++)
        for (int v = 0; v < NV; v++) vstore(ot + (long)(d0 + dd) * rp + i0 + VL * v, acc[dd][v]);
}

// CALL(n) with n (0..7) a compile-time constant, so a remainder block is one call with its
// accumulators in registers, not n calls of width 1 each re-reading the whole slice.
#define WITH_CONSTANT(n, CALL)                                                             \
    switch (n) {                                                                           \
    case 1: CALL(1); break; case 2: CALL(2); break; case 3: CALL(3); break;                \
    case 4: CALL(4); break; case 5: CALL(5); break; case 6: CALL(6); break;                \
    case 7: CALL(7); break; default: break;                                                \
    }

// NV vectors of VL queries and JB keys per QK block, NP vectors of VL queries and DB values per
// PV block: sized to the register file of each ISA (AVX-512: 3 x 8 = 24 zmm accumulators).
PD_INLINE void attention_slice_body(const float *q, const float *k, const float *v, float *out, int HD,
                              int D, int Nk, long r0, int rows, float alpha, int causal,
                              float *work, float *probs, int NV, int JB, int NP, int DB) {
    const long rp = (rows + PAD - 1) / PAD * PAD;
    const int IB = VL * NV;
    float *st = work, *qt = st + (long)Nk * rp, *ot = qt + (long)D * rp;
    float *mx = ot + (long)D * rp, *sum = mx + rp, *inv = sum + rp;
    double *dsum = (double *)(inv + rp);  // rp is a multiple of 48: 8-byte aligned

    for (int d = 0; d < D; d++) {  // Qt[d, i] = alpha Q[r0 + i, d], zero padding
        for (long i = 0; i < rows; i++) qt[d * rp + i] = alpha * q[(r0 + i) * HD + d];
        for (long i = rows; i < rp; i++) qt[d * rp + i] = 0.0f;
    }
    for (long i = 0; i < rp; i++) { mx[i] = -INFINITY; sum[i] = 0.0f; }

    // QK over chunks of JC keys too: a chunk of K stays in cache across the query blocks.
    for (int jc = 0; jc < Nk; jc += JC) {
        for (int i0 = 0; i0 < rp; i0 += IB) {
            int jlast = causal ? (int)(r0 + i0 + IB < Nk ? r0 + i0 + IB : Nk) : Nk;  // keys beyond: masked
            jlast = jlast < jc + JC ? jlast : jc + JC;
            int j0 = jc;
            for (; j0 + JB <= jlast; j0 += JB) qk_block(k, HD, qt, rp, D, st, mx, j0, i0, JB, NV, causal, r0);
#define QK_REST(n) qk_block(k, HD, qt, rp, D, st, mx, j0, i0, n, NV, causal, r0)
            WITH_CONSTANT(jlast - j0, QK_REST);
#undef QK_REST
        }
    }
    if (causal) {
        for (int i0 = 0; i0 < rp; i0 += IB) {
            const long jlast = r0 + i0 + IB < Nk ? r0 + i0 + IB : Nk;
            for (long j = jlast; j < Nk; j++)
                for (int l = 0; l < IB; l++) st[j * rp + i0 + l] = -INFINITY;
        }
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

    // PV over chunks of JC keys as well, so that the chunk's scores and values stay in cache while every
    // (query block, value block) pair reads them; Ot carries the sums from chunk to chunk, which
    // keeps each sum's order (key by key) whatever the chunking.
    for (int jc = 0; jc < Nk; jc += JC) {
        for (int i0 = 0; i0 < rp; i0 += VL * NP) {
            int jend = causal ? (int)(r0 + i0 + VL * NP < Nk ? r0 + i0 + VL * NP : Nk) : Nk;  // zeros beyond
            jend = jend < jc + JC ? jend : jc + JC;
            if (jend <= jc && jc > 0) continue;
            int d0 = 0;
            for (; d0 + DB <= D; d0 += DB) pv_block(v + d0, HD, st, rp, ot, jc, jend, d0, i0, DB, NP);
#define PV_REST(n) pv_block(v + d0, HD, st, rp, ot, jc, jend, d0, i0, n, NP)
            WITH_CONSTANT(D - d0, PV_REST);
#undef PV_REST
        }
    }

    for (long i = 0; i < rows; i++)
        for (int d = 0; d < D; d++) out[(r0 + i) * HD + d] = ot[(long)d * rp + i] * inv[i];
    if (probs) {
        for (long i = 0; i < rows; i++)
            for (int j = 0; j < Nk; j++) probs[i * Nk + j] = st[(long)j * rp + i] * inv[i];
    }
}
