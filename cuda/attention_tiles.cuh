/* What the flash-attention kernels share: the fp32 kernels of
 * kernels_attention.cu and the bf16 tensor-core kernels of
 * kernels_attention_tc.cu.  Both use blocks of FA_THREADS threads seen
 * as a 16 x 16 grid (tx = threadIdx.x & 15, ty = threadIdx.x >> 4) for
 * the element-wise work: a thread holds query rows ty + 16 ri and keys
 * (or dims) tx + 16 ci, so the 16 threads of a row are a half warp.
 * Masks, row statistics and the gradient of a score are the same code
 * in both, so the two differ only in how they multiply tiles. */
#ifndef DSK_ATTENTION_TILES_CUH
#define DSK_ATTENTION_TILES_CUH

#include <limits.h>

#include <cuda_bf16.h>

#include "cuda_internal.cuh"
#include "ops/attn_first.h"

enum { FA_THREADS = 256 };

/* x = 0, in registers. */
template <int N, int M>
__device__ __forceinline__ void fa_zero(float (&x)[N][M])
{
#pragma unroll
    for (int n = 0; n < N; n++)
#pragma unroll
        for (int m = 0; m < M; m++)
            x[n][m] = 0;
}

/* A thread's part of an output tile, written by put(n, e, row, d): rows
 * r0 + ty + 16 n below r_end of head `head` in a [B, T, heads * hd]
 * tensor (row stride `stride`; `row` is the offset of the row's head),
 * dims d = tx + 16 e below hd. */
template <int N, int DE, class Put>
__device__ __forceinline__ void fa_store(int b, int T, size_t stride, int head, int hd, int r0, int r_end, int tx,
                                         int ty, Put put)
{
#pragma unroll
    for (int n = 0; n < N; n++) {
        int i = r0 + ty + 16 * n;
        if (i >= r_end)
            continue;
        size_t row = ((size_t)b * T + i) * stride + (size_t)head * hd;
#pragma unroll
        for (int e = 0; e < DE; e++) {
            int d = tx + 16 * e;
            if (d < hd)
                put(n, e, row, d);
        }
    }
}

/* Over the 16 lanes of a half warp (the threads that share a row); the
 * butterfly leaves the same bits in every lane. */
__device__ __forceinline__ float half_max(float v)
{
    for (int o = 8; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float half_sum(float v)
{
    for (int o = 8; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* *d = v, in d's type (bf16: to nearest even). */
__device__ __forceinline__ void fa_put(float *d, float v) { *d = v; }
__device__ __forceinline__ void fa_put(__nv_bfloat16 *d, float v) { *d = __float2bfloat16_rn(v); }

/* One part's online-softmax step over a key tile: rows ty + 16 ri see
 * keys [first, last]; j = jx + 16 ci.  Rescales the running sum l and
 * output o to the new maximum, writes the tile's probabilities (relative
 * to that maximum, 0 where masked) to P [BR][ldp] (float, or bf16 for
 * the tensor cores; l sums them unrounded). */
template <int RM, int CN, int DE, typename PT>
__device__ __forceinline__ void fa_online(const float (&s)[RM][CN], float (&m)[RM], float (&l)[RM],
                                          float (&o)[RM][DE], const int (&first)[RM], const int (&last)[RM], int jx,
                                          PT *P, int ldp, int tx, int ty)
{
#pragma unroll
    for (int ri = 0; ri < RM; ri++) {
        float mt = -INFINITY;
#pragma unroll
        for (int ci = 0; ci < CN; ci++) {
            int j = jx + 16 * ci;
            if (j >= first[ri] && j <= last[ri])
                mt = fmaxf(mt, s[ri][ci]);
        }
        mt = half_max(mt);
        float mn = fmaxf(m[ri], mt);
        /* Nothing seen yet: corr 0 (l and o are 0); else exp(<= 0).  No
         * key visible so far and none here: mn is -inf, p all 0. */
        float corr = m[ri] == -INFINITY ? 0.0f : expf(m[ri] - mn), rs = 0;
#pragma unroll
        for (int ci = 0; ci < CN; ci++) {
            int j = jx + 16 * ci;
            float p = j >= first[ri] && j <= last[ri] ? expf(s[ri][ci] - mn) : 0.0f;
            fa_put(&P[(ty + 16 * ri) * ldp + tx + 16 * ci], p);
            rs += p;
        }
        rs = half_sum(rs);
        l[ri] = l[ri] * corr + rs;
        m[ri] = mn;
#pragma unroll
        for (int e = 0; e < DE; e++)
            o[ri][e] *= corr;
    }
}

/* The hybrid weight of the global part: 1 global, 0 local, alpha hybrid. */
__device__ __forceinline__ float fa_weight(int kind, const float *alpha)
{
    return kind == DSK_ATTN_HYBRID ? alpha[0] : kind == DSK_ATTN_GLOBAL ? 1.0f : 0.0f;
}

/* The place of a forward or dQ block, grid B * H * nqt: (b, h) (bh =
 * b * H + h) and the query tile qt from blockIdx.x, a head's tiles
 * last-first (the last ones see the most keys: they start first); the
 * tile's rows [i0, i_end). */
struct fa_qtile {
    size_t bh, qs, ks;   /* qs, ks: the row strides of q and of k, v */
    int b, h, kvh, i0, i_end;
};
template <int BR>
__device__ __forceinline__ fa_qtile fa_qtile_of(int T, int H, int KV, int hd, int nqt)
{
    fa_qtile t;
    t.bh = blockIdx.x / (unsigned)nqt;
    const int qt = nqt - 1 - (int)(blockIdx.x % (unsigned)nqt);
    t.h = (int)(t.bh % (size_t)H);
    t.b = (int)(t.bh / (size_t)H);
    t.kvh = t.h / (H / KV);
    t.i0 = qt * BR;
    t.i_end = min(t.i0 + BR, T);
    t.qs = (size_t)H * hd;
    t.ks = (size_t)KV * hd;
    return t;
}

/* The place of a dK/dV block, grid B * KV * nkt: batch row b, kv head
 * kvh (with query heads kvh * group .. kvh * group + group - 1) and the
 * key tile's rows [j0, j_end) from blockIdx.x. */
struct fa_kvtile {
    size_t qs, ks;   /* the row strides of q and of k, v */
    int b, kvh, group, j0, j_end;
};
template <int BC>
__device__ __forceinline__ fa_kvtile fa_kvtile_of(int T, int H, int KV, int hd, int nkt)
{
    fa_kvtile t;
    const int kt = (int)(blockIdx.x % (unsigned)nkt);
    const size_t bkv = blockIdx.x / (unsigned)nkt;
    t.kvh = (int)(bkv % (size_t)KV);
    t.b = (int)(bkv / (size_t)KV);
    t.group = H / KV;
    t.j0 = kt * BC;
    t.j_end = min(t.j0 + BC, T);
    t.qs = (size_t)H * hd;
    t.ks = (size_t)KV * hd;
    return t;
}

/* body(bhT, qb, dob, i0, i_end) for each query tile of BR rows, [i0,
 * i_end), that sees some of a dK/dV block's keys (tile_lo[b * nqt + qt]:
 * its smallest first key), in each query head h of the kv head's group
 * in turn: bhT = (b H + h) T, qb and dob the head's slices of q and dO.
 * The same tiles in the same order for every thread. */
template <int BR, class Body>
__device__ __forceinline__ void fa_each_query_tile(const fa_kvtile &t, const float *q, const float *dout,
                                                   const int *tile_lo, int T, int H, int hd, int nqt, Body body)
{
    for (int hh = 0; hh < t.group; hh++) {
        const int h = t.kvh * t.group + hh;
        const size_t bhT = ((size_t)t.b * H + h) * T, head = (size_t)t.b * T * t.qs + (size_t)h * hd;
        for (int qt = t.j0 / BR; qt < nqt; qt++) {   /* tiles before j0 / BR end before j0 */
            if (tile_lo[(size_t)t.b * nqt + qt] >= t.j_end)
                continue;
            const int i0 = qt * BR;
            body(bhT, q + head, dout + head, i0, min(i0 + BR, T));
        }
    }
}

/* The masks of the tile's query rows into shared memory: the first key
 * each part sees (rows past T see nothing), and the smallest of those
 * (of the part that sees most) min'ed into *lo_sh. */
template <int BR>
__device__ __forceinline__ void fa_row_masks(int (*first_sh)[BR], int i0, int T, const int32_t *pb, int window,
                                             int use_g, int *lo_sh)
{
    if (threadIdx.x >= BR)
        return;
    int i = i0 + threadIdx.x, fg = INT_MAX, fl = INT_MAX;
    if (i < T) {
        int p = pb[i];
        fg = dsk_attn_first(i, p, 0, window);
        fl = dsk_attn_first(i, p, 1, window);
        atomicMin(lo_sh, use_g ? fg : fl);   /* a min: the same whatever the order */
    }
    first_sh[0][threadIdx.x] = fg;
    first_sh[1][threadIdx.x] = fl;
}

/* A forward thread's rows ty + 16 ri of its query tile: the first key
 * each part sees (fg, fl) and the last (the row itself; -1 past T), and
 * per part the running maximum m, sum l and output o (g global, l
 * local), for fa_online. */
template <int RM, int DE> struct fa_fwd_rows {
    int fg[RM], fl[RM], last[RM];
    float mg[RM], lg[RM], ml[RM], ll[RM], og[RM][DE], ol[RM][DE];
};

/* The rows' start, from fa_row_masks's first keys: nothing seen yet. */
template <int RM, int DE, int BR>
__device__ __forceinline__ void fa_fwd_start(fa_fwd_rows<RM, DE> &st, const int (*first_sh)[BR], int i0, int T,
                                             int ty)
{
#pragma unroll
    for (int ri = 0; ri < RM; ri++) {
        int r = ty + 16 * ri;
        st.fg[ri] = first_sh[0][r];
        st.fl[ri] = first_sh[1][r];
        st.last[ri] = i0 + r < T ? i0 + r : -1;
        st.mg[ri] = st.ml[ri] = -INFINITY;
        st.lg[ri] = st.ll[ri] = 0;
    }
    fa_zero(st.og);
    fa_zero(st.ol);
}

/* The forward's end, for a thread's rows ty + 16 ri of query tile i0:
 * out = O / l per part (mixed by a for hybrid, each part's also kept in
 * out_g, out_l), and lse = m + log l per part. */
template <int RM, int DE>
__device__ __forceinline__ void fa_fwd_out(float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                                           const fa_fwd_rows<RM, DE> &st, float a, int use_g, int use_l, int b, int T,
                                           size_t qs, int h, int hd, size_t bh, int i0, int tx, int ty,
                                           dsk_half_out out_h)
{
    const int hybrid = use_g && use_l;
#pragma unroll
    for (int ri = 0; ri < RM; ri++) {
        int i = i0 + ty + 16 * ri;
        if (i >= T)
            continue;
        size_t row = ((size_t)b * T + i) * qs + (size_t)h * hd, li = bh * T + i;
        /* A row that saw no key (cannot happen: j = i is always seen)
         * gets 0 and lse -inf, which the backward reads as p = 0. */
        if (tx == 0) {
            if (use_g)
                lse_g[li] = st.lg[ri] > 0 ? st.mg[ri] + logf(st.lg[ri]) : -INFINITY;
            if (use_l)
                lse_l[li] = st.ll[ri] > 0 ? st.ml[ri] + logf(st.ll[ri]) : -INFINITY;
        }
#pragma unroll
        for (int e = 0; e < DE; e++) {
            int d = tx + 16 * e;
            if (d >= hd)
                continue;
            float vg = use_g && st.lg[ri] > 0 ? st.og[ri][e] / st.lg[ri] : 0.0f;
            float vl = use_l && st.ll[ri] > 0 ? st.ol[ri][e] / st.ll[ri] : 0.0f;
            float o = hybrid ? a * vg + (1 - a) * vl : use_g ? vg : vl;
            out[row + d] = o;
            out_h.put(row + d, o);
            if (hybrid) {
                out_g[row + d] = vg;
                out_l[row + d] = vl;
            }
        }
    }
}

/* A query row's statistics in the backward, per part: the first key it
 * sees, lse (+inf: p = 0) and D = dO . O. */
struct fa_row {
    int fg, fl;
    float lg, ll, dg, dl;
};

/* Per query row of the backward: the masks (as fa_row_masks; lo_sh may
 * be NULL), lse (-inf, a row that saw nothing, becomes +inf: p = 0) and
 * D of each part, into shared memory.  Rows past T see nothing. */
template <int BR>
__device__ __forceinline__ void fa_row_stats(int (*first_sh)[BR], float (*lse_sh)[BR], float (*D_sh)[BR], int i0,
                                             int T, const int32_t *pb, const float *lse_g, const float *lse_l,
                                             const float *Dg, const float *Dl, size_t bhT, int window, int use_g,
                                             int use_l, int *lo_sh)
{
    if (threadIdx.x >= BR)
        return;
    int r = threadIdx.x, i = i0 + r, fg = INT_MAX, fl = INT_MAX;
    float lg = INFINITY, ll = INFINITY, dg = 0, dl = 0;
    if (i < T) {
        int p = pb[i];
        fg = dsk_attn_first(i, p, 0, window);
        fl = dsk_attn_first(i, p, 1, window);
        if (use_g) {
            lg = lse_g[bhT + i];
            lg = lg == -INFINITY ? INFINITY : lg;
            dg = Dg[bhT + i];
        }
        if (use_l) {
            ll = lse_l[bhT + i];
            ll = ll == -INFINITY ? INFINITY : ll;
            dl = Dl[bhT + i];
        }
        if (lo_sh)
            atomicMin(lo_sh, use_g ? fg : fl);
    }
    first_sh[0][r] = fg;
    first_sh[1][r] = fl;
    lse_sh[0][r] = lg;
    lse_sh[1][r] = ll;
    D_sh[0][r] = dg;
    D_sh[1][r] = dl;
}

/* Row r's statistics, as fa_row_stats left them in shared memory. */
template <int BR>
__device__ __forceinline__ fa_row fa_row_at(const int (*first_sh)[BR], const float (*lse_sh)[BR],
                                            const float (*D_sh)[BR], int r)
{
    fa_row st;
    st.fg = first_sh[0][r];
    st.fl = first_sh[1][r];
    st.lg = lse_sh[0][r];
    st.ll = lse_sh[1][r];
    st.dg = D_sh[0][r];
    st.dl = D_sh[1][r];
    return st;
}

/* Score x = scale q.k and dp = dO.v of query i, key j: the mixed
 * probability (pm) and the score's gradient (ds). */
__device__ __forceinline__ void fa_grad(float x, float dp, int j, int i, int fg, int fl, float lg, float ll, float dg,
                                        float dl, float a, int use_g, int use_l, float *pm, float *ds)
{
    float m = 0, g = 0;
    if (use_g && j >= fg && j <= i) {
        float p = a * expf(x - lg);
        m = p;
        g = p * (dp - dg);
    }
    if (use_l && j >= fl && j <= i) {
        float p = (1 - a) * expf(x - ll);
        m += p;
        g += p * (dp - dl);
    }
    *pm = m;
    *ds = g;
}

/* Rows [r0, r0 + ROWS) of a head's [T, hd] slice (row stride `stride`)
 * into a bf16 [ROWS][HDP + 8] tile, by a block of THREADS threads (the
 * tensor-core kernels); zeros past r_end and past hd.  Four floats a
 * load when every row starts 16-byte aligned and hd is a multiple of 4
 * (the same for the whole block), else one. */
template <int HDP, int ROWS, int THREADS = FA_THREADS>
__device__ __forceinline__ void fa_load_bf16(__nv_bfloat16 *tile, const float *g, size_t stride, int r0, int r_end,
                                             int hd)
{
    if ((hd & 3) == 0 && (stride & 3) == 0 && ((uintptr_t)g & 15) == 0) {
        constexpr int QUADS = HDP / 4;
        for (int x = threadIdx.x; x < ROWS * QUADS; x += THREADS) {
            int r = x / QUADS, d = 4 * (x % QUADS), i = r0 + r;
            float4 f = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (i < r_end && d < hd)   /* then d + 3 < hd too */
                f = *(const float4 *)(g + (size_t)i * stride + d);
            /* one 8-byte store (two 4-byte ones would conflict in pairs) */
            __nv_bfloat162 lo = __floats2bfloat162_rn(f.x, f.y), hi = __floats2bfloat162_rn(f.z, f.w);
            uint2 both;
            memcpy(&both.x, &lo, 4);
            memcpy(&both.y, &hi, 4);
            *(uint2 *)(tile + r * (HDP + 8) + d) = both;
        }
        return;
    }
    for (int x = threadIdx.x; x < ROWS * HDP; x += THREADS) {
        int r = x / HDP, d = x % HDP, i = r0 + r;
        tile[r * (HDP + 8) + d] = __float2bfloat16_rn(i < r_end && d < hd ? g[(size_t)i * stride + d] : 0.0f);
    }
}

/* ---- host side ---- */

/* The head size rounded up to a kernel's bound. */
static inline int fa_hdp(int hd)
{
    return hd <= 16 ? 16 : hd <= 32 ? 32 : hd <= 64 ? 64 : hd <= 128 ? 128 : 256;
}

static inline unsigned fa_grid(unsigned long long blocks, const char *op)
{
    if (blocks > (unsigned long long)INT_MAX)
        dsk_die(EX_SOFTWARE, "cuda: %s: %llu blocks is over the grid's limit", op, blocks);
    return (unsigned)blocks;
}

/* ---- the bf16 tensor-core kernels (kernels_attention_tc.cu) ---- */

/* The tensor-core kernels when products are bf16 or fp16 (be->gemm_dtype)
 * unless DSK_CUDA_ATTN=fp32 asked for the fp32 ones. */
static inline int fa_use_tc(const dsk_cuda *cb)
{
    return cb->be.gemm_dtype != DSK_DTYPE_FP32 && cb->attn_kernels != DSK_CUDA_ATTN_FP32;
}

/* Of those, the mma.sync kernels (kernels_attention_mma.cu) for a layer
 * that is not hybrid with heads of at most 128, unless DSK_CUDA_ATTN=wmma
 * asked for WMMA's everywhere. */
static inline int fa_use_mma(const dsk_cuda *cb, const dsk_attn_shape *s)
{
    return fa_use_tc(cb) &&
           (cb->attn_kernels == DSK_CUDA_ATTN_AUTO || cb->attn_kernels == DSK_CUDA_ATTN_MMA ||
            cb->attn_kernels == DSK_CUDA_ATTN_MMA8 || cb->attn_kernels == DSK_CUDA_ATTN_ASYNC ||
            cb->attn_kernels == DSK_CUDA_ATTN_WIDE || cb->attn_kernels == DSK_CUDA_ATTN_STORED ||
            cb->attn_kernels == DSK_CUDA_ATTN_CUDNN) &&
           s->kind != DSK_ATTN_HYBRID && s->hd <= 128;
}

/* Makes room for the bf16 copies the pipelined
 * kernels of a forward (backward: 1) of shape s read, when they will run
 * (see kernels_attention_mma.cu); call it before anything that holds
 * pointers into the 16-bit copies' buffers (dsk_cuda_half_produce), as
 * the allocation may give those back. */
void dsk_cuda_attention_async_reserve(dsk_cuda *cb, const dsk_attn_shape *s, int backward);

/* The forward through mma.sync, as dsk_cuda_attention_fwd for a layer
 * fa_use_mma takes (lse into lse_g, or lse_l for a local one). */
void dsk_cuda_attention_mma_fwd(dsk_cuda *cb, float *out, float *lse_g, float *lse_l, const float *q, const float *k,
                                const float *v, const int32_t *pos, const dsk_attn_shape *s, dsk_half_out out_h);
/* The query rows of a tile of the mma.sync dK/dV kernel for head-size
 * bound hdp (16 to 128), which tile_lo counts in. */
int dsk_cuda_attention_mma_kv_rows(int hdp);
/* dK, dV (and dV's 16-bit copy in dv_h) and dQ through mma.sync, as
 * dsk_cuda_attention_tc_bwd for a layer fa_use_mma takes. */
void dsk_cuda_attention_mma_bwd(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *q,
                                const float *k, const float *v, const float *lse_g, const float *lse_l,
                                const float *Dg, const float *Dl, const int *tile_lo, const int32_t *pos,
                                const dsk_attn_shape *s, dsk_half_out dv_h);

/* The forward for head-size bound hdp (fa_hdp), as dsk_cuda_attention_fwd
 * (and out's 16-bit copy in out_h). */
void dsk_cuda_attention_tc_fwd(dsk_cuda *cb, int hdp, float *out, float *lse_g, float *lse_l, float *out_g,
                               float *out_l, const float *q, const float *k, const float *v, const int32_t *pos,
                               const float *alpha, const dsk_attn_shape *s, dsk_half_out out_h);
/* The query rows of a tile of the dK/dV kernel, which tile_lo counts in. */
int dsk_cuda_attention_tc_kv_rows(int hdp);
/* dK, dV (and dV's 16-bit copy in dv_h) and dQ, given D_g, D_l
 * (fa_bwd_prep_kernel) and tile_lo (fa_tile_lo_kernel over tiles of
 * dsk_cuda_attention_tc_kv_rows rows). */
void dsk_cuda_attention_tc_bwd(dsk_cuda *cb, int hdp, float *dq, float *dk, float *dv, const float *dout,
                               const float *q, const float *k, const float *v, const float *lse_g, const float *lse_l,
                               const float *Dg, const float *Dl, const int *tile_lo, const int32_t *pos,
                               const float *alpha, const dsk_attn_shape *s, dsk_half_out dv_h);

#endif
