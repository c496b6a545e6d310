/* Mixture-of-experts routing, permutation and their backward passes.
 * moe_dispatch ranks each expert's pairs on the device (see below) and
 * hands only the offsets and counts to the host. */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

enum { THREADS = 256 };

/* One thread per token (E and k are small). */
__global__ void moe_route_kernel(float *probs, int32_t *sel, float *gate, const float *logits, const float *bias,
                                 int n, int E, int k, int router)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n)
        return;
    const float *z = logits + (size_t)t * E;
    float *p = probs + (size_t)t * E;
    if (router == DSK_ROUTER_SOFTMAX) {
        float mx = -INFINITY, sum = 0;
        for (int e = 0; e < E; e++)
            mx = fmaxf(mx, z[e]);
        for (int e = 0; e < E; e++)
            sum += p[e] = expf(z[e] - mx);
        for (int e = 0; e < E; e++)
            p[e] /= sum;
    } else {
        for (int e = 0; e < E; e++)
            p[e] = 1.0f / (1.0f + expf(-z[e]));
    }
    /* Top k by selection score, best first, ties to the lower index. */
    int32_t *st = sel + (size_t)t * k;
    for (int s = 0; s < k; s++) {
        int best = -1;
        float best_score = 0;
        for (int e = 0; e < E; e++) {
            int taken = 0;
            for (int r = 0; r < s; r++)
                taken |= st[r] == e;
            float score = p[e] + (bias ? bias[e] : 0.0f);
            if (!taken && (best < 0 || score > best_score)) {
                best = e;
                best_score = score;
            }
        }
        st[s] = best;
    }
    float *g = gate + (size_t)t * k, norm = 0;
    for (int s = 0; s < k; s++)
        norm += g[s] = p[st[s]];
    if (router == DSK_ROUTER_SIGMOID)
        for (int s = 0; s < k; s++)
            g[s] /= norm;
}

void dsk_cuda_moe_route(dsk_backend *be, float *probs, int32_t *sel, float *gate, const float *logits,
                        const float *bias, int n, int E, int k, int router)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0)
        return;
    int threads = 128;
    moe_route_kernel<<<(n + threads - 1) / threads, threads, 0, cb->stream>>>(probs, sel, gate, logits, bias, n, E, k,
                                                                              router);
    LAUNCHED(cb, "moe_route");
}

/* ---- dispatch ----
 * The CPU's rule (dsk_cpu_moe_dispatch): pairs (token, slot) in order,
 * each expert keeping its first `capacity`, rows laid out expert by
 * expert in pair order.  So a pair's row is its expert's offset plus its
 * rank among the expert's pairs (kept when the rank is below capacity):
 * a block per expert ranks its pairs with block-wide prefix sums over
 * the pairs in order, one small kernel turns the counts into offsets,
 * and a last one writes the rows.  Only the offsets and counts (2E + 1
 * ints) go to the host, which needs them for the experts' products. */
enum { RANK_PER_THREAD = 4, RANK_CHUNK = THREADS * RANK_PER_THREAD };

__global__ void __launch_bounds__(THREADS)
    moe_rank_kernel(int32_t *rank, int32_t *count, const int32_t *sel, int pairs)
{
    __shared__ int scan[THREADS];
    const int e = (int)blockIdx.x, tid = threadIdx.x;
    int before = 0;   /* the expert's pairs in earlier chunks */
    for (int i0 = 0; i0 < pairs; i0 += RANK_CHUNK) {
        int mine = 0;
        for (int x = 0; x < RANK_PER_THREAD; x++) {
            const int i = i0 + RANK_PER_THREAD * tid + x;
            mine += i < pairs && sel[i] == e;
        }
        int chunk;
        int r = before + block_prefix_sum(mine, scan, &chunk) - mine;
        for (int x = 0; x < RANK_PER_THREAD; x++) {
            const int i = i0 + RANK_PER_THREAD * tid + x;
            if (i < pairs && sel[i] == e)
                rank[i] = r++;
        }
        before += chunk;
    }
    if (tid == 0)
        count[e] = before;
}

/* offsets [E + 1] of the kept rows from the counts (one thread: E is small). */
__global__ void moe_offsets_kernel(int32_t *offsets, const int32_t *count, int E, int capacity)
{
    int at = 0;
    for (int e = 0; e < E; e++) {
        offsets[e] = at;
        at += count[e] < capacity ? count[e] : capacity;
    }
    offsets[E] = at;
}

__global__ void moe_place_kernel(int32_t *slot_row, int32_t *row_token, const int32_t *rank, const int32_t *offsets,
                                 const int32_t *sel, int pairs, int k, int capacity)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= pairs)
        return;
    const int r = rank[i];
    if (r < capacity) {
        const int row = offsets[sel[i]] + r;
        slot_row[i] = row;
        row_token[row] = i / k;
    } else {
        slot_row[i] = -1;
    }
}

int dsk_cuda_moe_dispatch(dsk_backend *be, int32_t *slot_row, int32_t *row_token, int *offsets,
                          long *select_counts, const int32_t *sel, int n, int k, int E, int capacity)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    const int pairs = n * k;
    for (int e = 0; e <= E; e++)
        offsets[e] = 0;
    if (pairs <= 0 || E <= 0)
        return 0;
    /* Scratch: ranks [pairs], counts [E], offsets [E + 1]. */
    int32_t *rank = (int32_t *)dsk_cuda_scratch(cb, ((size_t)pairs + 2 * (size_t)E + 1) * sizeof(int32_t));
    int32_t *count = rank + pairs, *dev_offsets = count + E;
    moe_rank_kernel<<<(unsigned)E, THREADS, 0, cb->stream>>>(rank, count, sel, pairs);
    LAUNCHED(cb, "moe_dispatch: ranks");
    moe_offsets_kernel<<<1, 1, 0, cb->stream>>>(dev_offsets, count, E, capacity);
    LAUNCHED(cb, "moe_dispatch: offsets");
    moe_place_kernel<<<(unsigned)((pairs + THREADS - 1) / THREADS), THREADS, 0, cb->stream>>>(
        slot_row, row_token, rank, dev_offsets, sel, pairs, k, capacity);
    LAUNCHED(cb, "moe_dispatch: rows");
    size_t want = 2 * (size_t)E + 1;
    if (cb->host_i32_len < want) {
        free(cb->host_i32);
        cb->host_i32_len = want;
        cb->host_i32 = (int32_t *)dsk_xmalloc(want * sizeof *cb->host_i32);
    }
    CUDA_CHECK(cudaMemcpyAsync(cb->host_i32, count, want * sizeof *cb->host_i32, cudaMemcpyDeviceToHost, cb->stream));
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    const int32_t *h_count = cb->host_i32, *h_offsets = h_count + E;
    for (int e = 0; e <= E; e++)
        offsets[e] = h_offsets[e];
    if (select_counts)
        for (int e = 0; e < E; e++)
            select_counts[e] += h_count[e];
    return offsets[E];
}

/* moe_gather and moe_combine_bwd also write their outputs' 16-bit copies
 * for the experts' products (dsk_cuda_half_produce): each expert's block
 * of rows is then served from the one copy (gemm_operands.cu). */
__global__ void moe_gather_kernel(float *xp, dsk_half_out xp_h, const float *x, const int32_t *row_token, int rows,
                                  int d)
{
    size_t total = (size_t)rows * d;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / d, c = i % d;
        float v = x[(size_t)row_token[r] * d + c];
        xp[i] = v;
        xp_h.put(i, v);
    }
}

void dsk_cuda_moe_gather(dsk_backend *be, float *xp, const float *x, const int32_t *row_token, int rows, int d)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (rows <= 0 || d <= 0)
        return;
    dsk_half_out h;
    dsk_cuda_half_produce(cb, (size_t)rows * d, xp, &h, NULL, NULL);
    moe_gather_kernel<<<dsk_cuda_blocks(cb, (size_t)rows * d, THREADS), THREADS, 0, cb->stream>>>(xp, h, x, row_token,
                                                                                                   rows, d);
    LAUNCHED(cb, "moe_gather");
}

/* out[t] += sum over t's kept slots of gate * yp[row], slots in order. */
__global__ void moe_combine_kernel(float *out, const float *yp, const int32_t *slot_row, const float *gate, int n,
                                   int k, int d)
{
    size_t total = (size_t)n * d;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / d, c = i % d;
        float o = out[i];
        for (int s = 0; s < k; s++) {
            int32_t row = slot_row[t * k + s];
            if (row >= 0)
                o += gate[t * k + s] * yp[(size_t)row * d + c];
        }
        out[i] = o;
    }
}

void dsk_cuda_moe_combine(dsk_backend *be, float *out, const float *yp, const int32_t *slot_row, const float *gate,
                          int n, int k, int d)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || d <= 0)
        return;
    moe_combine_kernel<<<dsk_cuda_blocks(cb, (size_t)n * d, THREADS), THREADS, 0, cb->stream>>>(out, yp, slot_row,
                                                                                                 gate, n, k, d);
    LAUNCHED(cb, "moe_combine");
}

/* A block per (token, slot): dyp[row] = gate * dout[t], dgate = dout[t] . yp[row]. */
__global__ void moe_combine_bwd_kernel(float *dyp, dsk_half_out dyp_h, float *dgate, const float *dout,
                                       const float *yp, const int32_t *slot_row, const float *gate, int d)
{
    __shared__ float sh[32];
    size_t tok = blockIdx.x, ts = tok * gridDim.y + blockIdx.y;   /* grid (n, k) */
    int32_t row = slot_row[ts];
    if (row < 0) {
        if (threadIdx.x == 0)
            dgate[ts] = 0;
        return;
    }
    float g = gate[ts], dot = 0;
    const float *y = yp + (size_t)row * d, *dO = dout + tok * d;
    float *dy = dyp + (size_t)row * d;
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float v = g * dO[c];
        dy[c] = v;
        dyp_h.put((size_t)row * d + c, v);
        dot += dO[c] * y[c];
    }
    dot = block_sum(dot, sh);
    if (threadIdx.x == 0)
        dgate[ts] = dot;
}

void dsk_cuda_moe_combine_bwd(dsk_backend *be, float *dyp, float *dgate, const float *dout, const float *yp,
                              const int32_t *slot_row, const float *gate, int n, int k, int d)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || k <= 0)
        return;
    int threads = d >= 256 ? 256 : d >= 64 ? 64 : 32;
    /* The copy spans n*k rows, as dyp may; the kept rows (the first ones)
     * are written, and the products read only those. */
    dsk_half_out h;
    dsk_cuda_half_produce(cb, (size_t)n * k * d, dyp, &h, NULL, NULL);
    moe_combine_bwd_kernel<<<dim3(n, k), threads, 0, cb->stream>>>(dyp, h, dgate, dout, yp, slot_row, gate, d);
    LAUNCHED(cb, "moe_combine_bwd");
}

/* A gather per token: dx[t] += each kept slot's dxp row, in slot order. */
__global__ void moe_scatter_add_kernel(float *dx, const float *dxp, const int32_t *slot_row, int n, int k, int d)
{
    size_t total = (size_t)n * d;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / d, c = i % d;
        float o = dx[i];
        for (int s = 0; s < k; s++) {
            int32_t row = slot_row[t * k + s];
            if (row >= 0)
                o += dxp[(size_t)row * d + c];
        }
        dx[i] = o;
    }
}

void dsk_cuda_moe_scatter_add(dsk_backend *be, float *dx, const float *dxp, const int32_t *slot_row, int n, int k,
                              int d)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0 || d <= 0)
        return;
    moe_scatter_add_kernel<<<dsk_cuda_blocks(cb, (size_t)n * d, THREADS), THREADS, 0, cb->stream>>>(dx, dxp, slot_row,
                                                                                                     n, k, d);
    LAUNCHED(cb, "moe_scatter_add");
}

/* ---- the balancing losses' statistics ----
 * A block per 256 tokens of one group (blocks never straddle groups, so
 * each block's sums belong to one group).  Its threads first take a token
 * each: the row's sum of probs and logsumexp(logits)^2.  Then they take
 * (expert, token subset) pairs: with E <= 128, BAL_TOKENS / E threads
 * share an expert, each over every G-th token (neighbouring threads read
 * neighbouring probs), and the first E threads add the parts in a fixed
 * order.  The blocks' parts go back to the host, which adds them block
 * by block: the same sums on every run, in double as the CPU's. */
enum { BAL_TOKENS = 256 };

/* Expert e over the block's tokens j = from, from + step, ... < cnt
 * (probs and sel from the block's first token): q = probs / the row's
 * sum added to *qs, -q log q to *ent, the selections of e to *sc. */
__device__ void balance_expert(const float *probs, const int32_t *sel, const double *row_sum, int from, int step,
                               int cnt, int e, int E, int k, double *qs, int *sc, double *ent)
{
    for (int j = from; j < cnt; j += step) {
        double q = probs[(size_t)j * E + e] / row_sum[j];
        *qs += q;
        if (q > 0)
            *ent -= q * log(q);
        for (int s = 0; s < k; s++)
            *sc += sel[(size_t)j * k + s] == e;
    }
}

__global__ void __launch_bounds__(BAL_TOKENS)
    moe_balance_kernel(double *q_part, int *cnt_part, double *sum_part, const float *probs, const int32_t *sel,
                       const float *logits, long T, long chunks, int n, int E, int k)
{
    __shared__ double row_sum[BAL_TOKENS], part_q[BAL_TOKENS], red[32];
    __shared__ int part_c[BAL_TOKENS];
    int i = threadIdx.x;
    long r = blockIdx.x / chunks, c = blockIdx.x % chunks;
    long t0 = r * T + c * BAL_TOKENS, t1 = t0 + BAL_TOKENS;
    t1 = t1 < (r + 1) * T ? t1 : (r + 1) * T;
    t1 = t1 < n ? t1 : n;
    int cnt = t1 > t0 ? (int)(t1 - t0) : 0;

    double lse2 = 0;
    if (i < cnt) {
        const float *pt = probs + (size_t)(t0 + i) * E, *zt = logits + (size_t)(t0 + i) * E;
        double all = 0, mx = -INFINITY, se = 0;
        for (int e = 0; e < E; e++) {
            all += pt[e];
            mx = zt[e] > mx ? zt[e] : mx;
        }
        for (int e = 0; e < E; e++)
            se += exp(zt[e] - mx);
        double lse = mx + log(se);
        lse2 = lse * lse;
        row_sum[i] = all;
    }
    __syncthreads();

    double ent = 0;
    size_t out = (size_t)blockIdx.x * E;
    if (E <= BAL_TOKENS / 2) {
        int G = BAL_TOKENS / E, e = i % E, g = i / E;
        double qs = 0;
        int sc = 0;
        if (g < G)
            balance_expert(probs + (size_t)t0 * E, sel + (size_t)t0 * k, row_sum, g, G, cnt, e, E, k, &qs, &sc, &ent);
        part_q[i] = qs;
        part_c[i] = sc;
        __syncthreads();
        if (i < E) {
            qs = 0, sc = 0;
            for (int h = 0; h < G; h++)
                qs += part_q[h * E + i], sc += part_c[h * E + i];
            q_part[out + i] = qs;
            cnt_part[out + i] = sc;
        }
    } else {
        for (int e = i; e < E; e += BAL_TOKENS) {
            double qs = 0;
            int sc = 0;
            balance_expert(probs + (size_t)t0 * E, sel + (size_t)t0 * k, row_sum, 0, 1, cnt, e, E, k, &qs, &sc, &ent);
            q_part[out + e] = qs;
            cnt_part[out + e] = sc;
        }
    }
    ent = block_sum(ent, red);
    lse2 = block_sum(lse2, red);
    if (i == 0) {
        sum_part[2 * (size_t)blockIdx.x] = ent;
        sum_part[2 * (size_t)blockIdx.x + 1] = lse2;
    }
}

void dsk_cuda_moe_balance_stats(dsk_backend *be, double *q_sum, long *sel_count, double *sums, const float *probs,
                                const int32_t *sel, const float *logits, int rows_per, int n, int E, int k)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    long T = rows_per > 0 ? rows_per : n, R = n > 0 ? (n + T - 1) / T : 0;
    memset(q_sum, 0, (size_t)R * E * sizeof *q_sum);
    memset(sel_count, 0, (size_t)R * E * sizeof *sel_count);
    sums[0] = sums[1] = 0;
    if (n <= 0 || E <= 0)
        return;
    long chunks = (T + BAL_TOKENS - 1) / BAL_TOKENS, blocks = R * chunks;
    size_t nq = (size_t)blocks * E, bytes = (nq + 2 * (size_t)blocks) * sizeof(double) + nq * sizeof(int);
    /* Doubles first: every part stays aligned. */
    char *dev = (char *)dsk_cuda_scratch(cb, bytes);
    double *q_part = (double *)dev, *sum_part = q_part + nq;
    int *cnt_part = (int *)(sum_part + 2 * blocks);
    moe_balance_kernel<<<(unsigned)blocks, BAL_TOKENS, 0, cb->stream>>>(q_part, cnt_part, sum_part, probs, sel,
                                                                         logits, T, chunks, n, E, k);
    LAUNCHED(cb, "moe_balance_stats");
    char *host = (char *)dsk_xmalloc(bytes);
    CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, cb->stream));
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    const double *hq = (const double *)host, *hs = hq + nq;
    const int *hc = (const int *)(hs + 2 * blocks);
    for (long b = 0; b < blocks; b++) {
        size_t to = (size_t)(b / chunks) * E, from = (size_t)b * E;
        for (int e = 0; e < E; e++) {
            q_sum[to + e] += hq[from + e];
            sel_count[to + e] += hc[from + e];
        }
        sums[0] += hs[2 * b];
        sums[1] += hs[2 * b + 1];
    }
    free(host);
}

/* The per-token math is the CPU kernel's (lib/ops/route_bwd_row.h). */
#define ROUTE_REAL float
#define ROUTE_ROW route_bwd_row
#define ROUTE_QUALIFIER __device__ __forceinline__
#include "ops/route_bwd_row.h"
#undef ROUTE_REAL
#undef ROUTE_ROW
#undef ROUTE_QUALIFIER

/* One thread per token, dlogits as its working row. */
__global__ void moe_route_bwd_kernel(float *dlogits, const float *dgate, const float *probs, const int32_t *sel,
                                     const float *gate, const float *logits, const float *aux_w, int rows_per,
                                     float z_coef, int n, int E, int k, int router)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n)
        return;
    route_bwd_row(dlogits + (size_t)t * E, dgate + (size_t)t * k, probs + (size_t)t * E, sel + (size_t)t * k,
                  gate + (size_t)t * k, aux_w ? aux_w + (size_t)(t / rows_per) * E : NULL, logits + (size_t)t * E,
                  z_coef, E, k, router);
}

void dsk_cuda_moe_route_bwd(dsk_backend *be, float *dlogits, const float *dgate, const float *probs,
                            const int32_t *sel, const float *gate, const float *logits, const float *aux_w,
                            int rows_per, float z_coef, int n, int E, int k, int router)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (n <= 0)
        return;
    int threads = 128;
    moe_route_bwd_kernel<<<(n + threads - 1) / threads, threads, 0, cb->stream>>>(
        dlogits, dgate, probs, sel, gate, logits, aux_w, rows_per, z_coef, n, E, k, router);
    LAUNCHED(cb, "moe_route_bwd");
}
