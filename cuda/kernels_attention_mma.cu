/* The flash attention on tensor cores through mma.sync (mma_sync.cuh),
 * FlashAttention-2's way: the backend's attention, forward and backward,
 * when products are bf16 or fp16, a layer is all global or all local (not
 * hybrid) and the head size is at most 128 (fa_use_mma);
 * kernels_attention_tc.cu (WMMA) does the rest.  The forward first; the
 * backward below says what it does differently.
 *
 * What it saves over the WMMA forward: there, a key tile's scores go
 * through shared memory (fp32) to be masked and exponentiated, P goes
 * back through it (bf16) to the second product, and P V through it again
 * (fp32) into the registers that hold O, with a barrier between each.
 * Here a warp owns 16 query rows and everything about them stays in its
 * registers: the scores S = Q Kᵀ as mma's output fragments, the online
 * softmax on them (a row is spread over the 4 lanes of a quad: two
 * shuffles reduce it), P packed to bf16 straight into the A fragments of
 * P V (mma_sync.cuh: the output layout of two 16 x 8 products side by
 * side is the A layout of a 16 x 16 one), and O as output fragments.
 * Shared memory holds only the block's Q and one key tile's K and V,
 * read with ldmatrix (V transposed by ldmatrix.trans).  Two barriers a
 * key tile, around the tile's load.
 *
 * The kernels below run where the pipelined ones further down do not (or
 * with DSK_CUDA_ATTN=mma or mma8).  A block is W warps (4, or 8 with
 * DSK_CUDA_ATTN=mma8) and 16 W query
 * rows of one head (fa_qtile_of: the last tiles first); a key tile is
 * MMA_BC keys.  8 warps read each key tile once for twice the rows (half
 * the traffic from L2) but fit fewer blocks an SM (at heads of 128 on an
 * H100, by registers: one of 8 warps, three of 4): which is faster is the
 * GPU's to say (attn_bench prints both).  Rows
 * of shared memory are padded to HDP + 8 (272 bytes at HDP 128): the 8
 * rows an ldmatrix tile names then start in 8 different 16-byte bank
 * groups.  Scores are scaled by log2(e) / sqrt(hd) so that exp2f is the
 * exponential; lse is put back in natural log.  Masks, the first key of
 * each row and the last (the row itself) are the other kernels'
 * (attention_tiles.cuh); sums run in a fixed order, the same bits on
 * every run. */
#include <algorithm>
#include <type_traits>

#include "attention_tiles.cuh"
#include "mma_sync.cuh"

typedef __nv_bfloat16 bf16;

/* log2(e) and ln(2): scores and lse go between natural and log2 units. */
static constexpr float MMA_LOG2E = 1.4426950408889634f, MMA_LN2 = 0.69314718056f;

/* Keys a tile of the forward and of dQ (their loops' step; dQ's own at
 * 8 warps and heads of 128, mma_dq_smem). */
enum { MMA_BC = 64 };

/* Lane l's row address for an ldmatrix.x4 (mma_sync.cuh) in a bf16 tile
 * of row stride ld, at the 16 x 16 block whose top left is `at`:
 *   mma_rows_a   the block as an A fragment (rows l % 16, columns
 *                8 (l / 16): registers a0 .. a3);
 *   mma_rows_bt  the block's rows as the columns of B (B[k][n] =
 *                tile[n][k], as K is for Q Kᵀ): registers b0, b1 of
 *                columns 0-7 of B, then b0, b1 of columns 8-15;
 *   mma_rows_b   the block as B itself (B[k][n] = tile[k][n], as V is
 *                for P V), through ldmatrix.trans: the same registers. */
__device__ __forceinline__ const bf16 *mma_rows_a(const bf16 *at, int ld, int lane)
{
    return at + (lane & 15) * ld + 8 * (lane >> 4);
}
__device__ __forceinline__ const bf16 *mma_rows_bt(const bf16 *at, int ld, int lane)
{
    return at + ((lane & 7) + 8 * (lane >> 4)) * ld + 8 * ((lane >> 3) & 1);
}
__device__ __forceinline__ const bf16 *mma_rows_b(const bf16 *at, int ld, int lane)
{
    return at + ((lane & 7) + 8 * ((lane >> 3) & 1)) * ld + 8 * (lane >> 4);
}

/* The A fragment of a 16 x 16 block from the output fragments of its
 * two 16 x 8 halves (columns 0-7 in c0, 8-15 in c1), rounded to bf16. */
__device__ __forceinline__ void mma_c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4])
{
    a[0] = mma_pack_bf16(c0[0], c0[1]);
    a[1] = mma_pack_bf16(c0[2], c0[3]);
    a[2] = mma_pack_bf16(c1[0], c1[1]);
    a[3] = mma_pack_bf16(c1[2], c1[3]);
}

template <int N> __device__ __forceinline__ void mma_zero(float (&c)[N][4])
{
#pragma unroll
    for (int n = 0; n < N; n++)
        c[n][0] = c[n][1] = c[n][2] = c[n][3] = 0;
}
template <int M, int N> __device__ __forceinline__ void mma_zero(float (&c)[M][N][4])
{
#pragma unroll
    for (int mi = 0; mi < M; mi++)
        mma_zero(c[mi]);
}

/* A warp's M blocks of 16 rows as one (M = 1) of the wider kernels'
 * arrays. */
template <int N> __device__ __forceinline__ float (&mma_one(float (&c)[N][4]))[1][N][4]
{
    return reinterpret_cast<float (&)[1][N][4]>(c);
}

/* Elements d and d + 1 (d even) of a row at g_out + row, those below hd:
 * one 8-byte store when both are and the address allows. */
__device__ __forceinline__ void mma_put_pair(float *g_out, size_t row, int d, int hd, float y0, float y1,
                                             dsk_half_out g_h)
{
    if (d + 1 < hd && ((row + d) & 1) == 0) {
        *(float2 *)(g_out + row + d) = make_float2(y0, y1);
        g_h.put(row + d, y0);
        g_h.put(row + d + 1, y1);
        return;
    }
    if (d < hd) {
        g_out[row + d] = y0;
        g_h.put(row + d, y0);
    }
    if (d + 1 < hd) {
        g_out[row + d + 1] = y1;
        g_h.put(row + d + 1, y1);
    }
}

/* acc[m][n] += A_m Bᵀ over K (a multiple of 16): A_m the 16 rows of `a`
 * from row 16 m (row stride lda), Bᵀ's 8 N rows from `bt` (row stride
 * ldb); acc[m][n] is columns 8n .. 8n + 7 of A_m's rows (S = Q Kᵀ: a the
 * warp's rows of Q, bt K).  Each fragment of B is read once for all M
 * blocks of A: at M = 2 half the shared-memory reads a product. */
template <int M, int N, int K>
__device__ __forceinline__ void mma_abt(float (&acc)[M][N][4], const bf16 *a, int lda, const bf16 *bt, int ldb,
                                        int lane)
{
#pragma unroll
    for (int k = 0; k < K; k += 16) {
        uint32_t fa[M][4];
#pragma unroll
        for (int mi = 0; mi < M; mi++)
            mma_ldmatrix_x4(fa[mi], mma_rows_a(a + 16 * mi * lda + k, lda, lane));
#pragma unroll
        for (int np = 0; np < N / 2; np++) {
            uint32_t fb[4];
            mma_ldmatrix_x4(fb, mma_rows_bt(bt + 16 * np * ldb + k, ldb, lane));
#pragma unroll
            for (int mi = 0; mi < M; mi++) {
                mma_bf16_16816(acc[mi][2 * np], fa[mi], fb[0], fb[1]);
                mma_bf16_16816(acc[mi][2 * np + 1], fa[mi], fb[2], fb[3]);
            }
        }
    }
}

/* c0 = A0 B0ᵀ and c1 = A1 B1ᵀ from zero, all of row stride ld: the
 * backward's two score products (S and dP, or Sᵀ and dPᵀ). */
template <int M, int N, int K>
__device__ __forceinline__ void mma_abt_pair(float (&c0)[M][N][4], const bf16 *a0, const bf16 *bt0,
                                             float (&c1)[M][N][4], const bf16 *a1, const bf16 *bt1, int ld, int lane)
{
    mma_zero(c0);
    mma_zero(c1);
    mma_abt<M, N, K>(c0, a0, ld, bt0, ld, lane);
    mma_abt<M, N, K>(c1, a1, ld, bt1, ld, lane);
}

/* acc[m][n] += P_m B: P_m the 16 x K output fragments p[m][K / 8] of an
 * earlier product (rounded to bf16 as they become A), B [K][8 N]
 * row-major from `b` (row stride ldb; O += P V: b is V); B's fragments
 * read once for all M. */
template <int M, int N, int K>
__device__ __forceinline__ void mma_cb(float (&acc)[M][N][4], const float (&p)[M][K / 8][4], const bf16 *b, int ldb,
                                       int lane)
{
#pragma unroll
    for (int k = 0; k < K / 16; k++) {
        uint32_t fa[M][4];
#pragma unroll
        for (int mi = 0; mi < M; mi++)
            mma_c_to_a(fa[mi], p[mi][2 * k], p[mi][2 * k + 1]);
#pragma unroll
        for (int np = 0; np < N / 2; np++) {
            uint32_t fb[4];
            mma_ldmatrix_x4_trans(fb, mma_rows_b(b + 16 * k * ldb + 16 * np, ldb, lane));
#pragma unroll
            for (int mi = 0; mi < M; mi++) {
                mma_bf16_16816(acc[mi][2 * np], fa[mi], fb[0], fb[1]);
                mma_bf16_16816(acc[mi][2 * np + 1], fa[mi], fb[2], fb[3]);
            }
        }
    }
}

/* The online softmax of one row's part of a key tile (keys j0 ..): s[n]
 * the row's scores (elements 2r, 2r + 1; keys 8n + 2t + e), first and
 * last the keys it sees (MASK: else all of them), m and l its running
 * maximum (log2 units) and sum, o its output sums.  Masks, takes the
 * tile's maximum over the quad, rescales what came before and puts
 * P = 2^(x - max) in place of S. */
template <int KEY_TILES, int DIM_TILES, bool MASK>
__device__ __forceinline__ void mma_softmax_row(float (&s)[KEY_TILES][4], int r, int j0, int first, int last,
                                                float &m, float &l, float (&o)[DIM_TILES][4], float scale_log2,
                                                int t)
{
    float mt = -INFINITY;
#pragma unroll
    for (int n = 0; n < KEY_TILES; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int j = j0 + 8 * n + 2 * t + e;
            float x = s[n][2 * r + e] * scale_log2;
            if (MASK)
                x = j >= first && j <= last ? x : -INFINITY;
            s[n][2 * r + e] = x;
            mt = fmaxf(mt, x);
        }
    mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
    mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
    const float mn = fmaxf(m, mt);
    /* Nothing seen yet: corr 0 (l and o are 0).  Nothing seen so far
     * nor here: mn -inf, and every p below 0. */
    const float corr = m == -INFINITY ? 0.0f : exp2f(m - mn);
    float rs = 0;
#pragma unroll
    for (int n = 0; n < KEY_TILES; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float x = s[n][2 * r + e];
            const float p = x == -INFINITY ? 0.0f : exp2f(x - mn);
            s[n][2 * r + e] = p;
            rs += p;
        }
    rs += __shfl_xor_sync(0xffffffffu, rs, 1);
    rs += __shfl_xor_sync(0xffffffffu, rs, 2);
    l = l * corr + rs;
    m = mn;
#pragma unroll
    for (int n = 0; n < DIM_TILES; n++) {
        o[n][2 * r] *= corr;
        o[n][2 * r + 1] *= corr;
    }
}

/* One key tile (keys j0 ..) of the forward for a warp's M blocks of 16
 * query rows: S = Q Kᵀ, the online softmax on it, O += P V.  keys(mi, r):
 * the keys [x, y] row r of the lane's two in block mi sees
 * (mma_keys_in_*); m, l: their running maximum (log2 units) and sum; o:
 * their output sums (o[mi][n][2r + e]: dim 8n + 2t + e).  SKIP_FULL: a
 * tile every row of the warp sees whole (below the diagonal, past the
 * documents' and windows' starts: most tiles of a long sequence) skips
 * the mask; its arithmetic is the same, so are the bits. */
template <int HDP, int M, bool SKIP_FULL, typename Keys>
__device__ __forceinline__ void mma_fwd_tile(const bf16 *q_warp, const bf16 *Ks, const bf16 *Vs, int j0,
                                             const Keys &keys, float (&m)[M][2], float (&l)[M][2],
                                             float (&o)[M][HDP / 8][4], float scale_log2, int lane)
{
    constexpr int LD = HDP + 8, KEY_TILES = MMA_BC / 8, DIM_TILES = HDP / 8;
    const int t = lane & 3;
    /* S = Q Kᵀ: s[mi][n] is keys 8n .. 8n + 7 of the tile. */
    float s[M][KEY_TILES][4];
    mma_zero(s);
    mma_abt<M, KEY_TILES, HDP>(s, q_warp, LD, Ks, LD, lane);

    int full = SKIP_FULL;
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < 2; r++)
        {
            const int2 seen = keys(mi, r);
            full &= j0 >= seen.x && j0 + MMA_BC - 1 <= seen.y;
        }
    if (SKIP_FULL && __all_sync(0xffffffffu, full)) {
#pragma unroll
        for (int mi = 0; mi < M; mi++)
#pragma unroll
            for (int r = 0; r < 2; r++)
                mma_softmax_row<KEY_TILES, DIM_TILES, false>(s[mi], r, j0, 0, 0, m[mi][r], l[mi][r], o[mi],
                                                             scale_log2, t);
    } else {
#pragma unroll
        for (int mi = 0; mi < M; mi++)
#pragma unroll
            for (int r = 0; r < 2; r++) {
                const int2 seen = keys(mi, r);
                mma_softmax_row<KEY_TILES, DIM_TILES, true>(s[mi], r, j0, seen.x, seen.y, m[mi][r], l[mi][r], o[mi],
                                                            scale_log2, t);
            }
    }

    /* O += P V. */
    mma_cb<M, DIM_TILES, MMA_BC>(o, s, Vs, LD, lane);
}

/* The forward's end for a warp's M blocks of 16 rows from row0: out =
 * O / l, lse = m ln 2 + ln l (a row that saw nothing, which cannot
 * happen as j = i is always seen: 0 and -inf). */
template <int HDP, int M>
__device__ __forceinline__ void mma_fwd_out(float *out, float *lse, const float (&o)[M][HDP / 8][4],
                                            const float (&m)[M][2], const float (&l)[M][2], size_t bh, int b, int T,
                                            size_t qs, int h, int hd, int row0, int lane, dsk_half_out out_h)
{
    constexpr int DIM_TILES = HDP / 8;
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = row0 + 16 * mi + g + 8 * r;
            if (i >= T)
                continue;
            const float inv = l[mi][r] > 0 ? 1.0f / l[mi][r] : 0.0f;
            if (t == 0)
                lse[bh * T + i] = l[mi][r] > 0 ? m[mi][r] * MMA_LN2 + logf(l[mi][r]) : -INFINITY;
            const size_t row = ((size_t)b * T + i) * qs + (size_t)h * hd;
#pragma unroll
            for (int n = 0; n < DIM_TILES; n++)
                mma_put_pair(out, row, 8 * n + 2 * t, hd, o[mi][n][2 * r] * inv, o[mi][n][2 * r + 1] * inv, out_h);
        }
}

/* keys(mi, r): the keys [x, y] that row r of the lane's two in block mi
 * of its warp's M sees (r = 0: row g of the block's 16, 1: g + 8), of a
 * block of BR rows from i0 (nothing: y = -1): from the rows' first keys
 * in shared memory each time, where registers are short (M = 2). */
template <int BR, int M> struct mma_keys_in_smem {
    const int *first;
    int i0, T, row0;
    __device__ __forceinline__ mma_keys_in_smem(const int (*first_sh)[BR], int local, int i0_, int T_, int warp,
                                                int lane)
        : first(first_sh[local]), i0(i0_), T(T_), row0(16 * M * warp + (lane >> 2))
    {
    }
    __device__ __forceinline__ int2 operator()(int mi, int r) const
    {
        const int row = row0 + 16 * mi + 8 * r;
        return make_int2(first[row], i0 + row < T ? i0 + row : -1);
    }
};
/* The same for a warp of one block (M = 1), read once into registers. */
template <int BR> struct mma_keys_in_regs {
    int2 seen[2];
    __device__ __forceinline__ mma_keys_in_regs(const int (*first_sh)[BR], int local, int i0, int T, int warp,
                                                int lane)
    {
        const mma_keys_in_smem<BR, 1> at(first_sh, local, i0, T, warp, lane);
        seen[0] = at(0, 0);
        seen[1] = at(0, 1);
    }
    __device__ __forceinline__ int2 operator()(int, int r) const { return seen[r]; }
};

/* The lane's rows' running maxima (log2 units) and sums, from nothing. */
template <int M> __device__ __forceinline__ void mma_fwd_start(float (&m)[M][2], float (&l)[M][2])
{
#pragma unroll
    for (int mi = 0; mi < M; mi++)
        m[mi][0] = m[mi][1] = -INFINITY, l[mi][0] = l[mi][1] = 0;
}

/* The shared memory: Q [BR][HDP + 8], K and V [BC][HDP + 8] (bf16), then
 * the rows' first keys (int [2][BR], fa_row_masks) and their least. */
template <int HDP, int W> struct mma_fwd_smem {
    enum { LD = HDP + 8, BR = 16 * W };
    static constexpr size_t q = 0, k = q + (size_t)BR * LD * 2, v = k + (size_t)MMA_BC * LD * 2,
                            first = v + (size_t)MMA_BC * LD * 2, lo = first + (size_t)2 * BR * 4, bytes = lo + 16;
};

/* Grid: B * H * nqt blocks of 32 W threads (fa_qtile_of<16 W>).  `local`
 * 0: every row sees its document up to itself (lse into lse); 1: also
 * only the last `window` keys. */
template <int HDP, int W>
__global__ void __launch_bounds__(32 * W)
    mma_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *pos, int T,
                   int H, int KV, int hd, int local, int window, float scale_log2, int nqt, dsk_half_out out_h)
{
    typedef mma_fwd_smem<HDP, W> L;
    constexpr int LD = L::LD, BR = L::BR, THREADS = 32 * W, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Qs = (bf16 *)(mma_sm + L::q), *Ks = (bf16 *)(mma_sm + L::k), *Vs = (bf16 *)(mma_sm + L::v);
    int (*first_sh)[BR] = (int (*)[BR])(mma_sm + L::first), *lo_sh = (int *)(mma_sm + L::lo);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    fa_load_bf16<HDP, BR, THREADS>(Qs, q + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pos + (size_t)b * T, window, !local, lo_sh);
    __syncthreads();

    const mma_keys_in_regs<BR> keys(first_sh, local, i0, T, warp, lane);
    float m[1][2], l[1][2], o[1][DIM_TILES][4];
    mma_fwd_start(m, l);
    mma_zero(o);
    const bf16 *q_warp = Qs + 16 * warp * LD;

    const int kt_lo = *lo_sh / MMA_BC, kt_hi = (i_end - 1) / MMA_BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * MMA_BC;
        __syncthreads();   /* every warp is done with the previous tile's K and V */
        fa_load_bf16<HDP, MMA_BC, THREADS>(Ks, kb, ks, j0, T, hd);
        fa_load_bf16<HDP, MMA_BC, THREADS>(Vs, vb, ks, j0, T, hd);
        __syncthreads();

        mma_fwd_tile<HDP, 1, false>(q_warp, Ks, Vs, j0, keys, m, l, o, scale_log2, lane);
    }

    mma_fwd_out<HDP, 1>(out, lse, o, m, l, bh, b, T, qs, h, hd, i0 + 16 * warp, lane, out_h);
}

/* ---- the pipelined kernels (the default; DSK_CUDA_ATTN=mma runs the ones above) ----
 *
 * The same products in the same order as the kernels above (the same
 * bits), from bf16 copies of q, k, v and dO made once per call
 * (mma_to_bf16), where the kernels above read float32 and round each
 * tile as they load it, with every thread waiting for its loads.  Here
 * tiles go from global to shared memory by cp.async (mma_sync.cuh), and
 * the tiles a block walks through (the forward's and dQ's key tiles, the
 * dK/dV kernel's query tiles) are double-buffered: the next tile's copies
 * are in flight while the warps compute on this one.  Blocks of 4 warps;
 * heads whose size is a multiple of 8 (16-byte rows of 8 bf16).  More
 * shared memory a block (87 KB for the forward at heads of 128, 104 KB
 * for dQ): the launch checks what the device allows and else runs the
 * kernels above.
 *
 * DSK_CUDA_ATTN=wide runs them with M = 2: a warp owns two blocks of 16
 * query rows in the forward and dQ (blocks of 128 rows), so that each
 * fragment of K and V that ldmatrix reads from shared memory feeds two
 * products instead of one (FlashAttention-2's 128-row tiles; the
 * register budget is what limits it: 255 at heads of 128, dQ's key tiles
 * shrink to 32 to fit), and with SKIP_FULL: a tile every row of a warp
 * sees whole skips the mask's compares and selects.  Each row's sums run
 * in the same order, so the bits are the default's. */

/* Rows [r0, r_end) of a head (columns [0, hd), hd a multiple of 8) of a
 * bf16 [B, T, heads * hd] tensor (g: the head's first row, row stride
 * `stride`), as rows of HDP + 8 bf16 into `tile`, by cp.async: rows past
 * r_end and columns past hd zero.  The caller commits and waits. */
template <int HDP, int ROWS, int THREADS>
__device__ __forceinline__ void mma_tile_async(bf16 *tile, const bf16 *g, size_t stride, int r0, int r_end, int hd)
{
    constexpr int CHUNKS = HDP / 8;
    for (int x = threadIdx.x; x < ROWS * CHUNKS; x += THREADS) {
        const int r = x / CHUNKS, d = 8 * (x % CHUNKS), i = r0 + r;
        const bool in = i < r_end && d < hd;
        cp_async_16(tile + r * (HDP + 8) + d, in ? g + (size_t)i * stride + d : g, in ? 16 : 0);
    }
}

/* The forward's shared memory: Q [BR][HDP + 8] (BR = 64 M: 4 warps of M
 * blocks of 16 rows), K and V twice [MMA_BC][HDP + 8], the rows' first
 * keys and their least. */
template <int HDP, int M> struct mma_fwd_async_smem {
    enum { LD = HDP + 8, BR = 64 * M, TILE = MMA_BC * LD * 2 };
    static constexpr size_t q = 0, k = q + (size_t)BR * LD * 2, v = k + 2 * (size_t)TILE, first = v + 2 * (size_t)TILE,
                            lo = first + (size_t)2 * BR * 4, bytes = lo + 16;
};

/* Grid and arguments as mma_fwd_kernel<HDP, 4>'s, q, k, v in bf16; a
 * warp owns M blocks of 16 query rows, and SKIP_FULL as mma_fwd_tile's
 * (DSK_CUDA_ATTN=wide: 2 and true; else 1 and false). */
template <int HDP, int M, bool SKIP_FULL>
__global__ void __launch_bounds__(128)
    mma_fwd_async_kernel(float *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const int32_t *pos,
                         int T, int H, int KV, int hd, int local, int window, float scale_log2, int nqt,
                         dsk_half_out out_h)
{
    typedef mma_fwd_async_smem<HDP, M> L;
    constexpr int LD = L::LD, BR = L::BR, THREADS = 128, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Qs = (bf16 *)(mma_sm + L::q);
    bf16 *Ks[2] = {(bf16 *)(mma_sm + L::k), (bf16 *)(mma_sm + L::k + L::TILE)};
    bf16 *Vs[2] = {(bf16 *)(mma_sm + L::v), (bf16 *)(mma_sm + L::v + L::TILE)};
    int (*first_sh)[BR] = (int (*)[BR])(mma_sm + L::first), *lo_sh = (int *)(mma_sm + L::lo);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const bf16 *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    mma_tile_async<HDP, BR, THREADS>(Qs, q + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    cp_async_commit();
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pos + (size_t)b * T, window, !local, lo_sh);
    __syncthreads();

    typedef typename std::conditional<M == 1, mma_keys_in_regs<BR>, mma_keys_in_smem<BR, M>>::type Keys;
    const Keys keys(first_sh, local, i0, T, warp, lane);
    float m[M][2], l[M][2], o[M][DIM_TILES][4];
    mma_fwd_start(m, l);
    mma_zero(o);
    const bf16 *q_warp = Qs + 16 * M * warp * LD;

    const int kt_lo = *lo_sh / MMA_BC, kt_hi = (i_end - 1) / MMA_BC;
    mma_tile_async<HDP, MMA_BC, THREADS>(Ks[0], kb, ks, kt_lo * MMA_BC, T, hd);
    mma_tile_async<HDP, MMA_BC, THREADS>(Vs[0], vb, ks, kt_lo * MMA_BC, T, hd);
    cp_async_commit();
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int cur = (kt - kt_lo) & 1;
        if (kt < kt_hi) {   /* the next tile, into the buffer every warp finished with last time */
            mma_tile_async<HDP, MMA_BC, THREADS>(Ks[cur ^ 1], kb, ks, (kt + 1) * MMA_BC, T, hd);
            mma_tile_async<HDP, MMA_BC, THREADS>(Vs[cur ^ 1], vb, ks, (kt + 1) * MMA_BC, T, hd);
        }
        cp_async_commit();
        cp_async_wait<1>();   /* this tile's copies (and Q's) are in */
        __syncthreads();      /* ... everyone's */
        mma_fwd_tile<HDP, M, SKIP_FULL>(q_warp, Ks[cur], Vs[cur], kt * MMA_BC, keys, m, l, o, scale_log2, lane);
        __syncthreads();      /* every warp is done with this tile's buffer */
    }
    cp_async_wait<0>();
    mma_fwd_out<HDP, M>(out, lse, o, m, l, bh, b, T, qs, h, hd, i0 + 16 * M * warp, lane, out_h);
}

/* ---- the backward: dK, dV, then dQ, each recomputing P ----
 *
 * As the WMMA kernels: a dK/dV block per key tile, over the query tiles
 * that see it, and a dQ block per query tile, over the key tiles it
 * sees; no atomics, so the same bits on every run.  In the dK/dV kernel
 * a warp owns 16 keys and computes Sᵀ = K Qᵀ and dPᵀ = V dOᵀ, so that Pᵀ
 * and dSᵀ come out of the products as the A fragments of dV += Pᵀ dO and
 * dK += dSᵀ Q, whose sums stay in registers; the dQ kernel is the
 * forward's shape (S = Q Kᵀ, dP = dO Vᵀ, dQ += dS K).  For a query row i
 * and key j it sees, p = 2^(x - lse log2 e) with x the score in log2
 * units, and ds = p (dp - D), D = dO . O (fa_bwd_prep_kernel). */

/* The query rows of the dK/dV kernel's tiles: 32 at heads of 128, where
 * 64 would take more than 255 registers (sums of dK and dV, 64 each, and
 * Sᵀ and dPᵀ, 32 each). */
template <int HDP> struct mma_kv_rows {
    enum { BR = HDP >= 128 ? 32 : 64 };
};

/* A row's lse in log2 units for the backward: a row that saw nothing
 * (lse -inf) becomes +inf, so that every p of it is 0. */
__device__ __forceinline__ float mma_lse2(float lse) { return lse == -INFINITY ? INFINITY : lse * MMA_LOG2E; }

/* The rows [i0, i0 + BR) of a query tile, for the backward: the first key
 * each sees (INT_MAX past T), lse in log2 units (+inf for a row that saw
 * nothing, or past T: p = 0) and D. */
template <int BR> struct mma_bwd_rows {
    int first[BR];
    float lse2[BR], D[BR];
};
template <int BR, int THREADS>
__device__ __forceinline__ void mma_bwd_rows_load(mma_bwd_rows<BR> *st, int i0, int T, const int32_t *pb,
                                                  const float *lse, const float *D, size_t bhT, int local, int window)
{
    for (int r = threadIdx.x; r < BR; r += THREADS) {
        const int i = i0 + r;
        int first = INT_MAX;
        float l2 = INFINITY, d = 0;
        if (i < T) {
            first = dsk_attn_first(i, pb[i], local, window);
            l2 = mma_lse2(lse[bhT + i]);
            d = D[bhT + i];
        }
        st->first[r] = first;
        st->lse2[r] = l2;
        st->D[r] = d;
    }
}

/* p and ds of query i (first key `first`, lse2, D) and key j from the
 * unscaled score x and dp; 0 where j is not seen (MASK: else every key
 * is). */
template <bool MASK = true>
__device__ __forceinline__ void mma_grad(float x, float dp, int i, int j, int first, float lse2, float D,
                                         float scale_log2, float *p, float *ds)
{
    const float pv = !MASK || (j >= first && j <= i) ? exp2f(x * scale_log2 - lse2) : 0.0f;
    *p = pv;
    *ds = pv * (dp - D);
}

/* Rows [j0, j_end) of a warp's 16 x HDP sums (acc[n]: dims 8n ..; rows g
 * and g + 8 of the 16 starting at row r0), times mul, into a head of a
 * [B, T, heads * hd] tensor. */
template <int DIM_TILES>
__device__ __forceinline__ void mma_put_rows(float *g_out, const float (&acc)[DIM_TILES][4], float mul, int b, int T,
                                             size_t stride, int head, int hd, int r0, int r_end, int lane,
                                             dsk_half_out g_h = {NULL, 0})
{
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = r0 + g + 8 * r;
        if (i >= r_end)
            continue;
        const size_t row = ((size_t)b * T + i) * stride + (size_t)head * hd;
#pragma unroll
        for (int n = 0; n < DIM_TILES; n++)
            mma_put_pair(g_out, row, 8 * n + 2 * t, hd, acc[n][2 * r] * mul, acc[n][2 * r + 1] * mul, g_h);
    }
}

/* Pᵀ into st and dSᵀ into dpt (element (key g + 8r, query 8n + 2t + e)
 * of a dK/dV kernel's warp, as mma_dkdv_tile says). */
template <int QUERY_TILES, int BR, bool MASK>
__device__ __forceinline__ void mma_dkdv_grads(float (&st)[QUERY_TILES][4], float (&dpt)[QUERY_TILES][4],
                                               const mma_bwd_rows<BR> *rows, int i0, int j_lane, float scale_log2,
                                               int t)
{
#pragma unroll
    for (int n = 0; n < QUERY_TILES; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int c = 8 * n + 2 * t + e;
            const int first = rows->first[c];
            const float lse2 = rows->lse2[c], Dc = rows->D[c];
#pragma unroll
            for (int r = 0; r < 2; r++)
                mma_grad<MASK>(st[n][2 * r + e], dpt[n][2 * r + e], i0 + c, j_lane + 8 * r, first, lse2, Dc,
                               scale_log2, &st[n][2 * r + e], &dpt[n][2 * r + e]);
        }
}

/* DSK_CUDA_ATTN=stored: dS of a layer's backward, rounded to bf16 as dK's
 * product rounds it, kept for dQ = dS K (mma_dq_ds_kernel) so that dQ
 * does not compute S and dP again.  A head's dS is its blocks of 64
 * queries by 64 keys on and below the diagonal (qb >= kb), block (qb, kb)
 * the qb (qb + 1) / 2 + kb-th, each transposed (dSᵀ: 64 rows of keys, 64
 * queries a row), as the dK/dV kernel holds it; blocks or parts of them
 * that no dK/dV tile visits (queries that see none of their keys) are
 * never written, and dQ masks them. */
enum { MMA_DS_BLOCK = 64 };
__device__ __forceinline__ size_t mma_ds_block(size_t bh, int nb, int qb, int kb)
{
    return (bh * ((size_t)nb * (nb + 1) / 2) + (size_t)qb * (qb + 1) / 2 + kb) * (MMA_DS_BLOCK * MMA_DS_BLOCK);
}

/* A dK/dV warp's dSᵀ (dpt[n]: queries 8n .., as mma_dkdv_tile's, rows g
 * and g + 8 of its 16 keys) into its block at `blk`: keys from row key0,
 * queries from column q0; pairs of queries as one 4-byte store. */
template <int QUERY_TILES>
__device__ __forceinline__ void mma_store_dst(bf16 *blk, const float (&dpt)[QUERY_TILES][4], int key0, int q0,
                                              int lane)
{
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int n = 0; n < QUERY_TILES; n++)
#pragma unroll
        for (int r = 0; r < 2; r++)
            *(uint32_t *)(blk + (size_t)(key0 + g + 8 * r) * MMA_DS_BLOCK + q0 + 8 * n + 2 * t) =
                mma_pack_bf16(dpt[n][2 * r], dpt[n][2 * r + 1]);
}

/* One query tile (rows i0 .., BR of them; their statistics in rows) of
 * the dK/dV kernel for a warp's 16 keys (the lane's: j_lane and j_lane +
 * 8): Sᵀ = K Qᵀ and dPᵀ = V dOᵀ, Pᵀ and dSᵀ from them, dV += Pᵀ dO and
 * dK += dSᵀ Q (scaled at the end).  SKIP_FULL: as mma_fwd_tile's (every
 * query of the tile sees all 16 keys of the warp).  ds_blk: not NULL,
 * the block of dS (mma_ds_block) the tile's queries and the warp's keys
 * lie in, where dSᵀ goes too. */
template <int HDP, int BR, bool SKIP_FULL = false>
__device__ __forceinline__ void mma_dkdv_tile(const bf16 *k_warp, const bf16 *v_warp, const bf16 *Qs, const bf16 *dOs,
                                              const mma_bwd_rows<BR> *rows, int i0, int j_lane,
                                              float (&dka)[HDP / 8][4], float (&dva)[HDP / 8][4], float scale_log2,
                                              int lane, bf16 *ds_blk = NULL)
{
    constexpr int LD = HDP + 8, QUERY_TILES = BR / 8, DIM_TILES = HDP / 8;
    const int t = lane & 3;
    /* st[0][n], dpt[0][n] are queries 8n .. of the tile. */
    float st[1][QUERY_TILES][4], dpt[1][QUERY_TILES][4];
    mma_abt_pair<1, QUERY_TILES, HDP>(st, k_warp, Qs, dpt, v_warp, dOs, LD, lane);
    int full = SKIP_FULL;
    if (SKIP_FULL) {
        const int j_first = j_lane - (lane >> 2);   /* the warp's first key */
#pragma unroll
        for (int n = 0; n < QUERY_TILES; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int c = 8 * n + 2 * t + e;
                full &= rows->first[c] <= j_first && i0 + c >= j_first + 15;
            }
    }
    if (SKIP_FULL && __all_sync(0xffffffffu, full))
        mma_dkdv_grads<QUERY_TILES, BR, false>(st[0], dpt[0], rows, i0, j_lane, scale_log2, t);
    else
        mma_dkdv_grads<QUERY_TILES, BR, true>(st[0], dpt[0], rows, i0, j_lane, scale_log2, t);
    if (ds_blk)
        mma_store_dst<QUERY_TILES>(ds_blk, dpt[0], (j_lane - (lane >> 2)) % MMA_DS_BLOCK, i0 % MMA_DS_BLOCK, lane);
    mma_cb<1, DIM_TILES, BR>(mma_one(dva), st, dOs, LD, lane);
    mma_cb<1, DIM_TILES, BR>(mma_one(dka), dpt, Qs, LD, lane);
}

/* The dK/dV kernel's shared memory: K, V [BC][HDP + 8] (BC = 16 W keys,
 * 16 a warp), Q, dO [BR][HDP + 8] (bf16), the query rows' statistics. */
template <int HDP, int W> struct mma_dkdv_smem {
    enum { LD = HDP + 8, BR = mma_kv_rows<HDP>::BR, BC = 16 * W };
    static constexpr size_t k = 0, v = k + (size_t)BC * LD * 2, q = v + (size_t)BC * LD * 2,
                            dO = q + (size_t)BR * LD * 2, rows = dO + (size_t)BR * LD * 2,
                            bytes = rows + sizeof(mma_bwd_rows<BR>);
};

/* Grid: B * KV * nkt blocks of 32 W threads (fa_kvtile_of<16 W>), over
 * query tiles of mma_kv_rows<HDP>::BR rows (tile_lo, fa_tile_lo_kernel's,
 * counts in those). */
template <int HDP, int W>
__global__ void __launch_bounds__(32 * W)
    mma_dkdv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                    const float *lse, const float *D, const int *tile_lo, const int32_t *pos, int T, int H, int KV,
                    int hd, int local, int window, float scale, float scale_log2, int nqt, int nkt, dsk_half_out dv_h)
{
    typedef mma_dkdv_smem<HDP, W> L;
    constexpr int LD = L::LD, BR = L::BR, BC = L::BC, THREADS = 32 * W, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Ks = (bf16 *)(mma_sm + L::k), *Vs = (bf16 *)(mma_sm + L::v), *Qs = (bf16 *)(mma_sm + L::q),
         *dOs = (bf16 *)(mma_sm + L::dO);
    mma_bwd_rows<BR> *rows = (mma_bwd_rows<BR> *)(mma_sm + L::rows);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
    const fa_kvtile tile = fa_kvtile_of<BC>(T, H, KV, hd, nkt);
    const int32_t *pb = pos + (size_t)tile.b * T;

    fa_load_bf16<HDP, BC, THREADS>(Ks, k + (size_t)tile.b * T * tile.ks + (size_t)tile.kvh * hd, tile.ks, tile.j0, T,
                                   hd);
    fa_load_bf16<HDP, BC, THREADS>(Vs, v + (size_t)tile.b * T * tile.ks + (size_t)tile.kvh * hd, tile.ks, tile.j0, T,
                                   hd);
    /* The warp's keys: rows 16 warp .. of the tile; the lane's are g and g + 8. */
    const bf16 *k_warp = Ks + 16 * warp * LD, *v_warp = Vs + 16 * warp * LD;
    const int j_lane = tile.j0 + 16 * warp + g;
    float dka[DIM_TILES][4], dva[DIM_TILES][4];
    mma_zero(dka);
    mma_zero(dva);

    fa_each_query_tile<BR>(tile, q, dout, tile_lo, T, H, hd, nqt,
                           [&](size_t bhT, const float *qb, const float *dob, int i0, int i_end) {
        __syncthreads();   /* every warp is done with the previous tile's Q, dO and rows */
        fa_load_bf16<HDP, BR, THREADS>(Qs, qb, tile.qs, i0, i_end, hd);
        fa_load_bf16<HDP, BR, THREADS>(dOs, dob, tile.qs, i0, i_end, hd);
        mma_bwd_rows_load<BR, THREADS>(rows, i0, T, pb, lse, D, bhT, local, window);
        __syncthreads();
        mma_dkdv_tile<HDP, BR>(k_warp, v_warp, Qs, dOs, rows, i0, j_lane, dka, dva, scale_log2, lane);
    });
    const int j_end = tile.j_end;
    mma_put_rows<DIM_TILES>(dv, dva, 1.0f, tile.b, T, tile.ks, tile.kvh, hd, tile.j0 + 16 * warp, j_end, lane, dv_h);
    mma_put_rows<DIM_TILES>(dk, dka, scale, tile.b, T, tile.ks, tile.kvh, hd, tile.j0 + 16 * warp, j_end, lane);
}

/* The dQ kernels' two rows of a lane in a block of 16 (g and g + 8):
 * query i, first key (INT_MAX past T: nothing seen), lse (log2 units;
 * +inf: p = 0) and D.  A warp owns M blocks from its 16 M-th row. */
struct mma_dq_rows {
    int i[2], first[2];
    float lse2[2], D[2];
};
/* Their i and first key only (what dQ from a stored dS needs). */
template <int BR, int M>
__device__ __forceinline__ void mma_dq_rows_keys(mma_dq_rows (&rs)[M], const int (*first_sh)[BR], int local, int i0,
                                                 int warp, int lane)
{
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int x = 0; x < 2; x++) {
            const int row = 16 * (M * warp + mi) + (lane >> 2) + 8 * x;
            rs[mi].i[x] = i0 + row;
            rs[mi].first[x] = first_sh[local][row];
        }
}
template <int BR, int M>
__device__ __forceinline__ void mma_dq_rows_load(mma_dq_rows (&rs)[M], const int (*first_sh)[BR], int local,
                                                 const float *lse, const float *D, size_t bh, int i0, int T, int warp,
                                                 int lane)
{
    mma_dq_rows_keys<BR, M>(rs, first_sh, local, i0, warp, lane);
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int x = 0; x < 2; x++) {
            mma_dq_rows *r = &rs[mi];
            const int i = r->i[x];
            r->lse2[x] = INFINITY;
            r->D[x] = 0;
            if (i < T) {
                r->lse2[x] = mma_lse2(lse[bh * T + i]);
                r->D[x] = D[bh * T + i];
            }
        }
}

/* Whether every row of the warp (its M blocks' rows r) sees all the keys
 * j0 .. j0 + BC - 1 (mma_fwd_tile's SKIP_FULL); warp-uniform. */
template <int M>
__device__ __forceinline__ int mma_warp_sees_all(const mma_dq_rows (&r)[M], int j0, int BC)
{
    int full = 1;
#pragma unroll
    for (int mi = 0; mi < M; mi++)
#pragma unroll
        for (int x = 0; x < 2; x++)
            full &= j0 >= r[mi].first[x] && j0 + BC - 1 <= r[mi].i[x];
    return __all_sync(0xffffffffu, full);
}

/* dS into dp (from S in s) for a lane's two rows r of a block of 16 and
 * the keys j0 + 8n + 2t + e of a dQ tile. */
template <int KEY_TILES, bool MASK>
__device__ __forceinline__ void mma_dq_grads(const float (&s)[KEY_TILES][4], float (&dp)[KEY_TILES][4],
                                             const mma_dq_rows &r, int j0, float scale_log2, int t)
{
#pragma unroll
    for (int n = 0; n < KEY_TILES; n++)
#pragma unroll
        for (int x = 0; x < 2; x++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                float p;
                mma_grad<MASK>(s[n][2 * x + e], dp[n][2 * x + e], r.i[x], j0 + 8 * n + 2 * t + e, r.first[x],
                               r.lse2[x], r.D[x], scale_log2, &p, &dp[n][2 * x + e]);
            }
}

/* One key tile (keys j0 .., BC of them) of dQ for a warp's M blocks of
 * 16 rows: S = Q Kᵀ, dP = dO Vᵀ, dS, dQ += dS K (scaled at the end).
 * SKIP_FULL: as mma_fwd_tile's. */
template <int HDP, int BC, int M, bool SKIP_FULL>
__device__ __forceinline__ void mma_dq_tile(const bf16 *q_warp, const bf16 *do_warp, const bf16 *Ks, const bf16 *Vs,
                                            int j0, const mma_dq_rows (&r)[M], float (&dqa)[M][HDP / 8][4],
                                            float scale_log2, int lane)
{
    constexpr int LD = HDP + 8, KEY_TILES = BC / 8, DIM_TILES = HDP / 8;
    const int t = lane & 3;
    float s[M][KEY_TILES][4], dp[M][KEY_TILES][4];
    mma_abt_pair<M, KEY_TILES, HDP>(s, q_warp, Ks, dp, do_warp, Vs, LD, lane);
    if (SKIP_FULL && mma_warp_sees_all<M>(r, j0, BC)) {
#pragma unroll
        for (int mi = 0; mi < M; mi++)
            mma_dq_grads<KEY_TILES, false>(s[mi], dp[mi], r[mi], j0, scale_log2, t);
    } else {
#pragma unroll
        for (int mi = 0; mi < M; mi++)
            mma_dq_grads<KEY_TILES, true>(s[mi], dp[mi], r[mi], j0, scale_log2, t);
    }
    mma_cb<M, DIM_TILES, BC>(dqa, dp, Ks, LD, lane);
}

/* The dQ kernel's shared memory: Q, dO [BR][HDP + 8], K, V [BC][HDP + 8],
 * the rows' first keys and their least. */
template <int HDP, int W> struct mma_dq_smem {
    /* 8 warps at heads of 128 take key tiles of 32: 64 would be 104 KB */
    enum { LD = HDP + 8, BR = 16 * W, BC = W == 8 && HDP >= 128 ? 32 : MMA_BC };
    static constexpr size_t q = 0, dO = q + (size_t)BR * LD * 2, k = dO + (size_t)BR * LD * 2,
                            v = k + (size_t)BC * LD * 2, first = v + (size_t)BC * LD * 2,
                            lo = first + (size_t)2 * BR * 4, bytes = lo + 16;
};

/* Grid: B * H * nqt blocks of 32 W threads (fa_qtile_of<16 W>). */
template <int HDP, int W>
__global__ void __launch_bounds__(32 * W)
    mma_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v, const float *lse,
                  const float *D, const int32_t *pos, int T, int H, int KV, int hd, int local, int window, float scale,
                  float scale_log2, int nqt)
{
    typedef mma_dq_smem<HDP, W> L;
    constexpr int LD = L::LD, BR = L::BR, BC = L::BC, THREADS = 32 * W, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Qs = (bf16 *)(mma_sm + L::q), *dOs = (bf16 *)(mma_sm + L::dO), *Ks = (bf16 *)(mma_sm + L::k),
         *Vs = (bf16 *)(mma_sm + L::v);
    int (*first_sh)[BR] = (int (*)[BR])(mma_sm + L::first), *lo_sh = (int *)(mma_sm + L::lo);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;
    const size_t head = (size_t)b * T * qs + (size_t)h * hd;

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    fa_load_bf16<HDP, BR, THREADS>(Qs, q + head, qs, i0, i_end, hd);
    fa_load_bf16<HDP, BR, THREADS>(dOs, dout + head, qs, i0, i_end, hd);
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pos + (size_t)b * T, window, !local, lo_sh);
    __syncthreads();
    mma_dq_rows r[1];
    mma_dq_rows_load<BR, 1>(r, first_sh, local, lse, D, bh, i0, T, warp, lane);
    const bf16 *q_warp = Qs + 16 * warp * LD, *do_warp = dOs + 16 * warp * LD;
    float dqa[1][DIM_TILES][4];
    mma_zero(dqa);

    const int kt_lo = *lo_sh / BC, kt_hi = (i_end - 1) / BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * BC;
        __syncthreads();   /* every warp is done with the previous tile's K and V */
        fa_load_bf16<HDP, BC, THREADS>(Ks, kb, ks, j0, T, hd);
        fa_load_bf16<HDP, BC, THREADS>(Vs, vb, ks, j0, T, hd);
        __syncthreads();
        mma_dq_tile<HDP, BC, 1, false>(q_warp, do_warp, Ks, Vs, j0, r, dqa, scale_log2, lane);
    }
    mma_put_rows<DIM_TILES>(dq, dqa[0], scale, b, T, qs, h, hd, i0 + 16 * warp, i_end, lane);
}

/* ---- the pipelined backward (see the forward's) ---- */

/* The query tiles fa_each_query_tile visits, one after another: (hh, qt)
 * from the one before (hh 0, qt j0 / BR - 1 before the first) to the
 * next; 0 when there is none. */
template <int BR>
__device__ __forceinline__ int mma_next_query_tile(const fa_kvtile &t, const int *tile_lo, int nqt, int &hh, int &qt)
{
    for (;;) {
        if (++qt >= nqt) {
            if (++hh >= t.group)
                return 0;
            qt = t.j0 / BR;
        }
        if (tile_lo[(size_t)t.b * nqt + qt] < t.j_end)
            return 1;
    }
}

/* The dK/dV kernel's shared memory: K, V [BC][HDP + 8], Q and dO twice
 * [BR][HDP + 8], the query rows' statistics. */
template <int HDP> struct mma_dkdv_async_smem {
    enum { LD = HDP + 8, BR = mma_kv_rows<HDP>::BR, BC = 64, QTILE = BR * LD * 2 };
    static_assert((int)BC == (int)MMA_DS_BLOCK && (int)MMA_DS_BLOCK % (int)BR == 0,
                  "a key tile is a block of dS, a query tile in one");
    static constexpr size_t k = 0, v = k + (size_t)BC * LD * 2, q = v + (size_t)BC * LD * 2, dO = q + 2 * (size_t)QTILE,
                            rows = dO + 2 * (size_t)QTILE, bytes = rows + sizeof(mma_bwd_rows<BR>);
};

/* Grid and arguments as mma_dkdv_kernel<HDP, 4>'s, q, k, v, dout in bf16;
 * SKIP_FULL as mma_dkdv_tile's (DSK_CUDA_ATTN=wide); STORE_DS: dS into
 * ds too (DSK_CUDA_ATTN=stored; nb blocks of 64 a side, mma_ds_block). */
template <int HDP, bool SKIP_FULL, bool STORE_DS>
__global__ void __launch_bounds__(128)
    mma_dkdv_async_kernel(float *dk, float *dv, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                          const float *lse, const float *D, const int *tile_lo, const int32_t *pos, int T, int H,
                          int KV, int hd, int local, int window, float scale, float scale_log2, int nqt, int nkt,
                          dsk_half_out dv_h, bf16 *ds, int nb)
{
    typedef mma_dkdv_async_smem<HDP> L;
    constexpr int LD = L::LD, BR = L::BR, BC = L::BC, THREADS = 128, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Ks = (bf16 *)(mma_sm + L::k), *Vs = (bf16 *)(mma_sm + L::v);
    bf16 *Qs[2] = {(bf16 *)(mma_sm + L::q), (bf16 *)(mma_sm + L::q + L::QTILE)};
    bf16 *dOs[2] = {(bf16 *)(mma_sm + L::dO), (bf16 *)(mma_sm + L::dO + L::QTILE)};
    mma_bwd_rows<BR> *rows = (mma_bwd_rows<BR> *)(mma_sm + L::rows);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const fa_kvtile tile = fa_kvtile_of<BC>(T, H, KV, hd, nkt);
    const int32_t *pb = pos + (size_t)tile.b * T;
    const size_t kv_head = (size_t)tile.b * T * tile.ks + (size_t)tile.kvh * hd;
    /* Query tile (hh, qt)'s rows of q and dO, by cp.async into buffer `to`. */
    auto load_q = [&](int hh, int qt, int to) {
        const int h = tile.kvh * tile.group + hh, i0 = qt * BR;
        const size_t head = (size_t)tile.b * T * tile.qs + (size_t)h * hd;
        mma_tile_async<HDP, BR, THREADS>(Qs[to], q + head, tile.qs, i0, min(i0 + BR, T), hd);
        mma_tile_async<HDP, BR, THREADS>(dOs[to], dout + head, tile.qs, i0, min(i0 + BR, T), hd);
    };

    mma_tile_async<HDP, BC, THREADS>(Ks, k + kv_head, tile.ks, tile.j0, T, hd);
    mma_tile_async<HDP, BC, THREADS>(Vs, v + kv_head, tile.ks, tile.j0, T, hd);
    cp_async_commit();
    const bf16 *k_warp = Ks + 16 * warp * LD, *v_warp = Vs + 16 * warp * LD;
    const int j_lane = tile.j0 + 16 * warp + (lane >> 2);
    float dka[DIM_TILES][4], dva[DIM_TILES][4];
    mma_zero(dka);
    mma_zero(dva);

    int hh = 0, qt = tile.j0 / BR - 1, cur = 0;
    int have = mma_next_query_tile<BR>(tile, tile_lo, nqt, hh, qt);
    if (have)
        load_q(hh, qt, 0);
    cp_async_commit();
    while (have) {
        int next_hh = hh, next_qt = qt;
        const int more = mma_next_query_tile<BR>(tile, tile_lo, nqt, next_hh, next_qt);
        if (more)   /* into the buffer every warp finished with last time */
            load_q(next_hh, next_qt, cur ^ 1);
        cp_async_commit();
        const int h = tile.kvh * tile.group + hh, i0 = qt * BR;
        mma_bwd_rows_load<BR, THREADS>(rows, i0, T, pb, lse, D, ((size_t)tile.b * H + h) * T, local, window);
        cp_async_wait<1>();   /* this tile's copies (and K's, V's) are in */
        __syncthreads();      /* ... everyone's, and the rows' statistics */
        bf16 *ds_blk = STORE_DS ? ds + mma_ds_block((size_t)tile.b * H + h, nb, i0 / MMA_DS_BLOCK,
                                                    tile.j0 / MMA_DS_BLOCK)
                                : NULL;
        mma_dkdv_tile<HDP, BR, SKIP_FULL>(k_warp, v_warp, Qs[cur], dOs[cur], rows, i0, j_lane, dka, dva, scale_log2,
                                          lane, ds_blk);
        __syncthreads();      /* every warp is done with this tile's buffers and rows */
        hh = next_hh, qt = next_qt, have = more, cur ^= 1;
    }
    cp_async_wait<0>();
    const int j_end = tile.j_end;
    mma_put_rows<DIM_TILES>(dv, dva, 1.0f, tile.b, T, tile.ks, tile.kvh, hd, tile.j0 + 16 * warp, j_end, lane, dv_h);
    mma_put_rows<DIM_TILES>(dk, dka, scale, tile.b, T, tile.ks, tile.kvh, hd, tile.j0 + 16 * warp, j_end, lane);
}

/* The dQ kernel's shared memory: Q, dO [BR][HDP + 8] (BR = 64 M), K and
 * V twice [BC][HDP + 8], the rows' first keys and their least.  At M = 2
 * key tiles of 32: the registers of S and dP for two blocks of rows
 * would be 128 at 64 keys (ptxas spills at heads of 64 and 128). */
template <int HDP, int M> struct mma_dq_async_smem {
    enum { LD = HDP + 8, BR = 64 * M, BC = M == 2 ? 32 : MMA_BC, TILE = BC * LD * 2 };
    static constexpr size_t q = 0, dO = q + (size_t)BR * LD * 2, k = dO + (size_t)BR * LD * 2, v = k + 2 * (size_t)TILE,
                            first = v + 2 * (size_t)TILE, lo = first + (size_t)2 * BR * 4, bytes = lo + 16;
};

/* Grid and arguments as mma_dq_kernel<HDP, 4>'s, q, k, v, dout in bf16;
 * M and SKIP_FULL as mma_fwd_async_kernel's. */
template <int HDP, int M, bool SKIP_FULL>
__global__ void __launch_bounds__(128)
    mma_dq_async_kernel(float *dq, const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                        const float *D, const int32_t *pos, int T, int H, int KV, int hd, int local, int window,
                        float scale, float scale_log2, int nqt)
{
    typedef mma_dq_async_smem<HDP, M> L;
    constexpr int LD = L::LD, BR = L::BR, BC = L::BC, THREADS = 128, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Qs = (bf16 *)(mma_sm + L::q), *dOs = (bf16 *)(mma_sm + L::dO);
    bf16 *Ks[2] = {(bf16 *)(mma_sm + L::k), (bf16 *)(mma_sm + L::k + L::TILE)};
    bf16 *Vs[2] = {(bf16 *)(mma_sm + L::v), (bf16 *)(mma_sm + L::v + L::TILE)};
    int (*first_sh)[BR] = (int (*)[BR])(mma_sm + L::first), *lo_sh = (int *)(mma_sm + L::lo);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const bf16 *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;
    const size_t head = (size_t)b * T * qs + (size_t)h * hd;

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    mma_tile_async<HDP, BR, THREADS>(Qs, q + head, qs, i0, i_end, hd);
    mma_tile_async<HDP, BR, THREADS>(dOs, dout + head, qs, i0, i_end, hd);
    cp_async_commit();
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pos + (size_t)b * T, window, !local, lo_sh);
    __syncthreads();
    mma_dq_rows r[M];
    mma_dq_rows_load<BR, M>(r, first_sh, local, lse, D, bh, i0, T, warp, lane);
    const bf16 *q_warp = Qs + 16 * M * warp * LD, *do_warp = dOs + 16 * M * warp * LD;
    float dqa[M][DIM_TILES][4];
    mma_zero(dqa);

    const int kt_lo = *lo_sh / BC, kt_hi = (i_end - 1) / BC;
    mma_tile_async<HDP, BC, THREADS>(Ks[0], kb, ks, kt_lo * BC, T, hd);
    mma_tile_async<HDP, BC, THREADS>(Vs[0], vb, ks, kt_lo * BC, T, hd);
    cp_async_commit();
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int cur = (kt - kt_lo) & 1;
        if (kt < kt_hi) {
            mma_tile_async<HDP, BC, THREADS>(Ks[cur ^ 1], kb, ks, (kt + 1) * BC, T, hd);
            mma_tile_async<HDP, BC, THREADS>(Vs[cur ^ 1], vb, ks, (kt + 1) * BC, T, hd);
        }
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        mma_dq_tile<HDP, BC, M, SKIP_FULL>(q_warp, do_warp, Ks[cur], Vs[cur], kt * BC, r, dqa, scale_log2, lane);
        __syncthreads();
    }
    cp_async_wait<0>();
#pragma unroll
    for (int mi = 0; mi < M; mi++)
        mma_put_rows<DIM_TILES>(dq, dqa[mi], scale, b, T, qs, h, hd, i0 + 16 * (M * warp + mi), i_end, lane);
}

/* ---- dQ from the stored dS (DSK_CUDA_ATTN=stored) ----
 *
 * dQ = dS K over the blocks of dS the dK/dV kernel wrote (mma_ds_block),
 * one product a key tile where mma_dq_async_kernel computes three (S, dP
 * and dS K): a block of 4 warps a 64-row query tile, each key tile's K
 * and its block of dSᵀ double-buffered by cp.async.  dS is A: its block
 * is stored transposed, and ldmatrix.trans at mma_rows_bt's addresses
 * gives A's fragments from it.  On a tile some row of a warp does not
 * see whole, the keys a row does not see are zeroed in the fragments
 * (those parts of a block may never have been written). */

/* The A fragments of a warp's 16 rows for keys kbase .. kbase + 15
 * (mma_c_to_a's layout: a[x] rows g + 8 (x & 1), keys 2t + 8 (x >> 1) and
 * the next), the keys row i does not see ([first, i]) zeroed. */
__device__ __forceinline__ void mma_mask_a(uint32_t (&a)[4], const mma_dq_rows &r, int kbase, int t)
{
#pragma unroll
    for (int x = 0; x < 4; x++) {
        const int row = x & 1, j = kbase + 2 * t + 8 * (x >> 1);
        const uint32_t lo = j >= r.first[row] && j <= r.i[row] ? 0x0000ffffu : 0;
        const uint32_t hi = j + 1 >= r.first[row] && j + 1 <= r.i[row] ? 0xffff0000u : 0;
        a[x] &= lo | hi;
    }
}

/* The dQ-from-dS kernel's shared memory: K twice [64][HDP + 8], dSᵀ's
 * block twice [64][64 + 8], the rows' first keys and their least. */
template <int HDP> struct mma_dq_ds_smem {
    enum { LD = HDP + 8, LDS = MMA_DS_BLOCK + 8, BR = MMA_DS_BLOCK, BC = MMA_DS_BLOCK, TILE = BC * LD * 2,
           DTILE = BC * LDS * 2 };
    static constexpr size_t k = 0, ds = k + 2 * (size_t)TILE, first = ds + 2 * (size_t)DTILE,
                            lo = first + (size_t)2 * BR * 4, bytes = lo + 16;
};

/* Grid: B * H * nqt blocks of 128 threads (fa_qtile_of<64>); k in bf16,
 * ds as the dK/dV kernel wrote it (nb blocks a side). */
template <int HDP>
__global__ void __launch_bounds__(128)
    mma_dq_ds_kernel(float *dq, const bf16 *ds, const bf16 *k, const int32_t *pos, int T, int H, int KV, int hd,
                     int local, int window, float scale, int nqt, int nb)
{
    typedef mma_dq_ds_smem<HDP> L;
    constexpr int LD = L::LD, LDS = L::LDS, BR = L::BR, BC = L::BC, THREADS = 128, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Ks[2] = {(bf16 *)(mma_sm + L::k), (bf16 *)(mma_sm + L::k + L::TILE)};
    bf16 *Ds[2] = {(bf16 *)(mma_sm + L::ds), (bf16 *)(mma_sm + L::ds + L::DTILE)};
    int (*first_sh)[BR] = (int (*)[BR])(mma_sm + L::first), *lo_sh = (int *)(mma_sm + L::lo);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, t = lane & 3;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const bf16 *kb = k + (size_t)b * T * ks + (size_t)kvh * hd;
    const bf16 *ds_row = ds + mma_ds_block(bh, nb, i0 / BR, 0);   /* the query tile's blocks, kt 0 .. */
    const size_t k_stride = ks;
    /* Key tile kt's K and block of dSᵀ, by cp.async into buffer `to`. */
    auto load = [&](int kt, int to) {
        mma_tile_async<HDP, BC, THREADS>(Ks[to], kb, k_stride, kt * BC, T, hd);
        const bf16 *blk = ds_row + (size_t)kt * MMA_DS_BLOCK * MMA_DS_BLOCK;
        for (int x = threadIdx.x; x < BC * (MMA_DS_BLOCK / 8); x += THREADS) {
            const int row = x / (MMA_DS_BLOCK / 8), c = 8 * (x % (MMA_DS_BLOCK / 8));
            cp_async_16(Ds[to] + row * LDS + c, blk + row * MMA_DS_BLOCK + c, 16);
        }
    };

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pos + (size_t)b * T, window, !local, lo_sh);
    __syncthreads();
    mma_dq_rows r[1];   /* of which only i and first (INT_MAX past T: nothing seen) */
    mma_dq_rows_keys<BR, 1>(r, first_sh, local, i0, warp, lane);
    float dqa[1][DIM_TILES][4];
    mma_zero(dqa);

    const int kt_lo = *lo_sh / BC, kt_hi = (i_end - 1) / BC;
    load(kt_lo, 0);
    cp_async_commit();
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int cur = (kt - kt_lo) & 1, j0 = kt * BC;
        if (kt < kt_hi)
            load(kt + 1, cur ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const int full = mma_warp_sees_all<1>(r, j0, BC);
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t fa[1][4];
            mma_ldmatrix_x4_trans(fa[0], mma_rows_bt(Ds[cur] + 16 * kk * LDS + 16 * warp, LDS, lane));
            if (!full)
                mma_mask_a(fa[0], r[0], j0 + 16 * kk, t);
#pragma unroll
            for (int np = 0; np < DIM_TILES / 2; np++) {
                uint32_t fb[4];
                mma_ldmatrix_x4_trans(fb, mma_rows_b(Ks[cur] + 16 * kk * LD + 16 * np, LD, lane));
                mma_bf16_16816(dqa[0][2 * np], fa[0], fb[0], fb[1]);
                mma_bf16_16816(dqa[0][2 * np + 1], fa[0], fb[2], fb[3]);
            }
        }
        __syncthreads();
    }
    cp_async_wait<0>();
    mma_put_rows<DIM_TILES>(dq, dqa[0], scale, b, T, qs, h, hd, i0 + 16 * warp, i_end, lane);
}

/* ---- launches ---- */

/* The warps a block: 8 with DSK_CUDA_ATTN=mma8, else 4. */
static int mma_warps(const dsk_cuda *cb) { return cb->attn_kernels == DSK_CUDA_ATTN_MMA8 ? 8 : 4; }

/* The pipelined kernels' shared memory, the most of their forward's or
 * backward's kernels, with M blocks of 16 rows a warp. */
template <int H, int M> static size_t mma_async_smem_of(int backward)
{
    if (!backward)
        return mma_fwd_async_smem<H, M>::bytes;
    size_t bytes = std::max(mma_dkdv_async_smem<H>::bytes, mma_dq_async_smem<H, M>::bytes);
    /* M = 2 is wide's and stored's: stored's dQ kernel too (more than
     * wide's at heads of 16) */
    return M == 2 ? std::max(bytes, mma_dq_ds_smem<H>::bytes) : bytes;
}
static size_t mma_async_smem(int hdp, int backward, int m)
{
#define MMA_ASYNC_SMEM(H) (m == 2 ? mma_async_smem_of<H, 2>(backward) : mma_async_smem_of<H, 1>(backward))
    switch (hdp) {
    case 16: return MMA_ASYNC_SMEM(16);
    case 32: return MMA_ASYNC_SMEM(32);
    case 64: return MMA_ASYNC_SMEM(64);
    default: return MMA_ASYNC_SMEM(128);
    }
#undef MMA_ASYNC_SMEM
}

/* DSK_CUDA_ATTN=wide: the pipelined kernels with 2 blocks of 16 query
 * rows a warp in the forward and dQ (each K and V fragment read from
 * shared memory once for both), and the mask's arithmetic skipped on
 * tiles every row of a warp sees whole; the same bits as the default's. */
static int mma_wide(const dsk_cuda *cb)
{
    return cb->attn_kernels == DSK_CUDA_ATTN_WIDE || cb->attn_kernels == DSK_CUDA_ATTN_STORED;
}

/* Whether the pipelined kernels run a layer of shape s (fa_use_mma takes
 * it): DSK_CUDA_ATTN=auto (the default), async or wide, heads a multiple
 * of 8, and the device gives a block their shared memory.  The default
 * since an H200 measured them (1.3b, 8 x 2048: forward 108 TFLOPS
 * against 89, backward 103 against 80, the step 5% faster); the others
 * run the rest. */
static int mma_async(dsk_cuda *cb, const dsk_attn_shape *s, int backward)
{
    if ((cb->attn_kernels != DSK_CUDA_ATTN_ASYNC && cb->attn_kernels != DSK_CUDA_ATTN_AUTO &&
         cb->attn_kernels != DSK_CUDA_ATTN_CUDNN && !mma_wide(cb)) ||
        s->hd % 8 != 0 || !fa_use_mma(cb, s))
        return 0;
    return mma_async_smem(fa_hdp(s->hd), backward, mma_wide(cb) ? 2 : 1) <= (size_t)cb->smem_optin;
}

/* The bf16 copies' room: q, k, v (and dO for the backward). */
static size_t mma_async_values(const dsk_attn_shape *s, int backward)
{
    size_t nq = (size_t)s->B * s->T * s->H * s->hd, nk = (size_t)s->B * s->T * s->KV * s->hd;
    return (backward ? 2 : 1) * nq + 2 * nk;
}

/* DSK_CUDA_ATTN=stored keeps a backward's dS only up to this many bytes
 * (1.3b at 8 x 2048: 554 MB); past it dQ computes S and dP again, as
 * wide's does. */
static const size_t MMA_DS_MAX = (size_t)2 << 30;

/* The bytes of a backward's stored dS (mma_ds_block) for shape s, or 0
 * where it is not stored. */
static size_t mma_ds_bytes(const dsk_cuda *cb, const dsk_attn_shape *s)
{
    if (cb->attn_kernels != DSK_CUDA_ATTN_STORED)
        return 0;
    const size_t nb = ((size_t)s->T + MMA_DS_BLOCK - 1) / MMA_DS_BLOCK;
    const size_t bytes = (size_t)s->B * s->H * (nb * (nb + 1) / 2) * MMA_DS_BLOCK * MMA_DS_BLOCK * sizeof(bf16);
    return bytes <= MMA_DS_MAX ? bytes : 0;
}

/* Where the stored dS starts in the room, after the backward's copies. */
static size_t mma_ds_offset(const dsk_attn_shape *s)
{
    return (mma_async_values(s, 1) * sizeof(bf16) + 255) & ~(size_t)255;
}

void dsk_cuda_attention_async_reserve(dsk_cuda *cb, const dsk_attn_shape *s, int backward)
{
    if (!mma_async(cb, s, backward))
        return;
    size_t bytes = mma_async_values(s, backward) * sizeof(bf16);
    if (backward && mma_ds_bytes(cb, s))
        bytes = mma_ds_offset(s) + mma_ds_bytes(cb, s);
    if (bytes <= cb->attn_bf16_len)
        return;
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* queued kernels may read the old copies */
    if (cb->attn_bf16)
        CUDA_CHECK(cudaFree(cb->attn_bf16));
    cb->attn_bf16 = NULL;
    cb->attn_bf16_len = 0;
    if (dsk_cuda_malloc(cb, &cb->attn_bf16, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes for the attention's bf16 copies on device %d",
                bytes, cb->device);
    }
    cb->attn_bf16_len = bytes;
}

/* q, k, v and (dout not NULL) dout rounded to bf16 into the room reserved
 * for them: *qh, *kh, *vh, *doh. */
static void mma_async_copies(dsk_cuda *cb, const dsk_attn_shape *s, const float *q, const float *k, const float *v,
                             const float *dout, const bf16 **qh, const bf16 **kh, const bf16 **vh, const bf16 **doh)
{
    size_t nq = (size_t)s->B * s->T * s->H * s->hd, nk = (size_t)s->B * s->T * s->KV * s->hd;
    if (mma_async_values(s, dout != NULL) * sizeof(bf16) > cb->attn_bf16_len)
        dsk_die(EX_SOFTWARE, "cuda: attention (async): the bf16 copies' room was not reserved");
    bf16 *at = (bf16 *)cb->attn_bf16;
    bf16 *cq = at, *ck = cq + nq, *cv = ck + nk, *cdo = cv + nk;
    dsk_cuda_round_bf16(cb, cq, q, nq, ck, k, nk);
    dsk_cuda_round_bf16(cb, cv, v, nk, dout ? cdo : NULL, dout, dout ? nq : 0);
    *qh = cq, *kh = ck, *vh = cv;
    if (doh)
        *doh = cdo;
}

template <int HDP, int M>
static void mma_fwd_async_launch(dsk_cuda *cb, float *out, float *lse, const float *q, const float *k, const float *v,
                                 const int32_t *pos, const dsk_attn_shape *s, dsk_half_out out_h)
{
    typedef mma_fwd_async_smem<HDP, M> L;
    const bf16 *qh, *kh, *vh;
    mma_async_copies(cb, s, q, k, v, NULL, &qh, &kh, &vh, NULL);
    const int nqt = (s->T + L::BR - 1) / L::BR;
    auto *kern = mma_fwd_async_kernel<HDP, M, M == 2>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::bytes));
    unsigned grid = fa_grid((unsigned long long)s->B * s->H * nqt, "attention_fwd");
    const float scale_log2 = MMA_LOG2E / sqrtf((float)s->hd);
    kern<<<grid, 128, L::bytes, cb->stream>>>(out, lse, qh, kh, vh, pos, s->T, s->H, s->KV, s->hd,
                                               s->kind == DSK_ATTN_LOCAL, s->window, scale_log2, nqt, out_h);
    LAUNCHED(cb, M == 2 ? "attention_fwd (mma.sync, wide)" : "attention_fwd (mma.sync, async)");
}

template <int HDP, int M>
static void mma_bwd_async_launch(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                 const float *k, const float *v, const float *lse, const float *D, const int *tile_lo,
                                 const int32_t *pos, const dsk_attn_shape *s, dsk_half_out dv_h)
{
    typedef mma_dkdv_async_smem<HDP> LKV;
    typedef mma_dq_async_smem<HDP, M> LQ;
    const bf16 *qh, *kh, *vh, *doh;
    mma_async_copies(cb, s, q, k, v, dout, &qh, &kh, &vh, &doh);
    const int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, local = s->kind == DSK_ATTN_LOCAL;
    const float scale = 1.0f / sqrtf((float)hd), scale_log2 = MMA_LOG2E * scale;
    const int kv_nqt = (T + LKV::BR - 1) / LKV::BR, nkt = (T + LKV::BC - 1) / LKV::BC, nqt = (T + LQ::BR - 1) / LQ::BR;
    /* DSK_CUDA_ATTN=stored: dS from the dK/dV kernel, dQ from it. */
    bf16 *ds = M == 2 && mma_ds_bytes(cb, s) ? (bf16 *)((char *)cb->attn_bf16 + mma_ds_offset(s)) : NULL;
    auto *kkv = ds ? mma_dkdv_async_kernel<HDP, M == 2, M == 2> : mma_dkdv_async_kernel<HDP, M == 2, false>;
    CUDA_CHECK(cudaFuncSetAttribute(kkv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)LKV::bytes));
    const int nb = (T + MMA_DS_BLOCK - 1) / MMA_DS_BLOCK;
    unsigned grid_kv = fa_grid((unsigned long long)B * KV * nkt, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, ds ? "dk, dv, dS (mma.sync, stored)"
                                      : M == 2 ? "dk, dv (mma.sync, wide)" : "dk, dv (mma.sync, async)");
        kkv<<<grid_kv, 128, LKV::bytes, cb->stream>>>(dk, dv, doh, qh, kh, vh, lse, D, tile_lo, pos, T, H, KV, hd,
                                                       local, s->window, scale, scale_log2, kv_nqt, nkt, dv_h, ds,
                                                       nb);
        LAUNCHED(cb, "attention_bwd (dk, dv; mma.sync, async)");
    }
    if (ds) {
        typedef mma_dq_ds_smem<HDP> LDQ;
        auto *kds = mma_dq_ds_kernel<HDP>;
        CUDA_CHECK(cudaFuncSetAttribute(kds, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)LDQ::bytes));
        const int nqt_ds = (T + LDQ::BR - 1) / LDQ::BR;
        unsigned grid_ds = fa_grid((unsigned long long)B * H * nqt_ds, "attention_bwd");
        dsk_cuda_prof_scope timed(cb, "dq = dS K (mma.sync, stored)");
        kds<<<grid_ds, 128, LDQ::bytes, cb->stream>>>(dq, ds, kh, pos, T, H, KV, hd, local, s->window, scale, nqt_ds,
                                                     nb);
        LAUNCHED(cb, "attention_bwd (dq from dS; mma.sync)");
        return;
    }
    auto *kq = mma_dq_async_kernel<HDP, M, M == 2>;
    CUDA_CHECK(cudaFuncSetAttribute(kq, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)LQ::bytes));
    unsigned grid_q = fa_grid((unsigned long long)B * H * nqt, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, M == 2 ? "dq (mma.sync, wide)" : "dq (mma.sync, async)");
        kq<<<grid_q, 128, LQ::bytes, cb->stream>>>(dq, doh, qh, kh, vh, lse, D, pos, T, H, KV, hd, local, s->window,
                                                   scale, scale_log2, nqt);
        LAUNCHED(cb, "attention_bwd (dq; mma.sync, async)");
    }
}

template <int HDP, int W>
static void mma_fwd_launch(dsk_cuda *cb, float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *pos, const dsk_attn_shape *s, dsk_half_out out_h)
{
    typedef mma_fwd_smem<HDP, W> L;
    static_assert(L::bytes <= 99 * 1024, "over sm_86's 99 KB of shared memory");
    const int nqt = (s->T + L::BR - 1) / L::BR;
    auto *kern = mma_fwd_kernel<HDP, W>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)L::bytes));
    unsigned grid = fa_grid((unsigned long long)s->B * s->H * nqt, "attention_fwd");
    const float scale_log2 = MMA_LOG2E / sqrtf((float)s->hd);
    kern<<<grid, 32 * W, L::bytes, cb->stream>>>(out, lse, q, k, v, pos, s->T, s->H, s->KV, s->hd,
                                                 s->kind == DSK_ATTN_LOCAL, s->window, scale_log2, nqt, out_h);
    LAUNCHED(cb, "attention_fwd (mma.sync)");
}

void dsk_cuda_attention_mma_fwd(dsk_cuda *cb, float *out, float *lse_g, float *lse_l, const float *q, const float *k,
                                const float *v, const int32_t *pos, const dsk_attn_shape *s, dsk_half_out out_h)
{
    float *lse = s->kind == DSK_ATTN_LOCAL ? lse_l : lse_g;
    const int w8 = mma_warps(cb) == 8, async = mma_async(cb, s, 0), wide = mma_wide(cb);
#define MMA_FWD(H)                                                                             \
    (async && wide ? mma_fwd_async_launch<H, 2>(cb, out, lse, q, k, v, pos, s, out_h)        \
     : async       ? mma_fwd_async_launch<H, 1>(cb, out, lse, q, k, v, pos, s, out_h)        \
     : w8          ? mma_fwd_launch<H, 8>(cb, out, lse, q, k, v, pos, s, out_h)              \
                   : mma_fwd_launch<H, 4>(cb, out, lse, q, k, v, pos, s, out_h))
    switch (fa_hdp(s->hd)) {
    case 16: MMA_FWD(16); break;
    case 32: MMA_FWD(32); break;
    case 64: MMA_FWD(64); break;
    case 128: MMA_FWD(128); break;
    default: dsk_die(EX_SOFTWARE, "cuda: attention_fwd (mma.sync): head size %d over 128", s->hd);
    }
#undef MMA_FWD
}

template <int HDP, int W>
static void mma_bwd_launch(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *lse, const float *D, const int *tile_lo,
                           const int32_t *pos, const dsk_attn_shape *s, dsk_half_out dv_h)
{
    typedef mma_dkdv_smem<HDP, W> LKV;
    typedef mma_dq_smem<HDP, W> LQ;
    static_assert(LKV::bytes <= 99 * 1024 && LQ::bytes <= 99 * 1024, "over sm_86's 99 KB of shared memory");
    const int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, local = s->kind == DSK_ATTN_LOCAL;
    const float scale = 1.0f / sqrtf((float)hd), scale_log2 = MMA_LOG2E * scale;
    const int kv_nqt = (T + LKV::BR - 1) / LKV::BR, nkt = (T + LKV::BC - 1) / LKV::BC, nqt = (T + LQ::BR - 1) / LQ::BR;
    auto *kkv = mma_dkdv_kernel<HDP, W>;
    auto *kq = mma_dq_kernel<HDP, W>;
    CUDA_CHECK(cudaFuncSetAttribute(kkv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)LKV::bytes));
    CUDA_CHECK(cudaFuncSetAttribute(kq, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)LQ::bytes));
    unsigned grid_kv = fa_grid((unsigned long long)B * KV * nkt, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, "dk, dv (mma.sync)");
        kkv<<<grid_kv, 32 * W, LKV::bytes, cb->stream>>>(dk, dv, dout, q, k, v, lse, D, tile_lo, pos, T, H, KV, hd,
                                                          local, s->window, scale, scale_log2, kv_nqt, nkt, dv_h);
        LAUNCHED(cb, "attention_bwd (dk, dv; mma.sync)");
    }
    unsigned grid_q = fa_grid((unsigned long long)B * H * nqt, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, "dq (mma.sync)");
        kq<<<grid_q, 32 * W, LQ::bytes, cb->stream>>>(dq, dout, q, k, v, lse, D, pos, T, H, KV, hd, local, s->window,
                                                      scale, scale_log2, nqt);
        LAUNCHED(cb, "attention_bwd (dq; mma.sync)");
    }
}

int dsk_cuda_attention_mma_kv_rows(int hdp)
{
    return hdp >= 128 ? (int)mma_kv_rows<128>::BR : (int)mma_kv_rows<64>::BR;   /* as mma_bwd_launch<hdp> */
}

void dsk_cuda_attention_mma_bwd(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *lse_g, const float *lse_l,
                                const float *Dg, const float *Dl, const int *tile_lo, const int32_t *pos,
                                const dsk_attn_shape *s, dsk_half_out dv_h)
{
    const int local = s->kind == DSK_ATTN_LOCAL, w8 = mma_warps(cb) == 8, async = mma_async(cb, s, 1);
    const int wide = mma_wide(cb);
    const float *lse = local ? lse_l : lse_g, *D = local ? Dl : Dg;
#define MMA_BWD(H)                                                                                         \
    (async && wide ? mma_bwd_async_launch<H, 2>(cb, dq, dk, dv, dout, q, k, v, lse, D, tile_lo, pos, s, dv_h) \
     : async       ? mma_bwd_async_launch<H, 1>(cb, dq, dk, dv, dout, q, k, v, lse, D, tile_lo, pos, s, dv_h) \
     : w8          ? mma_bwd_launch<H, 8>(cb, dq, dk, dv, dout, q, k, v, lse, D, tile_lo, pos, s, dv_h)       \
                   : mma_bwd_launch<H, 4>(cb, dq, dk, dv, dout, q, k, v, lse, D, tile_lo, pos, s, dv_h))
    switch (fa_hdp(s->hd)) {
    case 16: MMA_BWD(16); break;
    case 32: MMA_BWD(32); break;
    case 64: MMA_BWD(64); break;
    case 128: MMA_BWD(128); break;
    default: dsk_die(EX_SOFTWARE, "cuda: attention_bwd (mma.sync): head size %d over 128", s->hd);
    }
#undef MMA_BWD
}
