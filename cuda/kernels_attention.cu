/* Attention: flash-attention kernels for training (forward and
 * backward, nothing T x T in memory) and a fused decoding kernel.
 *
 * Training (FlashAttention-2, fp32 on CUDA cores; kernels_attention_tc.cu
 * has the bf16 tensor-core variant that gemm_dtype bf16 / fp16 selects,
 * and attention_tiles.cuh what the two share).  A block of 256
 * threads is a 16 x 16 grid (tx, ty).  Tiles: BR = 16 RM query rows and
 * BC = 16 CN keys; a thread holds the scores of rows ty + 16 ri and keys
 * tx + 16 ci, and accumulates rows of an output over dims tx + 16 e.
 * Tiles sit in shared memory with rows padded to HDP + 1 floats (HDP:
 * the head size rounded up to 16, 32, 64, 128 or 256, zeros past hd), so
 * a column read across rows hits distinct banks.  Tile sizes per HDP
 * (fa_cfg) keep a block's shared memory under 84 KB, so every sm_80+
 * part runs them (99 KB per block on the smallest).
 * Masks (dsk_attn_first, lib/ops/attn_first.h): query i sees keys [first_part(i), i]; a key tile
 * outside [min first of the query tile, last query of the tile] is
 * skipped, so local layers cost T x window.
 *
 * - forward, a block per (b, h, query tile): K/V tiles in turn, online
 *   softmax (running max m and sum l per row), the global and local
 *   parts side by side for hybrid layers (same scores, other mask).
 *   Saves lse = m + log l per part, and each part's output for hybrid.
 * - backward: P_part = exp(scale q.k - lse_part) is recomputed;
 *   D_part = dO . O_part per row (a prep kernel, with d alpha's per-row
 *   terms dO . (O_g - O_l));
 *   dS = a P_g (dP - D_g) + (1 - a) P_l (dP - D_l), dP = dO V^T (a = 1
 *   global, 0 local, alpha hybrid).  dK/dV: a block per (b, kv head, key
 *   tile) walks every query tile of every query head of its group in a
 *   fixed order (dV += P_mix^T dO, dK += scale dS^T Q); dQ: a block per
 *   (b, h, query tile) walks the key tiles (dQ = scale dS K).  Each
 *   output element has one owner and fixed sums, d alpha a fixed tree:
 *   the same bits on every run, no atomics on floats.
 *
 * Decoding: a block per (query, head), warps taking keys in turn with an
 * online softmax (global and local state side by side for hybrid
 * layers), merged across warps at the end. */
#include "attention_tiles.cuh"

/* c[0] scale, c[1] 0, c[2] 1, c[3] alpha, c[4] 1 - alpha (alpha: 1 global, 0 local): decoding's constants. */
enum { C_SCALE, C_ZERO, C_ONE, C_A, C_1MA, N_CONSTS = 8 };

__global__ void attn_consts_kernel(float *c, const float *alpha, int kind, float scale)
{
    float a = kind == DSK_ATTN_GLOBAL ? 1.0f : kind == DSK_ATTN_LOCAL ? 0.0f : alpha[0];
    c[C_SCALE] = scale;
    c[C_ZERO] = 0;
    c[C_ONE] = 1;
    c[C_A] = a;
    c[C_1MA] = 1 - a;
}

/* ---- training: flash attention ---- */


/* Tiles per head-size bound: forward, dK/dV and dQ kernels, (RM, CN)
 * each, BR = 16 RM query rows and BC = 16 CN keys. */
template <int HDP> struct fa_cfg;
template <> struct fa_cfg<16> { enum { F_RM = 4, F_CN = 4, KV_RM = 4, KV_CN = 4, Q_RM = 4, Q_CN = 4 }; };
template <> struct fa_cfg<32> { enum { F_RM = 4, F_CN = 4, KV_RM = 4, KV_CN = 4, Q_RM = 4, Q_CN = 4 }; };
template <> struct fa_cfg<64> { enum { F_RM = 4, F_CN = 4, KV_RM = 4, KV_CN = 2, Q_RM = 4, Q_CN = 2 }; };
template <> struct fa_cfg<128> { enum { F_RM = 4, F_CN = 2, KV_RM = 2, KV_CN = 2, Q_RM = 2, Q_CN = 2 }; };
template <> struct fa_cfg<256> { enum { F_RM = 2, F_CN = 1, KV_RM = 1, KV_CN = 1, Q_RM = 1, Q_CN = 1 }; };

/* Dynamic shared memory of each kernel (floats): [rows][HDP + 1] tiles
 * and [BR][BC + 1] probability / gradient tiles. */
static constexpr size_t fa_fwd_smem(int HDP, int RM, int CN)
{
    return ((size_t)(16 * RM + 2 * 16 * CN) * (HDP + 1) + (size_t)2 * 16 * RM * (16 * CN + 1)) * sizeof(float);
}
static constexpr size_t fa_dkdv_smem(int HDP, int RM, int CN)
{
    return ((size_t)(2 * 16 * RM + 2 * 16 * CN) * (HDP + 1) + (size_t)2 * 16 * RM * (16 * CN + 1)) * sizeof(float);
}
static constexpr size_t fa_dq_smem(int HDP, int RM, int CN)
{
    return ((size_t)(2 * 16 * RM + 2 * 16 * CN) * (HDP + 1) + (size_t)16 * RM * (16 * CN + 1)) * sizeof(float);
}

/* Rows [r0, r0 + ROWS) of a head's [T, hd] slice (row stride `stride`)
 * into a [ROWS][HDP + 1] tile; zeros past r_end and past hd, so padded
 * products add nothing and never read garbage. */
template <int HDP, int ROWS>
__device__ __forceinline__ void fa_load(float *tile, const float *g, size_t stride, int r0, int r_end, int hd)
{
    for (int x = threadIdx.x; x < ROWS * HDP; x += FA_THREADS) {
        int r = x / HDP, d = x % HDP, i = r0 + r;
        tile[r * (HDP + 1) + d] = i < r_end && d < hd ? g[(size_t)i * stride + d] : 0.0f;
    }
}

/* The same rows of two slices (K and V, or Q and dO) into two tiles. */
template <int HDP, int ROWS>
__device__ __forceinline__ void fa_load_pair(float *tile_a, float *tile_b, const float *a, const float *b,
                                             size_t stride, int r0, int r_end, int hd)
{
    fa_load<HDP, ROWS>(tile_a, a, stride, r0, r_end, hd);
    fa_load<HDP, ROWS>(tile_b, b, stride, r0, r_end, hd);
}


/* s[ri][ci] = A[ty + 16 ri] . B[tx + 16 ci] over the first hd dims. */
template <int HDP, int RM, int CN>
__device__ __forceinline__ void fa_dots(float (&s)[RM][CN], const float *A, const float *Bt, int hd, int tx, int ty)
{
    fa_zero(s);
#pragma unroll 4
    for (int d = 0; d < hd; d++) {
        float a[RM], b[CN];
#pragma unroll
        for (int ri = 0; ri < RM; ri++)
            a[ri] = A[(ty + 16 * ri) * (HDP + 1) + d];
#pragma unroll
        for (int ci = 0; ci < CN; ci++)
            b[ci] = Bt[(tx + 16 * ci) * (HDP + 1) + d];
#pragma unroll
        for (int ri = 0; ri < RM; ri++)
#pragma unroll
            for (int ci = 0; ci < CN; ci++)
                s[ri][ci] = fmaf(a[ri], b[ci], s[ri][ci]);
    }
}

/* x[e] = row r of a [rows][HDP + 1] tile at dims tx + 16 e. */
template <int HDP, int DE>
__device__ __forceinline__ void fa_row_seg(float (&x)[DE], const float *tile, int r, int tx)
{
#pragma unroll
    for (int e = 0; e < DE; e++)
        x[e] = tile[r * (HDP + 1) + tx + 16 * e];
}

/* o[ri][e] += P[ty + 16 ri][c] x[e]: column c of a [BR][16 CN + 1]
 * probability or gradient tile times a row segment (fa_row_seg). */
template <int CN, int RM, int DE>
__device__ __forceinline__ void fa_acc_col(float (&o)[RM][DE], const float *P, int c, const float (&x)[DE], int ty)
{
#pragma unroll
    for (int ri = 0; ri < RM; ri++) {
        float p = P[(ty + 16 * ri) * (16 * CN + 1) + c];
#pragma unroll
        for (int e = 0; e < DE; e++)
            o[ri][e] = fmaf(p, x[e], o[ri][e]);
    }
}

/* o += P X over the first c_end keys: columns of P, rows of X (a
 * [BC][HDP + 1] tile), fa_acc_col for each. */
template <int HDP, int CN, int RM, int DE>
__device__ __forceinline__ void fa_acc_tile(float (&o)[RM][DE], const float *P, const float *X, int c_end, int tx,
                                            int ty)
{
#pragma unroll 2
    for (int c = 0; c < c_end; c++) {
        float x[DE];
        fa_row_seg<HDP>(x, X, c, tx);
        fa_acc_col<CN>(o, P, c, x, ty);
    }
}


/* Grid: B * H * nqt blocks (fa_qtile_of). */
template <int HDP, int RM, int CN>
__global__ void __launch_bounds__(FA_THREADS)
    fa_fwd_kernel(float *out, float *lse_g, float *lse_l, float *out_g, float *out_l, const float *q, const float *k,
                  const float *v, const int32_t *pos, const float *alpha, int T, int H, int KV, int hd, int kind,
                  int window, float scale, int nqt, dsk_half_out out_h)
{
    constexpr int BR = 16 * RM, BC = 16 * CN, DE = HDP / 16, LD = HDP + 1, PLD = BC + 1;
    extern __shared__ float fa_sm[];
    float *Qs = fa_sm, *Ks = Qs + BR * LD, *Vs = Ks + BC * LD, *Pg = Vs + BC * LD, *Pl = Pg + BR * PLD;
    __shared__ int first_sh[2][BR];
    __shared__ int lo_sh;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int use_g = kind != DSK_ATTN_LOCAL, use_l = kind != DSK_ATTN_GLOBAL;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;
    const int32_t *pb = pos + (size_t)b * T;

    if (threadIdx.x == 0)
        lo_sh = INT_MAX;
    fa_load<HDP, BR>(Qs, q + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    __syncthreads();
    fa_row_masks<BR>(first_sh, i0, T, pb, window, use_g, &lo_sh);
    __syncthreads();
    fa_fwd_rows<RM, DE> st;
    fa_fwd_start<RM, DE, BR>(st, first_sh, i0, T, ty);
    const int kt_lo = lo_sh / BC, kt_hi = (i_end - 1) / BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * BC;
        __syncthreads();   /* the previous tile's K, V and P are read */
        fa_load_pair<HDP, BC>(Ks, Vs, kb, vb, ks, j0, T, hd);
        __syncthreads();
        float s[RM][CN];
        fa_dots<HDP, RM, CN>(s, Qs, Ks, hd, tx, ty);
#pragma unroll
        for (int ri = 0; ri < RM; ri++)
#pragma unroll
            for (int ci = 0; ci < CN; ci++)
                s[ri][ci] *= scale;
        if (use_g)
            fa_online<RM, CN, DE>(s, st.mg, st.lg, st.og, st.fg, st.last, j0 + tx, Pg, PLD, tx, ty);
        if (use_l)
            fa_online<RM, CN, DE>(s, st.ml, st.ll, st.ol, st.fl, st.last, j0 + tx, Pl, PLD, tx, ty);
        __syncthreads();
        /* O += P V (fa_acc_tile, each row of V serving both parts); keys
         * past the tile's last query have p = 0 for every row. */
        const int c_end = min(BC, i_end - j0);
#pragma unroll 2
        for (int c = 0; c < c_end; c++) {
            float vv[DE];
            fa_row_seg<HDP>(vv, Vs, c, tx);
            if (use_g)
                fa_acc_col<CN>(st.og, Pg, c, vv, ty);
            if (use_l)
                fa_acc_col<CN>(st.ol, Pl, c, vv, ty);
        }
    }

    fa_fwd_out<RM, DE>(out, lse_g, lse_l, out_g, out_l, st, fa_weight(kind, alpha), use_g, use_l, b, T, qs, h, hd, bh,
                       i0, tx, ty, out_h);
}

/* fa_grad over a thread's part of a tile, from its unscaled scores s
 * and dp (fa_dots): rows ty + 16 ri (query i0 + row, whose statistics
 * row(ri) gives), keys tx + 16 ci (key j0 + column); into [BR][BC + 1]
 * tiles dS, and Pm (P_mix) when WANT_P. */
template <bool WANT_P, int RM, int CN, class Row>
__device__ __forceinline__ void fa_grad_tile(float *Pm, float *dS, const float (&s)[RM][CN],
                                             const float (&dp)[RM][CN], Row row, int i0, int j0, float scale, float a,
                                             int use_g, int use_l, int tx, int ty)
{
#pragma unroll
    for (int ri = 0; ri < RM; ri++) {
        int r = ty + 16 * ri, i = i0 + r;
        const fa_row st = row(ri);
#pragma unroll
        for (int ci = 0; ci < CN; ci++) {
            int c = tx + 16 * ci;
            float pm, ds;
            fa_grad(s[ri][ci] * scale, dp[ri][ci], j0 + c, i, st.fg, st.fl, st.lg, st.ll, st.dg, st.dl, a, use_g,
                    use_l, &pm, &ds);
            if (WANT_P)
                Pm[r * (16 * CN + 1) + c] = pm;
            dS[r * (16 * CN + 1) + c] = ds;
        }
    }
}

/* dK, dV: a block per (b, kv head, key tile), grid B * KV * nkt.
 * tile_lo[b * nqt + qt]: the smallest first key of query tile qt (of
 * the part that sees most), so tiles that see none of these keys are
 * skipped. */
template <int HDP, int RM, int CN>
__global__ void __launch_bounds__(FA_THREADS)
    fa_bwd_dkdv_kernel(float *dk, float *dv, const float *dout, const float *q, const float *k, const float *v,
                       const float *lse_g, const float *lse_l, const float *Dg, const float *Dl, const int *tile_lo,
                       const int32_t *pos, const float *alpha, int T, int H, int KV, int hd, int kind, int window,
                       float scale, int nqt, int nkt, dsk_half_out dv_h)
{
    constexpr int BR = 16 * RM, BC = 16 * CN, DE = HDP / 16, LD = HDP + 1, PLD = BC + 1;
    extern __shared__ float fa_sm[];
    float *Ks = fa_sm, *Vs = Ks + BC * LD, *Qs = Vs + BC * LD, *dOs = Qs + BR * LD, *Pm = dOs + BR * LD,
          *dSs = Pm + BR * PLD;
    __shared__ int first_sh[2][BR];
    __shared__ float lse_sh[2][BR], D_sh[2][BR];
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int use_g = kind != DSK_ATTN_LOCAL, use_l = kind != DSK_ATTN_GLOBAL;
    const fa_kvtile t = fa_kvtile_of<BC>(T, H, KV, hd, nkt);
    const int b = t.b, kvh = t.kvh, j0 = t.j0, j_end = t.j_end;
    const size_t qs = t.qs, ks = t.ks;
    const int32_t *pb = pos + (size_t)b * T;
    const float a = fa_weight(kind, alpha);

    fa_load_pair<HDP, BC>(Ks, Vs, k + (size_t)b * T * ks + (size_t)kvh * hd, v + (size_t)b * T * ks + (size_t)kvh * hd,
                          ks, j0, T, hd);
    float dka[CN][DE], dva[CN][DE];   /* keys ty + 16 ci, dims tx + 16 e */
    fa_zero(dka);
    fa_zero(dva);

    fa_each_query_tile<BR>(t, q, dout, tile_lo, T, H, hd, nqt,
                           [&](size_t bhT, const float *qb, const float *dob, int i0, int i_end) {
        __syncthreads();   /* the previous tile's Q, dO, P, dS and stats are read */
        fa_load_pair<HDP, BR>(Qs, dOs, qb, dob, qs, i0, i_end, hd);
        fa_row_stats<BR>(first_sh, lse_sh, D_sh, i0, T, pb, lse_g, lse_l, Dg, Dl, bhT, window, use_g, use_l, NULL);
        __syncthreads();
        float s[RM][CN], dp[RM][CN];
        fa_dots<HDP, RM, CN>(s, Qs, Ks, hd, tx, ty);
        fa_dots<HDP, RM, CN>(dp, dOs, Vs, hd, tx, ty);
        fa_grad_tile<true>(
            Pm, dSs, s, dp, [&](int ri) { return fa_row_at(first_sh, lse_sh, D_sh, ty + 16 * ri); }, i0, j0, scale,
            a, use_g, use_l, tx, ty);
        __syncthreads();
        /* dV += Pmᵀ dO, dK += dSᵀ Q (scaled at the end), rows in order. */
        const int r_end = i_end - i0;
#pragma unroll 2
        for (int r = 0; r < r_end; r++) {
            float qd[DE], od[DE];
            fa_row_seg<HDP>(qd, Qs, r, tx);
            fa_row_seg<HDP>(od, dOs, r, tx);
#pragma unroll
            for (int ci = 0; ci < CN; ci++) {
                float pm = Pm[r * PLD + ty + 16 * ci], ds = dSs[r * PLD + ty + 16 * ci];
#pragma unroll
                for (int e = 0; e < DE; e++) {
                    dva[ci][e] = fmaf(pm, od[e], dva[ci][e]);
                    dka[ci][e] = fmaf(ds, qd[e], dka[ci][e]);
                }
            }
        }
    });
    fa_store<CN, DE>(b, T, ks, kvh, hd, j0, j_end, tx, ty, [&](int ci, int e, size_t row, int d) {
        dk[row + d] = scale * dka[ci][e];
        dv[row + d] = dva[ci][e];
        dv_h.put(row + d, dva[ci][e]);
    });
}

/* dQ: a block per (b, h, query tile), grid B * H * nqt (fa_qtile_of). */
template <int HDP, int RM, int CN>
__global__ void __launch_bounds__(FA_THREADS)
    fa_bwd_dq_kernel(float *dq, const float *dout, const float *q, const float *k, const float *v, const float *lse_g,
                     const float *lse_l, const float *Dg, const float *Dl, const int32_t *pos, const float *alpha, int T,
                     int H, int KV, int hd, int kind, int window, float scale, int nqt)
{
    constexpr int BR = 16 * RM, BC = 16 * CN, DE = HDP / 16, LD = HDP + 1;
    extern __shared__ float fa_sm[];
    float *Qs = fa_sm, *dOs = Qs + BR * LD, *Ks = dOs + BR * LD, *Vs = Ks + BC * LD, *dSs = Vs + BC * LD;
    __shared__ int first_sh[2][BR];
    __shared__ float lse_sh[2][BR], D_sh[2][BR];
    __shared__ int lo_sh;
    const int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    const int use_g = kind != DSK_ATTN_LOCAL, use_l = kind != DSK_ATTN_GLOBAL;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;
    const float a = fa_weight(kind, alpha);

    if (threadIdx.x == 0)
        lo_sh = INT_MAX;
    fa_load_pair<HDP, BR>(Qs, dOs, q + (size_t)b * T * qs + (size_t)h * hd, dout + (size_t)b * T * qs + (size_t)h * hd,
                          qs, i0, i_end, hd);
    __syncthreads();
    fa_row_stats<BR>(first_sh, lse_sh, D_sh, i0, T, pos + (size_t)b * T, lse_g, lse_l, Dg, Dl, bh * T, window, use_g,
                     use_l, &lo_sh);
    __syncthreads();
    fa_row st[RM];
#pragma unroll
    for (int ri = 0; ri < RM; ri++)
        st[ri] = fa_row_at(first_sh, lse_sh, D_sh, ty + 16 * ri);
    float acc[RM][DE];
    fa_zero(acc);
    const int kt_lo = lo_sh / BC, kt_hi = (i_end - 1) / BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * BC;
        __syncthreads();   /* the previous tile's K and dS are read */
        fa_load_pair<HDP, BC>(Ks, Vs, kb, vb, ks, j0, T, hd);
        __syncthreads();
        float s[RM][CN], dp[RM][CN];
        fa_dots<HDP, RM, CN>(s, Qs, Ks, hd, tx, ty);
        fa_dots<HDP, RM, CN>(dp, dOs, Vs, hd, tx, ty);
        fa_grad_tile<false>(NULL, dSs, s, dp, [&](int ri) { return st[ri]; }, i0, j0, scale, a, use_g, use_l, tx, ty);
        __syncthreads();
        fa_acc_tile<HDP, CN>(acc, dSs, Ks, min(BC, i_end - j0), tx, ty);   /* dQ += dS K (scaled at the end) */
    }
    fa_store<RM, DE>(b, T, qs, h, hd, i0, T, tx, ty,
                     [&](int ri, int e, size_t row, int d) { dq[row + d] = scale * acc[ri][e]; });
}

/* A warp per (b, h, i), w = (b*H + h)*T + i: D = dO . O of each part
 * (O = out for one part, out_g / out_l for hybrid) and, for hybrid with
 * da, the row's d alpha term dO . (O_g - O_l). */
__global__ void fa_bwd_prep_kernel(float *Dg, float *Dl, float *da, const float *dout, const float *out,
                                   const float *out_g, const float *out_l, size_t rows, int T, int H, int hd, int kind)
{
    size_t w = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (w >= rows)
        return;   /* w is the same for the whole warp */
    size_t bh = w / (size_t)T, b = bh / (size_t)H;
    int i = (int)(w % (size_t)T), h = (int)(bh % (size_t)H);
    size_t off = (b * T + i) * (size_t)H * hd + (size_t)h * hd;
    if (kind == DSK_ATTN_HYBRID) {
        float sg = 0, sl = 0, sd = 0;
        for (int d = lane; d < hd; d += 32) {
            float o = dout[off + d], g = out_g[off + d], l = out_l[off + d];
            sg += o * g;
            sl += o * l;
            sd += o * (g - l);
        }
        sg = warp_sum(sg);
        sl = warp_sum(sl);
        sd = warp_sum(sd);
        if (lane == 0) {
            Dg[w] = sg;
            Dl[w] = sl;
            if (da)
                da[w] = sd;
        }
    } else {
        float s = 0;
        for (int d = lane; d < hd; d += 32)
            s += dout[off + d] * out[off + d];
        s = warp_sum(s);
        if (lane == 0)
            (kind == DSK_ATTN_GLOBAL ? Dg : Dl)[w] = s;
    }
}

/* tile_lo[b * nqt + qt]: the smallest first key over the rows of query
 * tile qt (BR rows) of batch row b; `local`: the local part's mask. */
__global__ void fa_tile_lo_kernel(int *tile_lo, const int32_t *pos, int B, int T, int nqt, int BR, int local,
                                  int window)
{
    size_t x = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (x >= (size_t)B * nqt)
        return;
    size_t b = x / (size_t)nqt;
    int qt = (int)(x % (size_t)nqt), lo = INT_MAX, end = min(qt * BR + BR, T);
    for (int i = qt * BR; i < end; i++)
        lo = min(lo, dsk_attn_first(i, pos[b * T + i], local, window));
    tile_lo[x] = lo;
}

/* dalpha[0] += the sum of part[0..n), in double over a fixed tree. */
__global__ void fa_dalpha_kernel(float *dalpha, const float *part, size_t n)
{
    __shared__ double sh[32];
    double s = 0;
    for (size_t i = threadIdx.x; i < n; i += blockDim.x)
        s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0)
        dalpha[0] += (float)s;
}

static void fa_check_shape(const dsk_attn_shape *s, const char *op)
{
    if (s->hd < 1 || s->hd > 256 || s->KV < 1 || s->H % s->KV != 0)
        dsk_die(EX_SOFTWARE, "cuda: %s: head size %d (1 to 256) or heads %d / kv heads %d not supported", op, s->hd,
                s->H, s->KV);
}

template <int HDP>
static void fa_fwd_launch(dsk_cuda *cb, float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                          const float *q, const float *k, const float *v, const int32_t *pos, const float *alpha,
                          const dsk_attn_shape *s, dsk_half_out out_h)
{
    enum { RM = fa_cfg<HDP>::F_RM, CN = fa_cfg<HDP>::F_CN };
    constexpr size_t smem = fa_fwd_smem(HDP, RM, CN);
    int nqt = (s->T + 16 * RM - 1) / (16 * RM);
    void (*kern)(float *, float *, float *, float *, float *, const float *, const float *, const float *,
                 const int32_t *, const float *, int, int, int, int, int, int, float, int, dsk_half_out) =
        fa_fwd_kernel<HDP, RM, CN>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    unsigned grid = fa_grid((unsigned long long)s->B * s->H * nqt, "attention_fwd");
    kern<<<grid, FA_THREADS, smem, cb->stream>>>(out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s->T, s->H,
                                                 s->KV, s->hd, s->kind, s->window, 1.0f / sqrtf((float)s->hd), nqt,
                                                 out_h);
    LAUNCHED(cb, "attention_fwd");
}

void dsk_cuda_attention_fwd(dsk_backend *be, float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                            const float *q, const float *k, const float *v, const int32_t *pos, const float *alpha,
                            const dsk_attn_shape *s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (s->B <= 0 || s->T <= 0 || s->H <= 0)
        return;
    fa_check_shape(s, "attention_fwd");
    if (dsk_cuda_attention_cudnn_fwd(cb, out, s->kind == DSK_ATTN_LOCAL ? lse_l : lse_g, q, k, v, pos, s))
        return;
    dsk_cuda_attention_async_reserve(cb, s, 0);
    /* The output goes on to the output projection: its 16-bit copy with it. */
    dsk_half_out out_h;
    dsk_cuda_half_produce(cb, (size_t)s->B * s->T * s->H * s->hd, out, &out_h, NULL, NULL);
    if (fa_use_mma(cb, s)) {
        dsk_cuda_attention_mma_fwd(cb, out, lse_g, lse_l, q, k, v, pos, s, out_h);
        return;
    }
    if (fa_use_tc(cb)) {
        dsk_cuda_attention_tc_fwd(cb, fa_hdp(s->hd), out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h);
        return;
    }
    switch (fa_hdp(s->hd)) {
    case 16: fa_fwd_launch<16>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    case 32: fa_fwd_launch<32>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    case 64: fa_fwd_launch<64>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    case 128: fa_fwd_launch<128>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    default: fa_fwd_launch<256>(cb, out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s, out_h); break;
    }
}

static size_t fa_align(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

template <int HDP>
static void fa_bwd_launch(dsk_cuda *cb, float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                          const float *out, const float *q, const float *k, const float *v, const float *lse_g,
                          const float *lse_l, const float *out_g, const float *out_l, const int32_t *pos,
                          const float *alpha, const dsk_attn_shape *s)
{
    enum { KV_RM = fa_cfg<HDP>::KV_RM, KV_CN = fa_cfg<HDP>::KV_CN, Q_RM = fa_cfg<HDP>::Q_RM, Q_CN = fa_cfg<HDP>::Q_CN };
    const int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, kind = s->kind;
    const int use_g = kind != DSK_ATTN_LOCAL, hybrid = kind == DSK_ATTN_HYBRID, want_da = hybrid && dalpha;
    const float scale = 1.0f / sqrtf((float)hd);
    const size_t rows = (size_t)B * H * T;
    const int tc = fa_use_tc(cb), mma = fa_use_mma(cb, s);
    const int kv_br = mma  ? dsk_cuda_attention_mma_kv_rows(HDP)
                      : tc ? dsk_cuda_attention_tc_kv_rows(HDP)
                           : 16 * KV_RM,
              kv_bc = 16 * KV_CN, q_br = 16 * Q_RM;
    const int kv_nqt = (T + kv_br - 1) / kv_br, nkt = (T + kv_bc - 1) / kv_bc, q_nqt = (T + q_br - 1) / q_br;

    /* Scratch: D_g, D_l, d alpha's row terms, the dK/dV kernel's tile table. */
    size_t len_f = fa_align(rows * sizeof(float)), off_dl = len_f, off_da = 2 * len_f, off_lo = 3 * len_f;
    char *scr = (char *)dsk_cuda_scratch(cb, off_lo + fa_align((size_t)B * kv_nqt * sizeof(int)));
    float *Dg = (float *)scr, *Dl = (float *)(scr + off_dl), *da = want_da ? (float *)(scr + off_da) : NULL;
    int *tile_lo = (int *)(scr + off_lo);
    if (mma)
        dsk_cuda_attention_async_reserve(cb, s, 1);
    /* dV goes on to its two products: its 16-bit copy with it (after the
     * scratch and the pipelined kernels' room, whose allocations may give
     * the copies' buffers back). */
    dsk_half_out dv_h;
    dsk_cuda_half_produce(cb, (size_t)B * T * KV * hd, dv, &dv_h, NULL, NULL);

    unsigned prep_blocks = fa_grid((rows + 7) / 8, "attention_bwd");
    {
        dsk_cuda_prof_scope timed(cb, "rowsum(dO * O)");
        fa_bwd_prep_kernel<<<prep_blocks, 256, 0, cb->stream>>>(Dg, Dl, da, dout, out, out_g, out_l, rows, T, H, hd,
                                                                kind);
        LAUNCHED(cb, "attention_bwd (dO . O)");
    }
    size_t n_tiles = (size_t)B * kv_nqt;
    {
        dsk_cuda_prof_scope timed(cb, "tile table");
        fa_tile_lo_kernel<<<(unsigned)((n_tiles + 127) / 128), 128, 0, cb->stream>>>(tile_lo, pos, B, T, kv_nqt, kv_br,
                                                                                     !use_g, s->window);
        LAUNCHED(cb, "attention_bwd (tiles)");
    }

    if (mma) {
        dsk_cuda_attention_mma_bwd(cb, dq, dk, dv, dout, q, k, v, lse_g, lse_l, Dg, Dl, tile_lo, pos, s, dv_h);
    } else if (tc) {
        dsk_cuda_attention_tc_bwd(cb, HDP, dq, dk, dv, dout, q, k, v, lse_g, lse_l, Dg, Dl, tile_lo, pos, alpha, s,
                                  dv_h);
    } else {
        constexpr size_t smem_kv = fa_dkdv_smem(HDP, KV_RM, KV_CN), smem_q = fa_dq_smem(HDP, Q_RM, Q_CN);
        void (*kkv)(float *, float *, const float *, const float *, const float *, const float *, const float *,
                    const float *, const float *, const float *, const int *, const int32_t *, const float *, int, int,
                    int, int, int, int, float, int, int, dsk_half_out) = fa_bwd_dkdv_kernel<HDP, KV_RM, KV_CN>;
        void (*kq)(float *, const float *, const float *, const float *, const float *, const float *, const float *,
                   const float *, const float *, const int32_t *, const float *, int, int, int, int, int, int, float,
                   int) = fa_bwd_dq_kernel<HDP, Q_RM, Q_CN>;
        CUDA_CHECK(cudaFuncSetAttribute(kkv, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_kv));
        CUDA_CHECK(cudaFuncSetAttribute(kq, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem_q));
        unsigned grid_kv = fa_grid((unsigned long long)B * KV * nkt, "attention_bwd");
        {
            dsk_cuda_prof_scope timed(cb, "dk, dv (fp32)");
            kkv<<<grid_kv, FA_THREADS, smem_kv, cb->stream>>>(dk, dv, dout, q, k, v, lse_g, lse_l, Dg, Dl, tile_lo,
                                                              pos, alpha, T, H, KV, hd, kind, s->window, scale, kv_nqt,
                                                              nkt, dv_h);
            LAUNCHED(cb, "attention_bwd (dk, dv)");
        }
        unsigned grid_q = fa_grid((unsigned long long)B * H * q_nqt, "attention_bwd");
        {
            dsk_cuda_prof_scope timed(cb, "dq (fp32)");
            kq<<<grid_q, FA_THREADS, smem_q, cb->stream>>>(dq, dout, q, k, v, lse_g, lse_l, Dg, Dl, pos, alpha, T, H,
                                                           KV, hd, kind, s->window, scale, q_nqt);
            LAUNCHED(cb, "attention_bwd (dq)");
        }
    }
    if (want_da) {
        {
            dsk_cuda_prof_scope timed(cb, "dalpha");
            fa_dalpha_kernel<<<1, 1024, 0, cb->stream>>>(dalpha, da, rows);
            LAUNCHED(cb, "attention_bwd (dalpha)");
        }
    }
}

void dsk_cuda_attention_bwd(dsk_backend *be, float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                            const float *out, const float *q, const float *k, const float *v, const float *lse_g,
                            const float *lse_l, const float *out_g, const float *out_l, const int32_t *pos,
                            const float *alpha, const dsk_attn_shape *s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (s->B <= 0 || s->T <= 0 || s->H <= 0)
        return;
    fa_check_shape(s, "attention_bwd");
    if (dsk_cuda_attention_cudnn_bwd(cb, dq, dk, dv, dout, out, q, k, v, s->kind == DSK_ATTN_LOCAL ? lse_l : lse_g,
                                     pos, s))
        return;
    switch (fa_hdp(s->hd)) {
    case 16: fa_bwd_launch<16>(cb, dq, dk, dv, dalpha, dout, out, q, k, v, lse_g, lse_l, out_g, out_l, pos, alpha, s); break;
    case 32: fa_bwd_launch<32>(cb, dq, dk, dv, dalpha, dout, out, q, k, v, lse_g, lse_l, out_g, out_l, pos, alpha, s); break;
    case 64: fa_bwd_launch<64>(cb, dq, dk, dv, dalpha, dout, out, q, k, v, lse_g, lse_l, out_g, out_l, pos, alpha, s); break;
    case 128: fa_bwd_launch<128>(cb, dq, dk, dv, dalpha, dout, out, q, k, v, lse_g, lse_l, out_g, out_l, pos, alpha, s); break;
    default: fa_bwd_launch<256>(cb, dq, dk, dv, dalpha, dout, out, q, k, v, lse_g, lse_l, out_g, out_l, pos, alpha, s); break;
    }
}

/* ---- decoding ---- */

enum { DEC_WARPS = 8 };

__global__ void attn_decode_kernel(float *out, const float *q, const float *k_cache, const float *v_cache,
                                   size_t seq_stride, const int32_t *seq, const int32_t *pos, int H, int KV, int hd,
                                   int use_g, int use_l, int window, const float *c, float scale)
{
    extern __shared__ float sm[];
    __shared__ float m_sh[2][DEC_WARPS], l_sh[2][DEC_WARPS];
    float *qv = sm, *acc = sm + hd;   /* acc [2][DEC_WARPS][hd] */
    int r = blockIdx.x / H, h = blockIdx.x % H, group = H / KV;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int i = pos[r];
    size_t ks = (size_t)KV * hd;
    const float *kb = k_cache + (size_t)seq[r] * seq_stride + (size_t)(h / group) * hd;
    const float *vb = v_cache + (size_t)seq[r] * seq_stride + (size_t)(h / group) * hd;
    const float *qh = q + ((size_t)r * H + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x)
        qv[d] = qh[d];
    for (int d = threadIdx.x; d < 2 * DEC_WARPS * hd; d += blockDim.x)
        acc[d] = 0;
    __syncthreads();
    int fl = dsk_attn_first(i, i, 1, window), first = use_g ? 0 : fl;
    float mg = -INFINITY, lg = 0, ml = -INFINITY, ll = 0;
    float *ag = acc + (size_t)w * hd, *al = acc + (size_t)(DEC_WARPS + w) * hd;
    for (int j = first + w; j <= i; j += DEC_WARPS) {
        const float *kj = kb + (size_t)j * ks, *vj = vb + (size_t)j * ks;
        float sc = 0;
        for (int d = lane; d < hd; d += 32)
            sc += qv[d] * kj[d];
        sc = warp_sum(sc) * scale;
        if (use_g) {
            float mn = fmaxf(mg, sc), corr = expf(mg - mn), p = expf(sc - mn);
            lg = lg * corr + p;
            for (int d = lane; d < hd; d += 32)
                ag[d] = ag[d] * corr + p * vj[d];
            mg = mn;
        }
        if (use_l && j >= fl) {
            float mn = fmaxf(ml, sc), corr = expf(ml - mn), p = expf(sc - mn);
            ll = ll * corr + p;
            for (int d = lane; d < hd; d += 32)
                al[d] = al[d] * corr + p * vj[d];
            ml = mn;
        }
    }
    if (lane == 0) {
        m_sh[0][w] = mg;
        l_sh[0][w] = lg;
        m_sh[1][w] = ml;
        l_sh[1][w] = ll;
    }
    __syncthreads();
    float wgt[2] = {c[C_A], c[C_1MA]};
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float o = 0;
        for (int part = 0; part < 2; part++) {
            if (part == 0 ? !use_g : !use_l)
                continue;
            float M = -INFINITY, L = 0, num = 0;
            for (int x = 0; x < DEC_WARPS; x++)
                M = fmaxf(M, m_sh[part][x]);
            for (int x = 0; x < DEC_WARPS; x++) {
                float f = expf(m_sh[part][x] - M);   /* 0 for a warp that saw no key */
                L += l_sh[part][x] * f;
                num += acc[(size_t)(part * DEC_WARPS + x) * hd + d] * f;
            }
            o += wgt[part] * (num / L);
        }
        out[((size_t)r * H + h) * hd + d] = o;
    }
}

void dsk_cuda_attention_decode(dsk_backend *be, float *out, const float *q, const float *k_cache,
                               const float *v_cache, size_t seq_stride, const int32_t *seq, const int32_t *pos, int n,
                               const float *alpha, const dsk_attn_shape *s)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    int H = s->H, hd = s->hd;
    if (n <= 0 || H <= 0)
        return;
    size_t smem = (size_t)(1 + 2 * DEC_WARPS) * hd * sizeof(float);
    if (smem > 48 * 1024)
        dsk_die(EX_SOFTWARE, "cuda: attention_decode: head size %d is over this kernel's %d", hd,
                (int)(48 * 1024 / sizeof(float) / (1 + 2 * DEC_WARPS)));
    float *c = (float *)dsk_cuda_scratch(cb, 256);
    attn_consts_kernel<<<1, 1, 0, cb->stream>>>(c, alpha, s->kind, 1.0f / sqrtf((float)hd));
    LAUNCHED(cb, "attention_decode");
    attn_decode_kernel<<<(unsigned)((size_t)n * H), 32 * DEC_WARPS, smem, cb->stream>>>(
        out, q, k_cache, v_cache, seq_stride, seq, pos, H, s->KV, hd, s->kind != DSK_ATTN_LOCAL,
        s->kind != DSK_ATTN_GLOBAL, s->window, c, 1.0f / sqrtf((float)hd));
    LAUNCHED(cb, "attention_decode");
}
