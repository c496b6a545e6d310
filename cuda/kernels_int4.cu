/* int4 products on CUDA: A·Wᵀ with few rows of A (decoding, as the CPU
 * backend's INT4_MAX_ROWS) read the 4-bit codes of a registered
 * dsk_q4_linear instead of the fp32 W, about 0.56 bytes a weight instead
 * of 4 (register_int4 in lib/ops/backend.h).
 *
 * register_int4 uploads the layer's runtime layout (lib/quant/int4.h,
 * built by dsk_q4_prepare): the panels of codes and of scales and zero
 * points, the column order, and a table of each octet's group (an octet:
 * 8 columns, which never straddle two groups).  The arithmetic is the
 * CPU's, s * (sum q x - z sum x) per group, taken an octet at a time.
 *
 * A block per panel of DSK_Q4_PANEL (32) rows and split of the octets:
 * lane r of each warp is row r0 + r, so a warp's load of an octet's code
 * words is one 128-byte line; warp w takes octets w, w + 8, ... of its
 * split, four at a time in flight.  The warps' partial sums meet in
 * shared memory and are added in warp order, the splits' (when there is
 * more than one) by q4_sum_kernel in split order: the same bits on every
 * run of a device.  The splits are what fill the GPU: a panel a block
 * alone gave a layer of 2048 rows 64 blocks, each warp waiting on one
 * load at a time, and ran at 120-320 GB/s on an H200 (slower than the
 * fp32 product it replaces). */
#include <stdlib.h>

#include "cuda_internal.cuh"
extern "C" {
#include "quant/int4.h"
}

enum { Q4_WARPS = 8, Q4_MAX_ROWS = 8 };
static_assert(DSK_Q4_PANEL == 32, "a panel's rows are a warp's lanes");
static_assert(Q4_MAX_ROWS <= Q4_WARPS, "the final sums take a warp a row of A");

/* A registered layer: the fp32 weight it stands for, and its layout on the device. */
struct dsk_cuda_q4 {
    const float *W;
    int rows, cols, kcols, ngroups;
    uint32_t *codes;        /* panel_codes: rows * kcols / 8 words */
    float *meta;            /* panel_meta: rows * ngroups * 2 */
    int32_t *perm;          /* [kcols], or NULL: the identity */
    int32_t *octet_group;   /* [kcols / 8] */
};

/* C [M][rows] = A [M][cols] Wᵀ (+ beta C), M <= Q4_MAX_ROWS; block (x, y)
 * is panel x, octets [y per_split, (y + 1) per_split).  One split: the
 * sums into C; several: split y's into split_sums [y][M][rows]. */
__global__ void __launch_bounds__(32 * Q4_WARPS)
    q4_gemm_kernel(float *C, float *split_sums, const float *A, float beta, int M, int rows, int cols, int kcols,
                   int ngroups, const uint32_t *codes, const float *meta, const int32_t *perm,
                   const int32_t *octet_group, int per_split)
{
    __shared__ float part[Q4_WARPS][Q4_MAX_ROWS][32];
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int r0 = blockIdx.x * DSK_Q4_PANEL, h = min(DSK_Q4_PANEL, rows - r0), octets = kcols / 8;
    const int o_lo = (int)blockIdx.y * per_split, o_hi = min(octets, o_lo + per_split);
    const uint32_t *pc = codes + (size_t)r0 * octets;       /* [octets][h] */
    const float *pm = meta + (size_t)r0 * ngroups * 2;      /* [ngroups][2][h] */
    float y[Q4_MAX_ROWS];
#pragma unroll
    for (int m = 0; m < Q4_MAX_ROWS; m++)
        y[m] = 0;
    if (lane < h) {
#pragma unroll 4
        for (int o = o_lo + w; o < o_hi; o += Q4_WARPS) {
            const uint32_t word = pc[(size_t)o * h + lane];
            const int g = octet_group[o];
            const float s = pm[(size_t)g * 2 * h + lane], z = pm[(size_t)g * 2 * h + h + lane];
            int col[8];
#pragma unroll
            for (int c = 0; c < 8; c++)
                col[c] = perm ? perm[8 * o + c] : 8 * o + c;   /* -1: padding, x = 0 */
#pragma unroll
            for (int m = 0; m < Q4_MAX_ROWS; m++) {
                if (m >= M)
                    break;
                const float *xr = A + (size_t)m * cols;
                float t = 0, sx = 0;
#pragma unroll
                for (int c = 0; c < 8; c++) {
                    const float x = col[c] >= 0 ? xr[col[c]] : 0.0f;
                    t = fmaf((float)((word >> (4 * c)) & 15u), x, t);
                    sx += x;
                }
                y[m] = fmaf(s, t - z * sx, y[m]);
            }
        }
    }
#pragma unroll
    for (int m = 0; m < Q4_MAX_ROWS; m++)
        part[w][m][lane] = y[m];
    __syncthreads();
    const int m = w, r = lane;   /* a warp a row of A */
    if (m < M && r < h) {
        float acc = 0;
        for (int x = 0; x < Q4_WARPS; x++)
            acc += part[x][m][r];
        if (gridDim.y > 1) {
            split_sums[((size_t)blockIdx.y * M + m) * rows + r0 + r] = acc;
        } else {
            float *c = C + (size_t)m * rows + r0 + r;
            *c = beta == 0 ? acc : acc + beta * *c;
        }
    }
}

/* C [M][rows] = the splits' sums added in order (+ beta C). */
__global__ void q4_sum_kernel(float *C, const float *split_sums, float beta, int M, int rows, int splits)
{
    const size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x, n = (size_t)M * rows;
    if (i >= n)
        return;
    float acc = 0;
    for (int y = 0; y < splits; y++)
        acc += split_sums[(size_t)y * n + i];
    C[i] = beta == 0 ? acc : acc + beta * C[i];
}

/* n elements of host memory in a new device buffer, the copy queued on
 * the stream (the caller waits before host changes). */
template <typename T> static T *q4_upload(dsk_cuda *cb, const T *host, size_t n)
{
    T *d = NULL;
    if (cudaMalloc((void **)&d, n * sizeof *host) != cudaSuccess) {
        (void)cudaGetLastError();
        dsk_die(EX_OSERR, "cuda: out of device memory for an int4 layer (%zu bytes)", n * sizeof *host);
    }
    CUDA_CHECK(cudaMemcpyAsync(d, host, n * sizeof *host, cudaMemcpyHostToDevice, cb->stream));
    return d;
}

static void q4_free(dsk_cuda_q4 *q)
{
    CUDA_CHECK(cudaFree(q->codes));
    CUDA_CHECK(cudaFree(q->meta));
    if (q->perm)
        CUDA_CHECK(cudaFree(q->perm));
    CUDA_CHECK(cudaFree(q->octet_group));
}

static int q4_by_weight(const void *a, const void *b)
{
    const float *x = ((const dsk_cuda_q4 *)a)->W, *y = ((const dsk_cuda_q4 *)b)->W;
    return x < y ? -1 : x > y;
}

void dsk_cuda_register_int4(dsk_backend *be, const float *W, const void *int4)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    const dsk_q4_linear *L = (const dsk_q4_linear *)int4;
    if (!L->panel_codes)
        dsk_die(EX_SOFTWARE, "cuda: register_int4: int4 layer %dx%d was not prepared", L->rows, L->cols);
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* a layer it replaces may still be read */
    dsk_cuda_q4 q;
    q.W = W;
    q.rows = L->rows;
    q.cols = L->cols;
    q.kcols = L->kcols;
    q.ngroups = L->ngroups;
    const size_t octets = (size_t)L->kcols / 8;
    q.codes = q4_upload(cb, L->panel_codes, (size_t)L->rows * octets);
    q.meta = q4_upload(cb, L->panel_meta, (size_t)L->rows * L->ngroups * 2);
    q.perm = L->perm ? q4_upload(cb, L->perm, (size_t)L->kcols) : NULL;
    int32_t *og = (int32_t *)dsk_xmalloc((octets ? octets : 1) * sizeof *og);
    for (int g = 0; g < L->ngroups; g++)
        for (int o = L->group_start[g] / 8; o < L->group_start[g + 1] / 8; o++)
            og[o] = g;
    q.octet_group = q4_upload(cb, og, octets ? octets : 1);
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* og is read */
    free(og);

    for (int i = 0; i < cb->n_q4; i++)
        if (cb->q4[i].W == W) {   /* registered again: the new codes */
            q4_free(&cb->q4[i]);
            cb->q4[i] = q;
            return;
        }
    if (cb->n_q4 == cb->cap_q4) {
        cb->cap_q4 = cb->cap_q4 ? 2 * cb->cap_q4 : 64;
        cb->q4 = (dsk_cuda_q4 *)dsk_xrealloc(cb->q4, (size_t)cb->cap_q4 * sizeof *cb->q4);
    }
    cb->q4[cb->n_q4++] = q;
    qsort(cb->q4, (size_t)cb->n_q4, sizeof *cb->q4, q4_by_weight);
}

int dsk_cuda_int4_gemm(dsk_cuda *cb, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       const float *B, float beta, float *C)
{
    if (!cb->n_q4 || ta || !tb || M > Q4_MAX_ROWS || alpha != 1)
        return 0;
    dsk_cuda_q4 key;
    key.W = B;
    const dsk_cuda_q4 *q =
        (const dsk_cuda_q4 *)bsearch(&key, cb->q4, (size_t)cb->n_q4, sizeof key, q4_by_weight);
    if (!q || q->rows != N || q->cols != K)
        return 0;
    const int panels = (N + DSK_Q4_PANEL - 1) / DSK_Q4_PANEL, octets = q->kcols / 8;
    /* Splits of at least 4 octets a warp, until there are about four
     * blocks an SM; each a whole number of the warps' turns (octets >= 1:
     * gemm does no product with K 0). */
    const int most = octets / (4 * Q4_WARPS), want = (4 * cb->sm_count + panels - 1) / panels;
    int splits = want < most ? want : most;
    splits = splits > 1 ? splits : 1;
    const int per_split = ((octets + splits - 1) / splits + Q4_WARPS - 1) / Q4_WARPS * Q4_WARPS;
    splits = (octets + per_split - 1) / per_split;
    float *split_sums = splits > 1 ? (float *)dsk_cuda_scratch(cb, (size_t)splits * M * N * sizeof(float)) : NULL;
    dsk_cuda_prof_scope timed(cb, "int4 products (decoding)", 2.0 * M * N * K);
    q4_gemm_kernel<<<dim3((unsigned)panels, (unsigned)splits), 32 * Q4_WARPS, 0, cb->stream>>>(
        C, split_sums, A, beta, M, q->rows, q->cols, q->kcols, q->ngroups, q->codes, q->meta, q->perm, q->octet_group,
        per_split);
    LAUNCHED(cb, "gemm (int4)");
    if (splits > 1) {
        const size_t n = (size_t)M * N;
        q4_sum_kernel<<<(unsigned)((n + 255) / 256), 256, 0, cb->stream>>>(C, split_sums, beta, M, N, splits);
        LAUNCHED(cb, "gemm (int4): the splits' sums");
    }
    return 1;
}

void dsk_cuda_int4_destroy(dsk_cuda *cb)
{
    for (int i = 0; i < cb->n_q4; i++)
        q4_free(&cb->q4[i]);
    free(cb->q4);
    cb->q4 = NULL;
    cb->n_q4 = cb->cap_q4 = 0;
}
