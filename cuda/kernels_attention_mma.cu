/* The attention forward on tensor cores through mma.sync (mma_sync.cuh),
 * FlashAttention-2's way: the backend's forward when products are bf16
 * or fp16, a layer is all global or all local (not hybrid) and the head
 * size is at most 128 (fa_use_mma); kernels_attention_tc.cu (WMMA) does
 * the rest, and the whole backward.
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
 * A block is MMA_WARPS warps and 16 * MMA_WARPS query rows of one head
 * (fa_qtile_of: the last tiles first); a key tile is MMA_BC keys.  Rows
 * of shared memory are padded to HDP + 8 (272 bytes at HDP 128): the 8
 * rows an ldmatrix tile names then start in 8 different 16-byte bank
 * groups.  Scores are scaled by log2(e) / sqrt(hd) so that exp2f is the
 * exponential; lse is put back in natural log.  Masks, the first key of
 * each row and the last (the row itself) are the other kernels'
 * (attention_tiles.cuh); sums run in a fixed order, the same bits on
 * every run. */
#include "attention_tiles.cuh"
#include "mma_sync.cuh"

typedef __nv_bfloat16 bf16;

enum { MMA_WARPS = 4, MMA_THREADS = 32 * MMA_WARPS, MMA_BR = 16 * MMA_WARPS, MMA_BC = 64 };

/* The shared memory: Q [BR][HDP + 8], K and V [BC][HDP + 8] (bf16), then
 * the rows' first keys (int [2][BR], fa_row_masks) and their least. */
template <int HDP> struct mma_fwd_smem {
    enum { LD = HDP + 8 };
    static constexpr size_t q = 0, k = q + (size_t)MMA_BR * LD * 2, v = k + (size_t)MMA_BC * LD * 2,
                            first = v + (size_t)MMA_BC * LD * 2, lo = first + (size_t)2 * MMA_BR * 4, bytes = lo + 16;
};

/* Grid: B * H * nqt blocks of MMA_THREADS (fa_qtile_of<MMA_BR>).  `local`
 * 0: every row sees its document up to itself (lse into lse); 1: also
 * only the last `window` keys. */
template <int HDP>
__global__ void __launch_bounds__(MMA_THREADS)
    mma_fwd_kernel(float *out, float *lse, const float *q, const float *k, const float *v, const int32_t *pos, int T,
                   int H, int KV, int hd, int local, int window, float scale_log2, int nqt, dsk_half_out out_h)
{
    typedef mma_fwd_smem<HDP> L;
    constexpr int LD = L::LD, KEY_TILES = MMA_BC / 8, DIM_TILES = HDP / 8;
    extern __shared__ __align__(128) unsigned char mma_sm[];
    bf16 *Qs = (bf16 *)(mma_sm + L::q), *Ks = (bf16 *)(mma_sm + L::k), *Vs = (bf16 *)(mma_sm + L::v);
    int (*first_sh)[MMA_BR] = (int (*)[MMA_BR])(mma_sm + L::first), *lo_sh = (int *)(mma_sm + L::lo);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const auto [bh, qs, ks, b, h, kvh, i0, i_end] = fa_qtile_of<MMA_BR>(T, H, KV, hd, nqt);
    const float *kb = k + (size_t)b * T * ks + (size_t)kvh * hd, *vb = v + (size_t)b * T * ks + (size_t)kvh * hd;

    if (threadIdx.x == 0)
        *lo_sh = INT_MAX;
    fa_load_bf16<HDP, MMA_BR, MMA_THREADS>(Qs, q + (size_t)b * T * qs + (size_t)h * hd, qs, i0, i_end, hd);
    __syncthreads();
    fa_row_masks<MMA_BR>(first_sh, i0, T, pos + (size_t)b * T, window, !local, lo_sh);
    __syncthreads();

    /* The lane's two rows, r = 0 (row g of the warp's 16) and 1 (g + 8):
     * the keys they see, [first, last], and their running maximum (in
     * log2 units), sum and output (o[n][2r + e]: dim 8n + 2t + e). */
    int first[2], last[2];
    float m[2], l[2], o[DIM_TILES][4];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = 16 * warp + g + 8 * r;
        first[r] = first_sh[local][row];
        last[r] = i0 + row < T ? i0 + row : -1;
        m[r] = -INFINITY;
        l[r] = 0;
    }
#pragma unroll
    for (int n = 0; n < DIM_TILES; n++)
        o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0;
    /* Lane l names row l % 16, columns 8 (l / 16) + 16 ks of the warp's
     * rows of Q: tiles (rows 0-7, 8-15) x (columns 0-7, 8-15), the A
     * fragment's order. */
    const bf16 *q_row = Qs + (16 * warp + (lane & 15)) * LD + 8 * (lane >> 4);

    const int kt_lo = *lo_sh / MMA_BC, kt_hi = (i_end - 1) / MMA_BC;
    for (int kt = kt_lo; kt <= kt_hi; kt++) {
        const int j0 = kt * MMA_BC;
        __syncthreads();   /* every warp is done with the previous tile's K and V */
        fa_load_bf16<HDP, MMA_BC, MMA_THREADS>(Ks, kb, ks, j0, T, hd);
        fa_load_bf16<HDP, MMA_BC, MMA_THREADS>(Vs, vb, ks, j0, T, hd);
        __syncthreads();

        /* S = Q Kᵀ: s[n] is keys 8n .. 8n + 7 of the tile.  B[k][n] = K[n][k]
         * is K's rows as they are: lane l names key 16 np + l % 8 + 8 (l / 16),
         * dims 16 ks + 8 ((l / 8) % 2), so registers 0, 1 are b0, b1 of key
         * tile 2 np and 2, 3 of key tile 2 np + 1. */
        float s[KEY_TILES][4];
#pragma unroll
        for (int n = 0; n < KEY_TILES; n++)
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0;
        const bf16 *k_row = Ks + ((lane & 7) + 8 * (lane >> 4)) * LD + 8 * ((lane >> 3) & 1);
#pragma unroll
        for (int ks16 = 0; ks16 < HDP / 16; ks16++) {
            uint32_t qa[4];
            mma_ldmatrix_x4(qa, q_row + 16 * ks16);
#pragma unroll
            for (int np = 0; np < KEY_TILES / 2; np++) {
                uint32_t kf[4];
                mma_ldmatrix_x4(kf, k_row + 16 * np * LD + 16 * ks16);
                mma_bf16_16816(s[2 * np], qa, kf[0], kf[1]);
                mma_bf16_16816(s[2 * np + 1], qa, kf[2], kf[3]);
            }
        }

        /* The online softmax, per row: mask, the tile's maximum over the
         * quad, rescale what came before, P = 2^(x - max) in place of S. */
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mt = -INFINITY;
#pragma unroll
            for (int n = 0; n < KEY_TILES; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int j = j0 + 8 * n + 2 * t + e;
                    float x = s[n][2 * r + e] * scale_log2;
                    x = j >= first[r] && j <= last[r] ? x : -INFINITY;
                    s[n][2 * r + e] = x;
                    mt = fmaxf(mt, x);
                }
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
            mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
            const float mn = fmaxf(m[r], mt);
            /* Nothing seen yet: corr 0 (l and o are 0).  Nothing seen so
             * far nor here: mn -inf, and every p below 0. */
            const float corr = m[r] == -INFINITY ? 0.0f : exp2f(m[r] - mn);
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
            l[r] = l[r] * corr + rs;
            m[r] = mn;
#pragma unroll
            for (int n = 0; n < DIM_TILES; n++) {
                o[n][2 * r] *= corr;
                o[n][2 * r + 1] *= corr;
            }
        }

        /* O += P V over the tile's keys, 16 at a time: P's A fragment from
         * key tiles 2 kk and 2 kk + 1 of s; B[k][n] = V[k][n] is V's rows
         * transposed: lane l names key 16 kk + l % 8 + 8 ((l / 8) % 2), dims
         * 16 dp + 8 (l / 16), so registers 0, 1 are b0, b1 of dim tile
         * 2 dp and 2, 3 of dim tile 2 dp + 1. */
        const bf16 *v_row = Vs + ((lane & 7) + 8 * ((lane >> 3) & 1)) * LD + 8 * (lane >> 4);
#pragma unroll
        for (int kk = 0; kk < MMA_BC / 16; kk++) {
            const uint32_t pa[4] = {mma_pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                                    mma_pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                    mma_pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    mma_pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int dp = 0; dp < DIM_TILES / 2; dp++) {
                uint32_t vf[4];
                mma_ldmatrix_x4_trans(vf, v_row + 16 * kk * LD + 16 * dp);
                mma_bf16_16816(o[2 * dp], pa, vf[0], vf[1]);
                mma_bf16_16816(o[2 * dp + 1], pa, vf[2], vf[3]);
            }
        }
    }

    /* out = O / l; lse = m ln 2 + ln l (a row that saw nothing, which
     * cannot happen as j = i is always seen: 0 and -inf). */
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int i = i0 + 16 * warp + g + 8 * r;
        if (i >= T)
            continue;
        const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        if (t == 0)
            lse[bh * T + i] = l[r] > 0 ? m[r] * 0.69314718056f + logf(l[r]) : -INFINITY;
        const size_t row = ((size_t)b * T + i) * qs + (size_t)h * hd;
#pragma unroll
        for (int n = 0; n < DIM_TILES; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int d = 8 * n + 2 * t + e;
                if (d < hd) {
                    const float y = o[n][2 * r + e] * inv;
                    out[row + d] = y;
                    out_h.put(row + d, y);
                }
            }
    }
}

template <int HDP>
static void mma_fwd_launch(dsk_cuda *cb, float *out, float *lse, const float *q, const float *k, const float *v,
                           const int32_t *pos, const dsk_attn_shape *s, dsk_half_out out_h)
{
    constexpr size_t smem = mma_fwd_smem<HDP>::bytes;
    static_assert(smem <= 99 * 1024, "over sm_86's 99 KB of shared memory");
    const int nqt = (s->T + MMA_BR - 1) / MMA_BR;
    auto *kern = mma_fwd_kernel<HDP>;
    CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    unsigned grid = fa_grid((unsigned long long)s->B * s->H * nqt, "attention_fwd");
    const float scale_log2 = 1.4426950408889634f / sqrtf((float)s->hd);
    kern<<<grid, MMA_THREADS, smem, cb->stream>>>(out, lse, q, k, v, pos, s->T, s->H, s->KV, s->hd,
                                                  s->kind == DSK_ATTN_LOCAL, s->window, scale_log2, nqt, out_h);
    LAUNCHED(cb, "attention_fwd (mma.sync)");
}

void dsk_cuda_attention_mma_fwd(dsk_cuda *cb, float *out, float *lse_g, float *lse_l, const float *q, const float *k,
                                const float *v, const int32_t *pos, const dsk_attn_shape *s, dsk_half_out out_h)
{
    float *lse = s->kind == DSK_ATTN_LOCAL ? lse_l : lse_g;
    switch (fa_hdp(s->hd)) {
    case 16: mma_fwd_launch<16>(cb, out, lse, q, k, v, pos, s, out_h); break;
    case 32: mma_fwd_launch<32>(cb, out, lse, q, k, v, pos, s, out_h); break;
    case 64: mma_fwd_launch<64>(cb, out, lse, q, k, v, pos, s, out_h); break;
    case 128: mma_fwd_launch<128>(cb, out, lse, q, k, v, pos, s, out_h); break;
    default: dsk_die(EX_SOFTWARE, "cuda: attention_fwd (mma.sync): head size %d over 128", s->hd);
    }
}
