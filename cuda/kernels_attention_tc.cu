/* Flash attention on bf16 tensor cores (WMMA), the backend's attention
 * when gemm_dtype is bf16 or fp16 (fa_use_tc) for the layers the
 * mma.sync kernels leave (hybrid ones, heads over 128: fa_use_mma), or
 * all of them with DSK_CUDA_ATTN=wmma: kernels_attention.cu's
 * fp32 kernels with their tile products on tensor cores instead of CUDA
 * cores, 16 x 16 x 16 at a time, bf16 operands and fp32 sums:
 *
 *   forward   S = Q Kᵀ, O += P V
 *   dK, dV    S = Q Kᵀ, dP = dO Vᵀ, dV += P_mixᵀ dO, dK += dSᵀ Q
 *   dQ        S = Q Kᵀ, dP = dO Vᵀ, dQ += dS K
 *
 * Q, K, V and dO are rounded to bf16 as they are loaded into shared
 * memory, P and dS as they are written there; the online softmax, the
 * masks, lse, D and the score gradients stay fp32 and are the fp32
 * kernels' own code (attention_tiles.cuh).  Sums run in a fixed order:
 * the same bits on every run, as the fp32 kernels.
 *
 * WMMA leaves unsaid which thread holds which element of a fragment, so
 * the forward, whose output rows are rescaled at every key tile, puts
 * each P V product through shared memory (fp32) and adds it into the
 * registers where the fp32 kernel keeps O (rows ty + 16 ri, dims
 * tx + 16 e); the backward's sums are never rescaled and stay in
 * fragments until the end.  8 warps a block; a product's 16 x 16 output
 * tiles go to the warps in turn.
 *
 * Shared memory rows are padded, bf16 tiles to HDP + 8 and fp32 tiles to
 * BC + 16 or HDP + 16 (+ 32 at HDP 16; tc_ld): WMMA wants ldm a multiple
 * of 16 bytes and tile starts 32-byte aligned, and the padding spreads
 * the reads of a column (WMMA's) or of two rows (the element-wise
 * code's) over the banks.  Tile sizes (tc_cfg) keep every kernel under
 * 99 KB of shared memory, the limit of sm_86 and sm_89. */
#include <mma.h>

#include "attention_tiles.cuh"

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

/* Query rows (BR) and keys (BC) of a tile, per kernel: forward, dK/dV, dQ. */
template <int HDP> struct tc_cfg {
    enum { F_BR = 64, F_BC = 64, KV_BR = 64, KV_BC = 64, Q_BR = 64, Q_BC = 64 };
};
template <> struct tc_cfg<128> {
    enum { F_BR = 64, F_BC = 32, KV_BR = 32, KV_BC = 64, Q_BR = 64, Q_BC = 32 };
};
template <> struct tc_cfg<256> {
    enum { F_BR = 32, F_BC = 32, KV_BR = 32, KV_BC = 32, Q_BR = 32, Q_BC = 32 };
};

static constexpr size_t tc_round(size_t bytes) { return (bytes + 127) & ~(size_t)127; }
static constexpr size_t tc_max(size_t a, size_t b) { return a > b ? a : b; }

/* Row strides (elements) of the shared tiles.  The fp32 ones are 16
 * banks past a multiple of 32: the two rows a warp reads at once (a
 * half warp each, 16 consecutive floats) fall in different banks.  (O
 * does not depend on BC.) */
template <int HDP, int BC> struct tc_ld {
    enum {
        H = HDP + 8,    /* bf16 [rows][HDP]: Q, K, V, dO */
        S = BC + 16,    /* fp32 [BR][BC]: S, dP */
        P = BC + 8,     /* bf16 [BR][BC]: P, P_mix, dS */
        O = HDP + (HDP % 32 ? 32 : 16),   /* fp32 [rows][HDP]: a product's output */
    };
};

/* The per-row masks and statistics live in the dynamic shared memory
 * too (no static __shared__ arrays): the tiles' alignment then rests on
 * the dynamic region's base alone, which __align__(128) asks for. */

/* The forward's shared memory (byte offsets, each 128-aligned): Q, K,
 * V, S (then each part's P V), P of each part, each row's first key per
 * part (int [2][BR]) and the smallest of them (lo). */
template <int HDP, int BR, int BC> struct tc_fwd_smem {
    typedef tc_ld<HDP, BC> ld;
    static constexpr size_t q = 0, k = q + tc_round((size_t)BR * ld::H * 2), v = k + tc_round((size_t)BC * ld::H * 2),
                            s = v + tc_round((size_t)BC * ld::H * 2),
                            pg = s + tc_round((size_t)BR * tc_max(ld::S, ld::O) * 4),
                            pl = pg + tc_round((size_t)BR * ld::P * 2), first = pl + tc_round((size_t)BR * ld::P * 2),
                            lo = first + tc_round((size_t)2 * BR * 4), bytes = lo + 128;
};

/* The backward kernels' shared memory: the key side (K, V: BC rows),
 * the query side (Q, dO: BR rows), S, dP, P_mix (WANT_P), dS, and per
 * row (fa_row_stats) the first keys, lse and D of each part, and lo; at
 * the end, the first N_OUT [OUT_ROWS][ld::O] fp32 tiles hold the results
 * on their way out. */
template <int HDP, int BR, int BC, bool WANT_P, int OUT_ROWS, int N_OUT> struct tc_bwd_smem {
    typedef tc_ld<HDP, BC> ld;
    static constexpr size_t k = 0, v = k + tc_round((size_t)BC * ld::H * 2), q = v + tc_round((size_t)BC * ld::H * 2),
                            dO = q + tc_round((size_t)BR * ld::H * 2), s = dO + tc_round((size_t)BR * ld::H * 2),
                            dp = s + tc_round((size_t)BR * ld::S * 4), pm = dp + tc_round((size_t)BR * ld::S * 4),
                            ds = pm + (WANT_P ? tc_round((size_t)BR * ld::P * 2) : 0),
                            first = ds + tc_round((size_t)BR * ld::P * 2), lse = first + tc_round((size_t)2 * BR * 4),
                            D = lse + tc_round((size_t)2 * BR * 4), lo = D + tc_round((size_t)2 * BR * 4),
                            end = lo + 128, out = 0, out_len = tc_round((size_t)OUT_ROWS * ld::O * 4),
                            bytes = tc_max(end, N_OUT * out_len);
};

/* Where element (r, c) of a WMMA operand is, for its layout. */
__device__ __forceinline__ int tc_at(const wmma::row_major *, int r, int c, int ld) { return r * ld + c; }
__device__ __forceinline__ int tc_at(const wmma::col_major *, int r, int c, int ld) { return c * ld + r; }

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> tc_acc;

/* One output tile: acc += A's row of tiles mi times B's column of tiles
 * ni, K deep. */
template <int K, class LA, class LB>
__device__ __forceinline__ void tc_tile_acc(tc_acc &acc, const bf16 *A, int lda, const bf16 *B, int ldb, int mi, int ni)
{
#pragma unroll
    for (int k = 0; k < K; k += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, LA> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, LB> b;
        wmma::load_matrix_sync(a, A + tc_at((const LA *)0, mi * 16, k, lda), lda);
        wmma::load_matrix_sync(b, B + tc_at((const LB *)0, k, ni * 16, ldb), ldb);
        wmma::mma_sync(acc, a, b, acc);
    }
}

/* acc[n] += A B over output tile t = warp + 8 n of an M x N product
 * (t < the tile count), K deep: A [M][K] and B [K][N] bf16 in shared
 * memory, each row-major (element (r, c) at r * ld + c) or, as LA / LB
 * say, col-major (at c * ld + r: a transposed tile). */
template <int M, int N, int K, class LA, class LB, int NPW>
__device__ __forceinline__ void tc_mm_acc(tc_acc (&acc)[NPW], const bf16 *A, int lda, const bf16 *B, int ldb)
{
    const int warp = threadIdx.x >> 5;
#pragma unroll
    for (int n = 0; n < NPW; n++) {
        const int t = warp + n * (FA_THREADS / 32);
        if (t >= (M / 16) * (N / 16))
            break;   /* the same for the whole warp */
        tc_tile_acc<K, LA, LB>(acc[n], A, lda, B, ldb, t / (N / 16), t % (N / 16));
    }
}

/* The tiles tc_mm_acc's acc holds, into C [M][N] (fp32, row stride ldc). */
template <int M, int N, int NPW>
__device__ __forceinline__ void tc_store(float *C, int ldc, const tc_acc (&acc)[NPW])
{
    const int warp = threadIdx.x >> 5;
#pragma unroll
    for (int n = 0; n < NPW; n++) {
        const int t = warp + n * (FA_THREADS / 32);
        if (t >= (M / 16) * (N / 16))
            break;
        wmma::store_matrix_sync(C + (t / (N / 16)) * 16 * ldc + (t % (N / 16)) * 16, acc[n], ldc, wmma::mem_row_major);
    }
}

/* Output tiles a warp takes in an M x N product. */
template <int M, int N> struct tc_tiles {
    enum { PER_WARP = ((M / 16) * (N / 16) + FA_THREADS / 32 - 1) / (FA_THREADS / 32) };
};

template <int NPW> __device__ __forceinline__ void tc_zero(tc_acc (&acc)[NPW])
{
#pragma unroll
    for (int n = 0; n < NPW; n++)
        wmma::fill_fragment(acc[n], 0.0f);
}

/* C [M][N] = A B (tc_mm_acc from zero), into fp32 shared memory. */
template <int M, int N, int K, class LA, class LB>
__device__ __forceinline__ void tc_mm(float *C, int ldc, const bf16 *A, int lda, const bf16 *B, int ldb)
{
    tc_acc acc[tc_tiles<M, N>::PER_WARP];
    tc_zero(acc);
    tc_mm_acc<M, N, K, LA, LB>(acc, A, lda, B, ldb);
    tc_store<M, N>(C, ldc, acc);
}

/* C0 = A0 B0 and C1 = A1 B1, two products of one shape (the backward's
 * S = Q Kᵀ and dP = dO Vᵀ) with their output tiles dealt to the warps
 * as one list: where a product has fewer tiles than warps (4 at BR = BC
 * = 32), no warp idles while others take two. */
template <int M, int N, int K, class LA, class LB>
__device__ __forceinline__ void tc_mm_pair(float *C0, const bf16 *A0, const bf16 *B0, float *C1, const bf16 *A1,
                                           const bf16 *B1, int ldc, int lda, int ldb)
{
    constexpr int TILES = (M / 16) * (N / 16);
    for (int t = threadIdx.x >> 5; t < 2 * TILES; t += FA_THREADS / 32) {   /* the same for the whole warp */
        const int second = t >= TILES, u = t - second * TILES, mi = u / (N / 16), ni = u % (N / 16);
        const bf16 *A = second ? A1 : A0, *B = second ? B1 : B0;
        tc_acc c;
        wmma::fill_fragment(c, 0.0f);
        tc_tile_acc<K, LA, LB>(c, A, lda, B, ldb, mi, ni);
        wmma::store_matrix_sync((second ? C1 : C0) + mi * 16 * ldc + ni * 16, c, ldc, wmma::mem_row_major);
    }
}

/* Grid: B * H * nqt blocks (fa_qtile_of), as fa_fwd_kernel. */
template <int HDP, int BR, int BC>
__global__ void __launch_bounds__(FA_THREADS)
    tc_fwd_kernel(float *out, float *lse_g, float *lse_l, float *out_g, float *out_l, const float *q, const float *k,
                  const float *v, const int32_t *pos, const float *alpha, int T, int H, int KV, int hd, int kind,
                  int window, float scale, int nqt, dsk_half_out out_h)
{
    typedef tc_fwd_smem<HDP, BR, BC> L;
    typedef tc_ld<HDP, BC> ld;
    constexpr int RM = BR / 16, CN = BC / 16, DE = HDP / 16;
    extern __shared__ __align__(128) unsigned char tc_sm[];
    bf16 *Qs = (bf16 *)(tc_sm + L::q), *Ks = (bf16 *)(tc_sm + L::k), *Vs = (bf16 *)(tc_sm + L::v);
    bf16 *Pg = (bf16 *)(tc_sm + L::pg), *Pl = (bf16 *)(tc_sm + L::pl);
    float *S = (float *)(tc_sm + L::s);   /* the scores, then each part's P V */
    int (*first_sh)[BR] = (int (*)[BR])(tc_sm + L::first), *lo_sh = (int *)(tc_sm + L::lo);
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int use_g = kind != DSK_ATTN_LOCAL, use_l = kind != DSK_ATTN_GLOBAL;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;
    const int32_t *pb = pos + (size_t)b * T;

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    fa_load_bf16<HDP, BR>(Qs, q + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pb, window, use_g, lo_sh);
    __syncthreads();
    fa_fwd_rows<RM, DE> st;
    fa_fwd_start<RM, DE, BR>(st, first_sh, i0, T, ty);
    /* o[ri][e] += (P V)[ty + 16 ri][tx + 16 e], the product through S's space. */
    auto add_pv = [&](float (&o)[RM][DE], const bf16 *P) {
        tc_mm<BR, HDP, BC, wmma::row_major, wmma::row_major>(S, ld::O, P, ld::P, Vs, ld::H);
        __syncthreads();
#pragma unroll
        for (int ri = 0; ri < RM; ri++)
#pragma unroll
            for (int e = 0; e < DE; e++)
                o[ri][e] += S[(ty + 16 * ri) * ld::O + tx + 16 * e];
    };
    const int kt_lo = *lo_sh / BC, kt_hi = (i_end - 1) / BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * BC;
        __syncthreads();   /* the previous tile's K, V, P and products are read */
        fa_load_bf16<HDP, BC>(Ks, kb, ks, j0, T, hd);
        fa_load_bf16<HDP, BC>(Vs, vb, ks, j0, T, hd);
        __syncthreads();
        tc_mm<BR, BC, HDP, wmma::row_major, wmma::col_major>(S, ld::S, Qs, ld::H, Ks, ld::H);
        __syncthreads();
        float s[RM][CN];
#pragma unroll
        for (int ri = 0; ri < RM; ri++)
#pragma unroll
            for (int ci = 0; ci < CN; ci++)
                s[ri][ci] = S[(ty + 16 * ri) * ld::S + tx + 16 * ci] * scale;
        if (use_g)
            fa_online<RM, CN, DE>(s, st.mg, st.lg, st.og, st.fg, st.last, j0 + tx, Pg, ld::P, tx, ty);
        if (use_l)
            fa_online<RM, CN, DE>(s, st.ml, st.ll, st.ol, st.fl, st.last, j0 + tx, Pl, ld::P, tx, ty);
        __syncthreads();   /* P written, S read: its space takes P V */
        if (use_g)
            add_pv(st.og, Pg);
        if (use_l) {
            if (use_g)
                __syncthreads();   /* P_g V is read */
            add_pv(st.ol, Pl);
        }
    }
    fa_fwd_out<RM, DE>(out, lse_g, lse_l, out_g, out_l, st, fa_weight(kind, alpha), use_g, use_l, b, T, qs, h, hd, bh,
                       i0, tx, ty, out_h);
}

/* fa_grad over a thread's part of a tile (rows ty + 16 ri, query
 * i0 + row, whose statistics row(ri) gives; keys tx + 16 ci, key
 * j0 + column), from the unscaled scores S and dP in shared memory;
 * into the bf16 tiles dS, and Pm (P_mix) when WANT_P. */
template <bool WANT_P, int RM, int CN, int LDS, int LDP, class Row>
__device__ __forceinline__ void tc_grad_tile(bf16 *Pm, bf16 *dS, const float *S, const float *dP, Row row, int i0,
                                             int j0, float scale, float a, int use_g, int use_l, int tx, int ty)
{
#pragma unroll
    for (int ri = 0; ri < RM; ri++) {
        const int r = ty + 16 * ri;
        const fa_row st = row(ri);
#pragma unroll
        for (int ci = 0; ci < CN; ci++) {
            const int c = tx + 16 * ci;
            float pm, ds;
            fa_grad(S[r * LDS + c] * scale, dP[r * LDS + c], j0 + c, i0 + r, st.fg, st.fl, st.lg, st.ll, st.dg, st.dl,
                    a, use_g, use_l, &pm, &ds);
            if (WANT_P)
                Pm[r * LDP + c] = __float2bfloat16_rn(pm);
            dS[r * LDP + c] = __float2bfloat16_rn(ds);
        }
    }
}

/* Rows [0, rows) x dims [0, hd) of an fp32 [.][tc_ld::O] tile to a head
 * of a [B, T, heads * hd] tensor, times `mul`: rows r0 + r of batch row
 * b, head `head` (row stride `stride`), coalesced. */
template <int HDP>
__device__ __forceinline__ void tc_put_rows(float *g, const float *tile, float mul, int b, int T, size_t stride,
                                            int head, int hd, int r0, int rows, dsk_half_out g_h = {NULL, 0})
{
    for (int x = threadIdx.x; x < rows * hd; x += FA_THREADS) {
        int r = x / hd, d = x % hd;
        size_t i = ((size_t)b * T + r0 + r) * stride + (size_t)head * hd + d;
        float y = mul * tile[r * tc_ld<HDP, 16>::O + d];
        g[i] = y;
        g_h.put(i, y);
    }
}

/* dK, dV: a block per (b, kv head, key tile), grid B * KV * nkt, as
 * fa_bwd_dkdv_kernel (tile_lo over query tiles of BR rows). */
template <int HDP, int BR, int BC>
__global__ void __launch_bounds__(FA_THREADS)
    tc_dkdv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                   const float *lse_g, const float *lse_l, const float *Dg, const float *Dl, const int *tile_lo,
                   const int32_t *pos, const float *alpha, int T, int H, int KV, int hd, int kind, int window,
                   float scale, int nqt, int nkt, dsk_half_out dv_h)
{
    typedef tc_bwd_smem<HDP, BR, BC, true, BC, 2> L;
    typedef tc_ld<HDP, BC> ld;
    constexpr int RM = BR / 16, CN = BC / 16, NPW = tc_tiles<BC, HDP>::PER_WARP;
    extern __shared__ __align__(128) unsigned char tc_sm[];
    bf16 *Ks = (bf16 *)(tc_sm + L::k), *Vs = (bf16 *)(tc_sm + L::v), *Qs = (bf16 *)(tc_sm + L::q),
         *dOs = (bf16 *)(tc_sm + L::dO), *Pm = (bf16 *)(tc_sm + L::pm), *dSs = (bf16 *)(tc_sm + L::ds);
    float *S = (float *)(tc_sm + L::s), *dP = (float *)(tc_sm + L::dp);
    int (*first_sh)[BR] = (int (*)[BR])(tc_sm + L::first);
    float (*lse_sh)[BR] = (float (*)[BR])(tc_sm + L::lse), (*D_sh)[BR] = (float (*)[BR])(tc_sm + L::D);
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int use_g = kind != DSK_ATTN_LOCAL, use_l = kind != DSK_ATTN_GLOBAL;
    const fa_kvtile t = fa_kvtile_of<BC>(T, H, KV, hd, nkt);
    const int b = t.b, kvh = t.kvh, j0 = t.j0, j_end = t.j_end;
    const size_t qs = t.qs, ks = t.ks;
    const int32_t *pb = pos + (size_t)b * T;
    const float a = fa_weight(kind, alpha);

    fa_load_bf16<HDP, BC>(Ks, k + (size_t)b * T * ks + (size_t)kvh * hd, ks, j0, T, hd);
    fa_load_bf16<HDP, BC>(Vs, v + (size_t)b * T * ks + (size_t)kvh * hd, ks, j0, T, hd);
    tc_acc dka[NPW], dva[NPW];   /* [BC][HDP], tiles warp + 8 n */
    tc_zero(dka);
    tc_zero(dva);

    fa_each_query_tile<BR>(t, q, dout, tile_lo, T, H, hd, nqt,
                           [&](size_t bhT, const float *qb, const float *dob, int i0, int i_end) {
        __syncthreads();   /* the previous tile's Q, dO, P_mix, dS and stats are read */
        fa_load_bf16<HDP, BR>(Qs, qb, qs, i0, i_end, hd);
        fa_load_bf16<HDP, BR>(dOs, dob, qs, i0, i_end, hd);
        fa_row_stats<BR>(first_sh, lse_sh, D_sh, i0, T, pb, lse_g, lse_l, Dg, Dl, bhT, window, use_g, use_l, NULL);
        __syncthreads();
        tc_mm_pair<BR, BC, HDP, wmma::row_major, wmma::col_major>(S, Qs, Ks, dP, dOs, Vs, ld::S, ld::H, ld::H);
        __syncthreads();
        tc_grad_tile<true, RM, CN, ld::S, ld::P>(
            Pm, dSs, S, dP, [&](int ri) { return fa_row_at(first_sh, lse_sh, D_sh, ty + 16 * ri); }, i0, j0,
            scale, a, use_g, use_l, tx, ty);
        __syncthreads();
        /* dV += P_mixᵀ dO, dK += dSᵀ Q (scaled at the end). */
        tc_mm_acc<BC, HDP, BR, wmma::col_major, wmma::row_major>(dva, Pm, ld::P, dOs, ld::H);
        tc_mm_acc<BC, HDP, BR, wmma::col_major, wmma::row_major>(dka, dSs, ld::P, Qs, ld::H);
    });
    __syncthreads();   /* the tiles are read: their space takes the results */
    float *dv_t = (float *)(tc_sm + L::out), *dk_t = (float *)(tc_sm + L::out + L::out_len);
    tc_store<BC, HDP>(dv_t, ld::O, dva);
    tc_store<BC, HDP>(dk_t, ld::O, dka);
    __syncthreads();
    tc_put_rows<HDP>(dv, dv_t, 1.0f, b, T, ks, kvh, hd, j0, j_end - j0, dv_h);
    tc_put_rows<HDP>(dk, dk_t, scale, b, T, ks, kvh, hd, j0, j_end - j0);
}

/* dQ: a block per (b, h, query tile), grid B * H * nqt (fa_qtile_of). */
template <int HDP, int BR, int BC>
__global__ void __launch_bounds__(FA_THREADS)
    tc_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v, const float *lse_g,
                 const float *lse_l, const float *Dg, const float *Dl, const int32_t *pos, const float *alpha, int T,
                 int H, int KV, int hd, int kind, int window, float scale, int nqt)
{
    typedef tc_bwd_smem<HDP, BR, BC, false, BR, 1> L;
    typedef tc_ld<HDP, BC> ld;
    constexpr int RM = BR / 16, CN = BC / 16, NPW = tc_tiles<BR, HDP>::PER_WARP;
    extern __shared__ __align__(128) unsigned char tc_sm[];
    bf16 *Ks = (bf16 *)(tc_sm + L::k), *Vs = (bf16 *)(tc_sm + L::v), *Qs = (bf16 *)(tc_sm + L::q),
         *dOs = (bf16 *)(tc_sm + L::dO), *dSs = (bf16 *)(tc_sm + L::ds);
    float *S = (float *)(tc_sm + L::s), *dP = (float *)(tc_sm + L::dp);
    int (*first_sh)[BR] = (int (*)[BR])(tc_sm + L::first), *lo_sh = (int *)(tc_sm + L::lo);
    float (*lse_sh)[BR] = (float (*)[BR])(tc_sm + L::lse), (*D_sh)[BR] = (float (*)[BR])(tc_sm + L::D);
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int use_g = kind != DSK_ATTN_LOCAL, use_l = kind != DSK_ATTN_GLOBAL;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;
    const float a = fa_weight(kind, alpha);

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    fa_load_bf16<HDP, BR>(Qs, q + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    fa_load_bf16<HDP, BR>(dOs, dout + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    __syncthreads();
    fa_row_stats<BR>(first_sh, lse_sh, D_sh, i0, T, pos + (size_t)b * T, lse_g, lse_l, Dg, Dl, bh * T, window, use_g,
                     use_l, lo_sh);
    __syncthreads();
    fa_row st[RM];
#pragma unroll
    for (int ri = 0; ri < RM; ri++)
        st[ri] = fa_row_at(first_sh, lse_sh, D_sh, ty + 16 * ri);
    tc_acc dqa[NPW];   /* [BR][HDP], tiles warp + 8 n */
    tc_zero(dqa);
    const int kt_lo = *lo_sh / BC, kt_hi = (i_end - 1) / BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * BC;
        __syncthreads();   /* the previous tile's K and dS are read */
        fa_load_bf16<HDP, BC>(Ks, kb, ks, j0, T, hd);
        fa_load_bf16<HDP, BC>(Vs, vb, ks, j0, T, hd);
        __syncthreads();
        tc_mm_pair<BR, BC, HDP, wmma::row_major, wmma::col_major>(S, Qs, Ks, dP, dOs, Vs, ld::S, ld::H, ld::H);
        __syncthreads();
        tc_grad_tile<false, RM, CN, ld::S, ld::P>(NULL, dSs, S, dP, [&](int ri) { return st[ri]; }, i0, j0, scale, a,
                                                  use_g, use_l, tx, ty);
        __syncthreads();
        tc_mm_acc<BR, HDP, BC, wmma::row_major, wmma::row_major>(dqa, dSs, ld::P, Ks, ld::H);   /* dQ += dS K */
    }
    __syncthreads();
    float *dq_t = (float *)(tc_sm + L::out);
    tc_store<BR, HDP>(dq_t, ld::O, dqa);
    __syncthreads();
    tc_put_rows<HDP>(dq, dq_t, scale, b, T, qs, h, hd, i0, i_end - i0);
}

/* ---- launches ---- */

template <int HDP>
static void tc_fwd_launch(dsk_cuda *cb, float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                          const float *q, const float *k, const float *v, const int32_t *pos, const float *alpha,
                          const dsk_attn_shape *s, dsk_half_out out_h)
{
    enum { BR = tc_cfg<HDP>::F_BR, BC = tc_cfg<HDP>::F_BC };
    constexpr size_t smem = tc_fwd_smem<HDP, BR, BC>::bytes;
    static_assert(smem <= 99 * 1024, "over sm_86's 99 KB of shared memory");
    const int nqt = (s->T + BR - 1) / BR;
    auto *kern = tc_fwd_kernel<HDP, BR, BC>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    unsigned grid = fa_grid((unsigned long long)s->B * s->H * nqt, "attention_fwd");
    kern<<<grid, FA_THREADS, smem, cb->stream>>>(out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s->T, s->H,
                                                 s->KV, s->hd, s->kind, s->window, 1.0f / sqrtf((float)s->hd), nqt,
                                                 out_h);
    LAUNCHED(cb, "attention_fwd (tensor cores)");
}

void dsk_cuda_attention_tc_fwd(dsk_cuda *cb, int hdp, float *out, float *lse_g, float *lse_l, float *out_g,
                               float *out_l, const float *q, const float *k, const float *v, const int32_t *pos,
                               const float *alpha, const dsk_attn_shape *s, dsk_half_out out_h)
{
    switch (hdp) {
    case 16: tc_fwd_launch<16>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    case 32: tc_fwd_launch<32>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    case 64: tc_fwd_launch<64>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    case 128: tc_fwd_launch<128>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    default: tc_fwd_launch<256>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    }
}

int dsk_cuda_attention_tc_kv_rows(int hdp)
{
    switch (hdp) {   /* as tc_bwd_launch<hdp> */
    case 16: return tc_cfg<16>::KV_BR;
    case 32: return tc_cfg<32>::KV_BR;
    case 64: return tc_cfg<64>::KV_BR;
    case 128: return tc_cfg<128>::KV_BR;
    default: return tc_cfg<256>::KV_BR;
    }
}

template <int HDP>
static void tc_bwd_launch(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *q,
                          const float *k, const float *v, const float *lse_g, const float *lse_l, const float *Dg,
                          const float *Dl, const int *tile_lo, const int32_t *pos, const float *alpha,
                          const dsk_attn_shape *s, dsk_half_out dv_h)
{
    enum { KV_BR = tc_cfg<HDP>::KV_BR, KV_BC = tc_cfg<HDP>::KV_BC, Q_BR = tc_cfg<HDP>::Q_BR, Q_BC = tc_cfg<HDP>::Q_BC };
    constexpr size_t smem_kv = tc_bwd_smem<HDP, KV_BR, KV_BC, true, KV_BC, 2>::bytes;
    constexpr size_t smem_q = tc_bwd_smem<HDP, Q_BR, Q_BC, false, Q_BR, 1>::bytes;
    static_assert(smem_kv <= 99 * 1024 && smem_q <= 99 * 1024, "over sm_86's 99 KB of shared memory");
    const int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const int kv_nqt = (T + KV_BR - 1) / KV_BR, nkt = (T + KV_BC - 1) / KV_BC, q_nqt = (T + Q_BR - 1) / Q_BR;
    auto *kkv = tc_dkdv_kernel<HDP, KV_BR, KV_BC>;
    auto *kq = tc_dq_kernel<HDP, Q_BR, Q_BC>;
    CUDA_CHECK(cudaFuncSetAttribute(kkv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
    CUDA_CHECK(cudaFuncSetAttribute(kq, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
    unsigned grid_kv = fa_grid((unsigned long long)B * KV * nkt, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, "dk, dv (tensor cores)");
        kkv<<<grid_kv, FA_THREADS, smem_kv, cb->stream>>>(dk, dv, dout, q, k, v, lse_g, lse_l, Dg, Dl, tile_lo, pos,
                                                          alpha, T, H, KV, hd, s->kind, s->window, scale, kv_nqt, nkt,
                                                          dv_h);
        LAUNCHED(cb, "attention_bwd (dk, dv; tensor cores)");
    }
    unsigned grid_q = fa_grid((unsigned long long)B * H * q_nqt, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, "dq (tensor cores)");
        kq<<<grid_q, FA_THREADS, smem_q, cb->stream>>>(dq, dout, q, k, v, lse_g, lse_l, Dg, Dl, pos, alpha, T, H, KV,
                                                       hd, s->kind, s->window, scale, q_nqt);
        LAUNCHED(cb, "attention_bwd (dq; tensor cores)");
    }
}

void dsk_cuda_attention_tc_bwd(dsk_cuda *cb, int hdp, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *lse_g, const float *lse_l,
                               const float *Dg, const float *Dl, const int *tile_lo, const int32_t *pos,
                               const float *alpha, const dsk_attn_shape *s, dsk_half_out dv_h)
{
#define TC_BWD(H) tc_bwd_launch<H>(cb, dq, dk, dv, dout, q, k, v, lse_g, lse_l, Dg, Dl, tile_lo, pos, alpha, s, dv_h)
    switch (hdp) {
    case 16: TC_BWD(16); break;
    case 32: TC_BWD(32); break;
    case 64: TC_BWD(64); break;
    case 128: TC_BWD(128); break;
    default: TC_BWD(256); break;
    }
#undef TC_BWD
}
