// Winograd F(2×2, 3×3) and F(4×4, 3×3) transforms (see winograd.h for the layouts).
//
// The transforms run on PD_WINOGRAD_LANES tiles at once, one tile per vector lane: a group's
// patches are gathered into a small [α][α][LANES] buffer, then every 1-D transform is a loop over
// lanes that clang vectorises (one AVX-512 register, two AVX2 ones). The transform-domain values
// of a group are then LANES consecutive floats of a V (or M) row: whole cache lines.
//
// F(4×4) interpolates at 0, 1, −1, 2, −1/2 and ∞: a float32 simulation with SD-like data (320
// channels) gave max error / max |y| of 3.6–5.5e-6, against 1.0–2.6e-5 for 0, ±1, ±2 and for
// 0, ±1, ±1/2. The matrices, scaled so that Bᵀ and Aᵀ hold small integers (exact in float):
//   Bᵀ = [ 2  3 -4 -3  2  0 ]   G = [  1/2    0     0   ]   Aᵀ = [ 1  1  1  1  8  0 ]
//        [ 0 -2 -5 -1  2  0 ]       [ -1/6  -1/6  -1/6  ]        [ 0  1 -1  2 -4  0 ]
//        [ 0  2  1 -5  2  0 ]       [  1/6  -1/6   1/6  ]        [ 0  1  1  4  2  0 ]
//        [ 0 -1 -2  1  2  0 ]       [  1/30  1/15  2/15 ]        [ 0  1 -1  8 -1  1 ]
//        [ 0  2 -1 -2  1  0 ]       [ -2/15  1/15 -1/30 ]
//        [ 0  2  3 -4 -3  2 ]       [  0     0     1/2  ]
// F(2×2) uses 0, ±1, ∞: Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 -1 0 1],
//   G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1], Aᵀ = [1 1 1 0; 0 1 -1 1].
#include "isa.h"
#include "winograd.h"

#define LANES PD_WINOGRAD_LANES
#define ALIGNED __attribute__((aligned(64)))

// ---- 1-D transforms on LANES tiles: s[k·ss + l] → t[i·ts + l] ----
// Written out term by term: multiplying by the matrices' zeros could not be folded away
// (IEEE: 0 · inf is not 0), and would double the work.

PD_INLINE void bt4(const float *restrict s, long ss, float *restrict t, long ts) {
    for (int l = 0; l < LANES; l++) {
        const float d0 = s[l], d1 = s[ss + l], d2 = s[2 * ss + l], d3 = s[3 * ss + l];
        t[l] = d0 - d2;
        t[ts + l] = d1 + d2;
        t[2 * ts + l] = d2 - d1;
        t[3 * ts + l] = d3 - d1;
    }
}

PD_INLINE void bt6(const float *restrict s, long ss, float *restrict t, long ts) {
    for (int l = 0; l < LANES; l++) {
        const float d0 = s[l], d1 = s[ss + l], d2 = s[2 * ss + l], d3 = s[3 * ss + l],
                    d4 = s[4 * ss + l], d5 = s[5 * ss + l];
        t[l] = 2.0f * (d0 - d2 + d4) + 3.0f * (d1 - d3) - 2.0f * d2;
        t[ts + l] = 2.0f * (d4 - d1) - 5.0f * d2 - d3;
        t[2 * ts + l] = 2.0f * (d1 + d4) + d2 - 5.0f * d3;
        t[3 * ts + l] = 2.0f * (d4 - d2) + d3 - d1;
        t[4 * ts + l] = 2.0f * (d1 - d3) - d2 + d4;
        t[5 * ts + l] = 2.0f * (d1 - d3 + d5) + 3.0f * (d2 - d4) - 2.0f * d3;
    }
}

// Output side, with the bias added to every value when `bias` is not NULL (second pass).
PD_INLINE void at4(const float *restrict s, long ss, float *restrict t, long ts, const float *bias) {
    const float b = bias ? *bias : 0.0f;
    for (int l = 0; l < LANES; l++) {
        const float m0 = s[l], m1 = s[ss + l], m2 = s[2 * ss + l], m3 = s[3 * ss + l];
        t[l] = (m0 + m1 + m2) + b;
        t[ts + l] = (m1 - m2 + m3) + b;
    }
}

PD_INLINE void at6(const float *restrict s, long ss, float *restrict t, long ts, const float *bias) {
    const float b = bias ? *bias : 0.0f;
    for (int l = 0; l < LANES; l++) {
        const float m0 = s[l], m1 = s[ss + l], m2 = s[2 * ss + l], m3 = s[3 * ss + l],
                    m4 = s[4 * ss + l], m5 = s[5 * ss + l];
        const float p = m1 + m2, q = m1 - m2;
        t[l] = (m0 + p + m3 + 8.0f * m4) + b;
        t[ts + l] = (q + 2.0f * m3 - 4.0f * m4) + b;
        t[2 * ts + l] = (p + 4.0f * m3 + 2.0f * m4) + b;
        t[3 * ts + l] = (q + 8.0f * m3 - m4 + m5) + b;
    }
}

// ---- where each lane's tile lies ----

typedef struct {
    long image;           // offset of the tile's image (plane 0) in x or y
    int y0, x0;           // top-left input (or output) pixel of the tile
    int kind;             // 0: past the block's end, 1: wholly inside the image, 2: on an edge
} lane_tile;

// Groups whose lanes are placed at once; the transforms then run channel by channel over them,
// so that each V (M) row is written (read) sequentially and each input (output) plane is
// walked in order. Lane-at-a-time order over all channels was 3× slower at 256 channels.
#define CHUNK 32

// Places the lanes of `groups` groups starting at tile (b, ty, tx), advancing it. run[g] is set
// when each half of group g (lanes 0–7, 8–15) is 8 tiles side by side on one tile row: the
// AVX-512 path then copies it with permutes (rows from 32 px up, i.e. tilesX a multiple of 8).
PD_INLINE void place_lanes(lane_tile *lt, int *run, int groups, long remaining, int m, int shift,
                           int span, int H, int W, long imageStride, int tilesY, int tilesX, long *b,
                           int *ty, int *tx) {
    for (int g = 0; g < groups; g++) {
        int segments = 1;
        for (int l = 0; l < LANES; l++) {
            lane_tile *p = lt + g * LANES + l;
            if (g * LANES + l >= remaining) { *p = (lane_tile){0, 0, 0, 0}; segments = 0; continue; }
            p->image = *b * imageStride;
            p->y0 = *ty * m - shift;
            p->x0 = *tx * m - shift;
            p->kind = (p->y0 >= 0 && p->y0 + span <= H && p->x0 >= 0 && p->x0 + span <= W) ? 1 : 2;
            if (l % 8) segments &= p->y0 == p[-1].y0 && p->x0 == p[-1].x0 + m && p->image == p[-1].image;
            if (++*tx == tilesX) { *tx = 0; if (++*ty == tilesY) { *ty = 0; ++*b; } }
        }
        run[g] = segments;
    }
}

PD_INLINE void first_tile(long tile0, int tilesY, int tilesX, long *b, int *ty, int *tx) {
    const long per = (long)tilesY * tilesX;
    *b = tile0 / per;
    *ty = (int)((tile0 % per) / tilesX);
    *tx = (int)(tile0 % tilesX);
}

// ---- copies of a run group, AVX-512 ----
// Lane l of a segment starts m columns after lane l − 1, so a lane-by-lane copy is a strided
// one: plain loops compile to scalar moves or to gathers and scatters, costlier than the
// transforms. Permutes move 8 lanes at once, and masked loads and stores supply the zero
// padding and clip partial tiles (touching nothing outside the image rows). Called only when
// pd_isa() is AVX-512; the other builds copy lane by lane.
#if PD_X86
#include <immintrin.h>

// Bits o < 16 with 0 ≤ x + o < W: the columns of a 16-float window at column x inside the image.
PD_INLINE unsigned window_mask(int x, int W) {
    const int lo = x < 0 ? -x : 0, hi = W - x < 16 ? W - x : 16;
    return hi <= lo ? 0u : ((1u << hi) - 1u) & ~((1u << lo) - 1u);
}

// d[r][k][l] = plane_h[y0_h + r, x0_h + k + m·(l − 8h)] for the half h holding lane l (0 outside).
static PD_TARGET_AVX512 void gather_group_avx512(int m, const float *const plane[2], const int y0[2],
                                                 const int x0[2], int H, int W, float *d) {
    const int A = m + 2;
    // Lane l of each half picks float m·l + kk of that half's pair of 16-float windows.
    const __m512i lane = _mm512_set_epi32(7, 6, 5, 4, 3, 2, 1, 0, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i step = _mm512_mullo_epi32(lane, _mm512_set1_epi32(m));
    for (int r = 0; r < A; r++) {
        __m512 w[2][2][2];  // [half][shift 0 or m][window]
        for (int h = 0; h < 2; h++) {
            const int iy = y0[h] + r;
            if (iy >= 0 && iy < H) {
                // The next group's row, 16m floats on: masked loads alone left the input stream
                // unprefetched (2× slower at 128 channels of 512²).
                const char *ahead = (const char *)(plane[h] + (long)iy * W + x0[h] + 16 * m);
                _mm_prefetch(ahead, _MM_HINT_T0);
                _mm_prefetch(ahead + 64, _MM_HINT_T0);
            }
            for (int s = 0; s < 2; s++)
                for (int q = 0; q < 2; q++) {
                    const int xs = x0[h] + s * m + 16 * q;
                    const __mmask16 mask = (__mmask16)(iy >= 0 && iy < H ? window_mask(xs, W) : 0u);
                    // Masked-off lanes are never read, so xs may lie left of the row.
                    w[h][s][q] = _mm512_maskz_loadu_ps(mask, plane[h] + (long)(iy >= 0 && iy < H ? iy : 0) * W + xs);
                }
        }
        for (int k = 0; k < A; k++) {
            const int s = k >= m, kk = k - s * m;
            const __m512i idx = _mm512_add_epi32(step, _mm512_set1_epi32(kk));
            const __m512 lo = _mm512_permutex2var_ps(w[0][s][0], idx, w[0][s][1]);
            const __m512 hi = _mm512_permutex2var_ps(w[1][s][0], idx, w[1][s][1]);
            _mm512_store_ps(d + (r * A + k) * LANES, _mm512_mask_blend_ps(0xFF00, lo, hi));
        }
    }
}

// plane_h[y0_h + r, x0_h + k + m·(l − 8h)] = out[r·m + k][l] for r, k < m, inside the image.
static PD_TARGET_AVX512 void scatter_group_avx512(int m, float *const plane[2], const int y0[2],
                                                  const int x0[2], int H, int W, const float *out) {
    // Pairs (v_a[i], v_b[i]): lanes 0–7 with `lo`, lanes 8–15 with `hi`.
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    // Quads from two pair vectors, as doubles: pairs 0–3 and 4–7.
    const __m512i q0 = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0), q1 = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
    for (int r = 0; r < m; r++) {
        const float *o = out + r * m * LANES;
        __m512 seg[2][2];  // [half][16-float store]
        if (m == 2) {
            const __m512 v0 = _mm512_load_ps(o), v1 = _mm512_load_ps(o + LANES);
            seg[0][0] = _mm512_permutex2var_ps(v0, lo, v1);
            seg[1][0] = _mm512_permutex2var_ps(v0, hi, v1);
        } else {
            const __m512 v0 = _mm512_load_ps(o), v1 = _mm512_load_ps(o + LANES), v2 = _mm512_load_ps(o + 2 * LANES),
                         v3 = _mm512_load_ps(o + 3 * LANES);
            const __m512d a = _mm512_castps_pd(_mm512_permutex2var_ps(v0, lo, v1)), b = _mm512_castps_pd(_mm512_permutex2var_ps(v2, lo, v3)),
                          c = _mm512_castps_pd(_mm512_permutex2var_ps(v0, hi, v1)), e = _mm512_castps_pd(_mm512_permutex2var_ps(v2, hi, v3));
            seg[0][0] = _mm512_castpd_ps(_mm512_permutex2var_pd(a, q0, b));
            seg[0][1] = _mm512_castpd_ps(_mm512_permutex2var_pd(a, q1, b));
            seg[1][0] = _mm512_castpd_ps(_mm512_permutex2var_pd(c, q0, e));
            seg[1][1] = _mm512_castpd_ps(_mm512_permutex2var_pd(c, q1, e));
        }
        for (int h = 0; h < 2; h++) {
            if (y0[h] + r >= H) continue;
            float *row = plane[h] + (long)(y0[h] + r) * W + x0[h];
            for (int q = 0; q < m / 2; q++)
                _mm512_mask_storeu_ps(row + 16 * q, (__mmask16)window_mask(x0[h] + 16 * q, W), seg[h][q]);
        }
    }
}
#define PD_WINOGRAD_WIDE (pd_isa() == PD_ISA_AVX512)
#else
static void gather_group_avx512(int m, const float *const plane[2], const int y0[2], const int x0[2], int H,
                                int W, float *d) { (void)m; (void)plane; (void)y0; (void)x0; (void)H; (void)W; (void)d; }
static void scatter_group_avx512(int m, float *const plane[2], const int y0[2], const int x0[2], int H, int W,
                                 const float *out) { (void)m; (void)plane; (void)y0; (void)x0; (void)H; (void)W; (void)out; }
#define PD_WINOGRAD_WIDE 0
#endif

// ---- input: V = Bᵀ d B ----

PD_INLINE void input_impl(const int m, const float *x, int C, int H, int W, long tile0, long ntiles,
                          int c0, int c1, float *v, long ldv, long vstride) {
    enum { MAXA = 6 };
    const int A = m + 2;
    const int tilesY = (H + m - 1) / m, tilesX = (W + m - 1) / m;
    const long HW = (long)H * W;
    const int wide = PD_WINOGRAD_WIDE;
    long b; int ty, tx;
    first_tile(tile0, tilesY, tilesX, &b, &ty, &tx);
    float d[MAXA * MAXA * LANES] ALIGNED, t[MAXA * MAXA * LANES] ALIGNED;
    lane_tile lt[CHUNK * LANES];
    int run[CHUNK];
    for (long chunk0 = 0; chunk0 < ntiles; chunk0 += CHUNK * LANES) {
        const long left = ntiles - chunk0;
        const int groups = (int)(left < CHUNK * LANES ? (left + LANES - 1) / LANES : CHUNK);
        place_lanes(lt, run, groups, left, m, 1, A, H, W, (long)C * HW, tilesY, tilesX, &b, &ty, &tx);
        for (int c = c0; c < c1; c++) {
            for (int g = 0; g < groups; g++) {
                const lane_tile *gl = lt + g * LANES;
                // Gather the patches: d[r][k][lane] = x[b, c, y0 + r, x0 + k] (0 outside the image).
                if (wide && run[g]) {
                    const float *const plane[2] = {x + gl[0].image + (long)c * HW, x + gl[8].image + (long)c * HW};
                    const int y0[2] = {gl[0].y0, gl[8].y0}, x0[2] = {gl[0].x0, gl[8].x0};
                    gather_group_avx512(m, plane, y0, x0, H, W, d);
                } else {
                    for (int l = 0; l < LANES; l++) {
                        const lane_tile p = gl[l];
                        const float *plane = x + p.image + (long)c * HW;
                        for (int r = 0; r < A; r++) {
                            const int iy = p.y0 + r;
                            for (int k = 0; k < A; k++) {
                                const int ix = p.x0 + k;
                                const int inside = p.kind == 1 || (p.kind == 2 && iy >= 0 && iy < H && ix >= 0 && ix < W);
                                d[(r * A + k) * LANES + l] = inside ? plane[(long)iy * W + ix] : 0.0f;
                            }
                        }
                    }
                }
                // Columns, then rows: t[i][k] = Σ_r Bᵀ[i][r] d[r][k]; V[i][j] = Σ_k Bᵀ[j][k] t[i][k].
                for (int k = 0; k < A; k++) {
                    if (A == 6) bt6(d + k * LANES, A * LANES, t + k * LANES, A * LANES);
                    else bt4(d + k * LANES, A * LANES, t + k * LANES, A * LANES);
                }
                const long col = chunk0 + (long)g * LANES;
                for (int i = 0; i < A; i++) {
                    float *dst = v + (long)i * A * vstride + c * ldv + col;
                    if (A == 6) bt6(t + i * A * LANES, LANES, dst, vstride);
                    else bt4(t + i * A * LANES, LANES, dst, vstride);
                }
            }
        }
    }
}

PD_INLINE void input_body(int m, const float *x, int C, int H, int W, long tile0, long ntiles, int c0,
                          int c1, float *v, long ldv, long vstride) {
    // Constant m in each call, so the loops above unroll for their α.
    if (m == 4) input_impl(4, x, C, H, W, tile0, ntiles, c0, c1, v, ldv, vstride);
    else input_impl(2, x, C, H, W, tile0, ntiles, c0, c1, v, ldv, vstride);
}
PD_MULTIVERSION(pd_winograd_input, input_body,
                (int m, const float *x, int C, int H, int W, long tile0, long ntiles, int c0, int c1,
                 float *v, long ldv, long vstride),
                (m, x, C, H, W, tile0, ntiles, c0, c1, v, ldv, vstride))

// ---- output: y = Aᵀ M A + bias ----

PD_INLINE void output_impl(const int m, const float *mm, long ldm, long mstride, int mo0, int O, int o0, int o1,
                           const float *bias, float *y, int H, int W, long tile0, long ntiles) {
    enum { MAXA = 6, MAXM = 4 };
    const int A = m + 2;
    const int tilesY = (H + m - 1) / m, tilesX = (W + m - 1) / m;
    const long HW = (long)H * W;
    const int wide = PD_WINOGRAD_WIDE;
    long b; int ty, tx;
    first_tile(tile0, tilesY, tilesX, &b, &ty, &tx);
    float t[MAXM * MAXA * LANES] ALIGNED, out[MAXM * MAXM * LANES] ALIGNED;
    lane_tile lt[CHUNK * LANES];
    int run[CHUNK];
    for (long chunk0 = 0; chunk0 < ntiles; chunk0 += CHUNK * LANES) {
        const long left = ntiles - chunk0;
        const int groups = (int)(left < CHUNK * LANES ? (left + LANES - 1) / LANES : CHUNK);
        place_lanes(lt, run, groups, left, m, 0, m, H, W, (long)O * HW, tilesY, tilesX, &b, &ty, &tx);
        for (int o = o0; o < o1; o++) {
            const float *bo = bias ? bias + o : NULL;
            for (int g = 0; g < groups; g++) {
                const lane_tile *gl = lt + g * LANES;
                const long col = chunk0 + (long)g * LANES;
                // Columns: t[i][j] = Σ_k Aᵀ[i][k] M[k][j]; rows: out[i][l] = Σ_j Aᵀ[l][j] t[i][j] + bias.
                for (int j = 0; j < A; j++) {
                    const float *src = mm + j * mstride + (long)(o - mo0) * ldm + col;
                    if (A == 6) at6(src, A * mstride, t + j * LANES, A * LANES, NULL);
                    else at4(src, A * mstride, t + j * LANES, A * LANES, NULL);
                }
                for (int i = 0; i < m; i++) {
                    if (A == 6) at6(t + i * A * LANES, LANES, out + i * m * LANES, LANES, bo);
                    else at4(t + i * A * LANES, LANES, out + i * m * LANES, LANES, bo);
                }
                // Scatter each lane's m×m block; edge tiles keep only the rows and columns inside.
                if (wide && run[g]) {
                    float *const plane[2] = {y + gl[0].image + (long)o * HW, y + gl[8].image + (long)o * HW};
                    const int y0[2] = {gl[0].y0, gl[8].y0}, x0[2] = {gl[0].x0, gl[8].x0};
                    scatter_group_avx512(m, plane, y0, x0, H, W, out);
                    continue;
                }
                for (int l = 0; l < LANES; l++) {
                    const lane_tile p = gl[l];
                    if (p.kind == 0) continue;
                    float *dst = y + p.image + (long)o * HW + (long)p.y0 * W + p.x0;
                    const int rows = H - p.y0 < m ? H - p.y0 : m, cols = W - p.x0 < m ? W - p.x0 : m;
                    for (int r = 0; r < rows; r++)
                        for (int k = 0; k < cols; k++) dst[(long)r * W + k] = out[(r * m + k) * LANES + l];
                }
            }
        }
    }
}

PD_INLINE void output_body(int m, const float *mm, long ldm, long mstride, int mo0, int O, int o0, int o1,
                           const float *bias, float *y, int H, int W, long tile0, long ntiles) {
    if (m == 4) output_impl(4, mm, ldm, mstride, mo0, O, o0, o1, bias, y, H, W, tile0, ntiles);
    else output_impl(2, mm, ldm, mstride, mo0, O, o0, o1, bias, y, H, W, tile0, ntiles);
}
PD_MULTIVERSION(pd_winograd_output, output_body,
                (int m, const float *mm, long ldm, long mstride, int mo0, int O, int o0, int o1, const float *bias,
                 float *y, int H, int W, long tile0, long ntiles),
                (m, mm, ldm, mstride, mo0, O, o0, o1, bias, y, H, W, tile0, ntiles))

// ---- narrow products: M_ξ = U_ξ V_ξ for a block of at most 64 tiles ----
// With so few columns, sgemm spends its time packing U (α²·O·C floats, 4× the weight for
// F(4×4)): 1280→1280 at 8×8, batch 2, ran at 37 GFLOP/s. Here U streams through once, each
// element broadcast against a row of V_ξ (C × 16q floats, in L2), into R×q accumulators.

PD_INLINE void narrow_impl(const int q, const float *u, int O, int C, const float *v, long ldv,
                           long vstride, float *mm, long ldm, long mstride, int xi0, int xi1) {
    enum { L = 16, KC = 128 };
    const int R = q == 1 ? 8 : q == 2 ? 4 : 2;  // rows per pass: 8 accumulators (6 for q = 3)
    for (int xi = xi0; xi < xi1; xi++) {
        const float *vx = v + xi * vstride;
        const float *ux = u + (long)xi * O * C;
        float *mx = mm + xi * mstride;
        for (int o = 0; o < O; o += R) {
            const int rows = O - o < R ? O - o : R;
            // Sums over KC channels at a time, added into M: one running sum over all C (up to
            // 2560) had 2–3× the rounding error of sgemm's blocked sums.
            for (int c0 = 0; c0 < C; c0 += KC) {
                const int c1 = C - c0 < KC ? C : c0 + KC;
                float acc[8][4 * L];
                for (int r = 0; r < R; r++)
                    for (int j = 0; j < q * L; j++) acc[r][j] = 0.0f;
                if (rows == R) {
                    for (int c = c0; c < c1; c++) {
                        const float *vr = vx + (long)c * ldv;
                        for (int r = 0; r < R; r++) {
                            const float a = ux[(long)(o + r) * C + c];
                            for (int j = 0; j < q * L; j++) acc[r][j] += a * vr[j];
                        }
                    }
                } else {
                    for (int c = c0; c < c1; c++) {
                        const float *vr = vx + (long)c * ldv;
                        for (int r = 0; r < rows; r++) {
                            const float a = ux[(long)(o + r) * C + c];
                            for (int j = 0; j < q * L; j++) acc[r][j] += a * vr[j];
                        }
                    }
                }
                for (int r = 0; r < rows; r++) {
                    float *dst = mx + (long)(o + r) * ldm;
                    if (c0 == 0) for (int j = 0; j < q * L; j++) dst[j] = acc[r][j];
                    else for (int j = 0; j < q * L; j++) dst[j] += acc[r][j];
                }
            }
        }
    }
}

PD_INLINE void narrow_body(int cols, const float *u, int O, int C, const float *v, long ldv, long vstride,
                           float *mm, long ldm, long mstride, int xi0, int xi1) {
    switch (cols) {
    case 16: narrow_impl(1, u, O, C, v, ldv, vstride, mm, ldm, mstride, xi0, xi1); break;
    case 32: narrow_impl(2, u, O, C, v, ldv, vstride, mm, ldm, mstride, xi0, xi1); break;
    case 48: narrow_impl(3, u, O, C, v, ldv, vstride, mm, ldm, mstride, xi0, xi1); break;
    default: narrow_impl(4, u, O, C, v, ldv, vstride, mm, ldm, mstride, xi0, xi1); break;
    }
}
PD_MULTIVERSION(pd_winograd_multiply_narrow, narrow_body,
                (int cols, const float *u, int O, int C, const float *v, long ldv, long vstride, float *mm,
                 long ldm, long mstride, int xi0, int xi1),
                (cols, u, O, C, v, ldv, vstride, mm, ldm, mstride, xi0, xi1))

// ---- weights: U = G g Gᵀ ----
// The same arithmetic in both functions, in double and in the same order, so that U transformed
// per call (pd_winograd_rows_transform) has the bits of U transformed once (pd_winograd_weight).

static const double G4[6][3] = {
    {1.0 / 2, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {1.0 / 6, -1.0 / 6, 1.0 / 6},
    {1.0 / 30, 1.0 / 15, 2.0 / 15}, {-2.0 / 15, 1.0 / 15, -1.0 / 30}, {0, 0, 1.0 / 2}};
static const double G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};

void pd_winograd_weight(int m, const float *w, int O, int C, long p0, long p1, float *u) {
    const int A = m + 2;
    const double(*G)[3] = m == 4 ? G4 : G2;
    for (long p = p0; p < p1; p++) {
        const float *g = w + p * 9;
        const long o = p / C, c = p % C;
        double gt[6][3];  // G g
        for (int i = 0; i < A; i++)
            for (int k = 0; k < 3; k++)
                gt[i][k] = G[i][0] * g[k] + G[i][1] * g[3 + k] + G[i][2] * g[6 + k];
        for (int i = 0; i < A; i++)
            for (int j = 0; j < A; j++) {
                const double s = gt[i][0] * G[j][0] + gt[i][1] * G[j][1] + gt[i][2] * G[j][2];
                u[((long)(i * A + j) * O + o) * C + c] = (float)s;
            }
    }
}

// ---- per call: U a block of output rows at a time (see winograd.h) ----
// For rows [o0, o0 + R) and each row i of the α×α transform: U_ξ [R][C] for the row's α positions
// ξ = (i, j) from the weight's planes (G g for row i in double, then each j: the operations and
// order of pd_winograd_weight, no FMA contraction, so the bits it gives), multiplied while in
// cache. U exists for α positions of R rows only, never whole (4× the weight).

enum { FUSED_KC = 128 };

// M [R][ldm] (+)= U [R][C] · V [C][ldv] over columns [0, cols): blocks of RB rows × Q·16 columns
// of register accumulators, over FUSED_KC channels at a time (V's block stays in L1 while U's rows
// stream past); each block's sums are added into M (as pd_winograd_multiply_narrow: one running sum
// over all C had 2–3× the rounding error of sgemm's blocked sums). AVX-512 (32 registers) takes
// 8 × 32 (16 accumulators); AVX2 and the baseline (16) 4 × 16 (8 accumulators). At AVX2, all the
// UNet's shapes once: 8 × 32 702 ms (spilled), 4 × 32 722 ms, 4 × 16 646 ms (sgemm on U held: 395).
#define FUSED_MULTIPLY(NAME, RB, Q)                                                                    \
    PD_INLINE void NAME(const float *restrict u, int R, int C, const float *restrict v, long ldv, int cols,  \
                        float *restrict mm, long ldm) {                                                \
        enum { L = 16 };                                                                               \
        for (int col = 0; col < cols; col += Q * L) {                                                  \
            const int q = cols - col >= Q * L ? Q : 1;                                                 \
            for (int c0 = 0; c0 < C; c0 += FUSED_KC) {                                                 \
                const int c1 = C - c0 < FUSED_KC ? C : c0 + FUSED_KC;                                  \
                for (int r0 = 0; r0 < R; r0 += RB) {                                                   \
                    const float *ur = u + (long)r0 * C;                                                \
                    float acc[RB][Q * L];                                                              \
                    for (int r = 0; r < RB; r++)                                                       \
                        for (int j = 0; j < Q * L; j++) acc[r][j] = 0.0f;                              \
                    if (q == Q) {                                                                      \
                        for (int c = c0; c < c1; c++) {                                                \
                            const float *vr = v + (long)c * ldv + col;                                 \
                            for (int r = 0; r < RB; r++) {                                             \
                                const float a = ur[(long)r * C + c];                                   \
                                for (int j = 0; j < Q * L; j++) acc[r][j] += a * vr[j];                \
                            }                                                                          \
                        }                                                                              \
                    } else {                                                                           \
                        for (int c = c0; c < c1; c++) {                                                \
                            const float *vr = v + (long)c * ldv + col;                                 \
                            for (int r = 0; r < RB; r++) {                                             \
                                const float a = ur[(long)r * C + c];                                   \
                                for (int j = 0; j < L; j++) acc[r][j] += a * vr[j];                    \
                            }                                                                          \
                        }                                                                              \
                    }                                                                                  \
                    for (int r = 0; r < RB; r++) {                                                     \
                        float *dst = mm + (long)(r0 + r) * ldm + col;                                  \
                        if (c0 == 0) for (int j = 0; j < q * L; j++) dst[j] = acc[r][j];               \
                        else for (int j = 0; j < q * L; j++) dst[j] += acc[r][j];                      \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    }
FUSED_MULTIPLY(fused_multiply_8x32, 8, 2)
FUSED_MULTIPLY(fused_multiply_4x16, 4, 1)

typedef double pd_d8 __attribute__((ext_vector_type(8)));
typedef float pd_f8 __attribute__((ext_vector_type(8)));

// Eight channels of a plane from p (past n, zeros). Through a pointer: a by-value 512-bit vector
// would change the calling convention of the AVX2 and baseline copies (-Wpsabi).
PD_INLINE void load8(pd_d8 *out, const float *p, int n) {
    pd_f8 x = 0.0f;
    if (n == 8) __builtin_memcpy(&x, p, sizeof x);
    else for (int l = 0; l < n; l++) x[l] = p[l];
    *out = __builtin_convertvector(x, pd_d8);
}

// The rows' weights as planes [9][R][C] (kernel tap k = 3·row + column), so that the transform
// loads eight channels of a tap at once; the weight itself stays as the checkpoint has it.
void pd_winograd_rows_planes(const float *w, int C, int o0, int R, int rows, float *planes) {
    const long plane = (long)R * C;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < C; c++) {
            const float *g = w + ((long)(o0 + r) * C + c) * 9;
            for (int k = 0; k < 9; k++) planes[k * plane + (long)r * C + c] = g[k];
        }
}

// U_(i, j) [R][C] at u + j·R·C for j < α, eight channels at a time (one per double lane); rows
// past `rows` are zeros.
PD_INLINE void rows_transform_impl(const int m, const float *planes, int C, int R, int rows, int i, float *u) {
#pragma clang fp contract(off)
    const int A = m + 2;
    const long plane = (long)R * C;
    const double(*G)[3] = m == 4 ? G4 : G2;
    for (int r = 0; r < R; r++) {
        if (r >= rows) {
            for (int j = 0; j < A; j++)
                for (int c = 0; c < C; c++) u[((long)j * R + r) * C + c] = 0.0f;
            continue;
        }
        const float *g = planes + (long)r * C;
        for (int c0 = 0; c0 < C; c0 += 8) {
            const int n = C - c0 < 8 ? C - c0 : 8;
            pd_d8 gt[3], g0, g1, g2;
            for (int k = 0; k < 3; k++) {
                load8(&g0, g + k * plane + c0, n);
                load8(&g1, g + (3 + k) * plane + c0, n);
                load8(&g2, g + (6 + k) * plane + c0, n);
                gt[k] = G[i][0] * g0 + G[i][1] * g1 + G[i][2] * g2;
            }
            for (int j = 0; j < A; j++) {
                const pd_f8 x = __builtin_convertvector(gt[0] * G[j][0] + gt[1] * G[j][1] + gt[2] * G[j][2], pd_f8);
                float *dst = u + ((long)j * R + r) * C + c0;
                if (n == 8) __builtin_memcpy(dst, &x, sizeof x);
                else for (int l = 0; l < n; l++) dst[l] = x[l];
            }
        }
    }
}

PD_INLINE void rows_transform_body(int m, const float *planes, int C, int R, int rows, int i, float *u) {
    if (m == 4) rows_transform_impl(4, planes, C, R, rows, i, u);
    else rows_transform_impl(2, planes, C, R, rows, i, u);
}
PD_MULTIVERSION(pd_winograd_rows_transform, rows_transform_body,
                (int m, const float *planes, int C, int R, int rows, int i, float *u),
                (m, planes, C, R, rows, i, u))

PD_INLINE void rows_multiply_body(const float *u, int R, int C, const float *v, long ldv, int cols, float *mm, long ldm) {
    if (PD_WINOGRAD_WIDE) fused_multiply_8x32(u, R, C, v, ldv, cols, mm, ldm);
    else fused_multiply_4x16(u, R, C, v, ldv, cols, mm, ldm);
}
PD_MULTIVERSION(pd_winograd_rows_multiply, rows_multiply_body,
                (const float *u, int R, int C, const float *v, long ldv, int cols, float *mm, long ldm),
                (u, R, C, v, ldv, cols, mm, ldm))
