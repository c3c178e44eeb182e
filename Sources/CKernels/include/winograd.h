#ifndef PAREIDOLIA_WINOGRAD_H
#define PAREIDOLIA_WINOGRAD_H
// Winograd F(m×m, 3×3) convolution, stride 1, padding 1, m = 2 or 4 (tile side α = m + 2):
// y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A per m×m output tile, summed over input channels in the
// transform domain, where it is α² independent matrix products (done by the caller's GEMM).
//
// Tiles are numbered over the whole batch: t = (b · tilesY + ty) · tilesX + tx, with
// tilesY = ceil(H / m), tilesX = ceil(W / m). Tile (ty, tx) writes output rows [m·ty, m·ty + m)
// and reads input rows [m·ty − 1, m·ty + m + 1) (likewise columns); what lies outside the image
// reads as zero, and edge tiles write only their part inside it.
//
// Transform-domain layouts (ξ = i·α + j, the position in the α×α tile):
//   U [α²][O][C]      transformed weights
//   V_ξ [C][ldv] at v + ξ·vstride   transformed input tiles, tile t at column t − tile0
//   M_ξ [O][ldm] at m + ξ·mstride   products U_ξ · V_ξ, same columns
// so that each M_ξ[O, T] = U_ξ[O, C] · V_ξ[C, T] is one row-major sgemm. The transforms touch all
// α² matrices at once: a vstride (mstride) of C·ldv (O·ldm) plus an odd number of cache lines
// keeps those α² streams off a single cache set (with power-of-two sizes they would all alias).
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Tiles are transformed in groups of this many (one per vector lane): V's ldv must be at least
// ntiles rounded up to a multiple of it (the columns past ntiles receive zeros' transforms).
#define PD_WINOGRAD_LANES 16

// U for the (o, c) pairs p = o·C + c in [p0, p1) of w [O, C, 3, 3]; computed in double.
void pd_winograd_weight(int m, const float *w, int O, int C, long p0, long p1, float *u);

// Per call, U for a block of R output rows (R a multiple of 8; rows ≤ R of them real) from the
// weight w [O, C, 3, 3], with the bits pd_winograd_weight gives, α positions at a time, never held
// whole: pd_winograd_rows_planes reorders the rows' weights into planes [9][R][C] (planes[k][r][c]
// = w[o0 + r][c][k / 3][k % 3]); pd_winograd_rows_transform writes U_(i, j) [R][C] at u + j·R·C
// for each j of transform row i (rows past `rows` zeros); pd_winograd_rows_multiply gives
// M [R][cols] = U_ξ [R][C] · V_ξ [C][ldv] (cols a multiple of 16, ≤ ldv and ldm) while U_ξ is in
// cache — the caller may use sgemm for wide blocks instead.
void pd_winograd_rows_planes(const float *w, int C, int o0, int R, int rows, float *planes);
void pd_winograd_rows_transform(int m, const float *planes, int C, int R, int rows, int i, float *u);
void pd_winograd_rows_multiply(const float *u, int R, int C, const float *v, long ldv, int cols, float *mm, long ldm);

// V columns for tiles [tile0, tile0 + ntiles) and channels [c0, c1) of x [B, C, H, W].
void pd_winograd_input(int m, const float *x, int C, int H, int W, long tile0, long ntiles,
                       int c0, int c1, float *v, long ldv, long vstride);

// Output channels [o0, o1) of tiles [tile0, tile0 + ntiles) into y [B, O, H, W], from M (channel
// o in row o − mo0 of each M_ξ), plus bias[o] (bias may be NULL).
void pd_winograd_output(int m, const float *mm, long ldm, long mstride, int mo0, int O, int o0, int o1,
                        const float *bias, float *y, int H, int W, long tile0, long ntiles);

// M_ξ = U_ξ · V_ξ for ξ in [xi0, xi1), all `cols` columns (16, 32, 48 or 64, ≤ ldv and ldm): the
// product for narrow blocks, where sgemm would mostly pack U. U as from pd_winograd_weight.
void pd_winograd_multiply_narrow(int cols, const float *u, int O, int C, const float *v, long ldv,
                                 long vstride, float *mm, long ldm, long mstride, int xi0, int xi1);

#ifdef __cplusplus
}
#endif
#endif
