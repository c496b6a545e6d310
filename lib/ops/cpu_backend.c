/* The cpu backend: device memory is host memory, the ops are the float
 * kernels of cpu_kernels_impl.h, threads are OpenMP's (OpenBLAS's OpenMP
 * build shares the same pool). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "ops/attn_decode.h"
#include "ops/backend.h"
#include "ops/cpu_kernels.h"
#include "ops/gemm_packed.h"
#include "ops/gemv_rows.h"
#include "ops/half.h"
#include "ops/swiglu_avx2.h"
#include "quant/int4.h"

static void *cpu_alloc(dsk_backend *be, size_t bytes)
{
    (void)be;
    void *p = NULL;
    /* 64-byte alignment for vector loads; zeroed as the interface promises. */
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
        dsk_die(EX_OSERR, "out of memory allocating %zu bytes", bytes);
    memset(p, 0, bytes);
    return p;
}

static void cpu_free(dsk_backend *be, void *p) { (void)be; free(p); }
static void cpu_copy(dsk_backend *be, void *dst, const void *src, size_t n) { (void)be; if (n) memmove(dst, src, n); }
static void cpu_zero(dsk_backend *be, void *p, size_t n) { (void)be; if (n) memset(p, 0, n); }

/* The CPU backend's own state: weights registered as int4, and scratch. */
typedef struct cpu_backend {
    dsk_backend be;                 /* first: a dsk_backend * is a cpu_backend * */
    struct int4_weight {
        const float *W;
        const dsk_q4_linear *q;
    } *int4;
    int n_int4, cap_int4;
    /* frozen weights' panels (cpu_freeze_weights), sorted by W */
    struct packed_weight {
        const float *W;
        dsk_packed_weight p;
    } *packed;
    int n_packed;
    float *tmp;
    size_t tmp_len;
    /* gemm_dtype bf16 / fp16: the operands rounded through the type,
     * grown as needed and kept (a training step makes thousands of
     * products of the same few shapes). */
    float *round_a, *round_b;
    size_t round_a_len, round_b_len;
} cpu_backend;

/* Up to this many rows the int4 kernel beats dequantized fp32 sgemm
 * (it decodes each block of codes once per 8 rows). */
enum { INT4_MAX_ROWS = 8 };

/* int4_weight and packed_weight, by their first member, the weight W. */
static int by_weight(const void *a, const void *b)
{
    const float *x = *(const float *const *)a, *y = *(const float *const *)b;
    return x < y ? -1 : x > y;
}

static void cpu_register_int4(dsk_backend *be, const float *W, const void *int4)
{
    cpu_backend *cb = (cpu_backend *)be;
    if (cb->n_int4 == cb->cap_int4) {
        cb->cap_int4 = cb->cap_int4 ? 2 * cb->cap_int4 : 64;
        cb->int4 = dsk_xrealloc(cb->int4, (size_t)cb->cap_int4 * sizeof *cb->int4);
    }
    cb->int4[cb->n_int4].W = W;
    cb->int4[cb->n_int4++].q = int4;
    qsort(cb->int4, (size_t)cb->n_int4, sizeof *cb->int4, by_weight);
}


/* All of the weights or none (see backend.h), none when DSK_NO_PACKED is
 * set (for comparisons). */
static void cpu_freeze_weights(dsk_backend *be, int n, const float *const *W, const int *N, const int *K)
{
    cpu_backend *cb = (cpu_backend *)be;
    const char *off = getenv("DSK_NO_PACKED");
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += dsk_packed_bytes(N[i], K[i]);
    if ((off && *off && strcmp(off, "0")) || !dsk_packed_available() || cb->n_packed || total > DSK_PACKED_BUDGET)
        return;
    cb->packed = dsk_xcalloc((size_t)n, sizeof *cb->packed);
    for (int i = 0; i < n; i++) {
        struct packed_weight *w = &cb->packed[cb->n_packed];
        w->W = W[i];
        if (!dsk_packed_make(&w->p, W[i], N[i], K[i])) {   /* out of memory: none after all */
            for (int j = 0; j < cb->n_packed; j++)
                dsk_packed_free(&cb->packed[j].p);
            free(cb->packed);
            cb->packed = NULL;
            cb->n_packed = 0;
            return;
        }
        cb->n_packed++;
    }
    qsort(cb->packed, (size_t)cb->n_packed, sizeof *cb->packed, by_weight);
}

/* Whether [p, p + bytes) overlaps a frozen weight: a write there would
 * leave its panels stale, which no caller may do (backend.h). */
static int touches_frozen(const cpu_backend *cb, const void *p, size_t bytes)
{
    /* The last weight that starts before the range's end is the only one
     * that can reach into it (the weights do not overlap). */
    const char *lo = p, *hi = lo + bytes;
    int a = 0, b = cb->n_packed;   /* entries [0, a) start before hi, [b, n) do not */
    while (a < b) {
        int mid = (a + b) / 2;
        if ((const char *)cb->packed[mid].W < hi)
            a = mid + 1;
        else
            b = mid;
    }
    if (a == 0)
        return 0;
    const struct packed_weight *w = &cb->packed[a - 1];
    return (const char *)w->W + (size_t)w->p.N * w->p.K * sizeof(float) > lo;
}

static void cpu_write(dsk_backend *be, void *dst, const void *src, size_t n)
{
    cpu_backend *cb = (cpu_backend *)be;
    if (cb->n_packed && n && touches_frozen(cb, dst, n))
        dsk_die(EX_SOFTWARE, "cpu backend: a write into a frozen weight (its panels would go stale)");
    if (n)
        memmove(dst, src, n);
}

/* B's panels when B is a frozen [N,K] weight and the product is one they
 * serve: A Bᵀ (or added to C) of at most DSK_PACKED_MAX_ROWS rows. */
static const dsk_packed_weight *packed_for(const cpu_backend *cb, int ta, int tb, int M, int N, int K, float alpha,
                                           const float *B, float beta)
{
    if (!cb->n_packed || ta || !tb || M < 1 || M > DSK_PACKED_MAX_ROWS || alpha != 1 || (beta != 0 && beta != 1) ||
        cb->be.gemm_dtype != DSK_DTYPE_FP32)
        return NULL;
    struct packed_weight key = {B, {0}};
    const struct packed_weight *w = bsearch(&key, cb->packed, (size_t)cb->n_packed, sizeof key, by_weight);
    return w && w->p.N == N && w->p.K == K ? &w->p : NULL;
}

/* *buf with room for n floats (its old contents are not kept). */
static float *grow(float **buf, size_t *len, size_t n)
{
    if (*len < n) {
        free(*buf);
        *buf = dsk_xmalloc(n * sizeof **buf);
        *len = n;
    }
    return *buf;
}

/* A float32 product the row kernel takes: a few rows of A against a
 * [N,K] weight, C = A W^T or C += A W^T.  Its rows get the bits each has
 * alone, which decoding's batched steps rely on. */
static int takes_row_kernel(int ta, int tb, int M, int K, float alpha, float beta)
{
    return !ta && tb && M >= 1 && M <= dsk_gemv_rows_max() && K > 0 && alpha == 1 && (beta == 0 || beta == 1);
}

static void cpu_gemm(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                     const float *B, float beta, float *C)
{
    cpu_backend *cb = (cpu_backend *)be;
    if (cb->n_int4 && !ta && tb && M <= INT4_MAX_ROWS && alpha == 1) {
        struct int4_weight key = {B, NULL};
        const struct int4_weight *w = bsearch(&key, cb->int4, (size_t)cb->n_int4, sizeof key, by_weight);
        if (w && w->q->rows == N && w->q->cols == K) {
            if (beta == 0) {
                dsk_q4_matmul(w->q, A, M, C);
                return;
            }
            size_t n = (size_t)M * N;
            grow(&cb->tmp, &cb->tmp_len, n);
            dsk_q4_matmul(w->q, A, M, cb->tmp);
            for (size_t i = 0; i < n; i++)
                C[i] = cb->tmp[i] + beta * C[i];
            return;
        }
    }
    const dsk_packed_weight *pw = packed_for(cb, ta, tb, M, N, K, alpha, B, beta);
    if (pw) {
        dsk_packed_gemm(pw, A, M, C, beta == 1);   /* a decoding step's rows, a loaded checkpoint's weight */
        return;
    }
    if (be->gemm_dtype == DSK_DTYPE_FP32 && takes_row_kernel(ta, tb, M, K, alpha, beta)) {
        dsk_gemv_rows_f32(A, M, B, N, K, C, beta == 1);   /* a decoding step's rows */
        return;
    }
    if (be->gemm_dtype != DSK_DTYPE_FP32 && M > 0 && N > 0 && K > 0) {
        /* The reference for tensor-core products: each operand rounded
         * (round to nearest even), products and sums in float32, which
         * holds a bf16 x bf16 or fp16 x fp16 product exactly. */
        size_t na = (size_t)M * K, nb = (size_t)K * N;
        float *ra = grow(&cb->round_a, &cb->round_a_len, na), *rb = grow(&cb->round_b, &cb->round_b_len, nb);
        dsk_round_dtype(be->gemm_dtype, ra, A, na);
        dsk_round_dtype(be->gemm_dtype, rb, B, nb);
        A = ra;
        B = rb;
    }
    dsk_cpu_gemm_f32(ta, tb, M, N, K, alpha, A, B, beta, C);
}
static void cpu_gemm_add(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                         const float *B, const float *R, float *C)
{
    if (M > 0 && N > 0 && R != C)
        cpu_copy(be, C, R, (size_t)M * N * sizeof *C);
    cpu_gemm(be, ta, tb, M, N, K, alpha, A, B, 1.0f, C);
}

/* Groups (a MoE layer's experts) averaging less than this many flops
 * run side by side, one per thread; bigger ones one after the other,
 * each with every thread. */
#define GROUPED_SMALL_FLOPS 2e8

static void cpu_gemm_grouped(dsk_backend *be, int ta, int tb, int count, const int *M, const int *N, const int *K,
                             float alpha, const float *const *A, const float *const *B, float beta, float *const *C)
{
    cpu_backend *cb = (cpu_backend *)be;
    double flops = 0;
    int live = 0;
    for (int g = 0; g < count; g++)
        if (M[g] > 0 && N[g] > 0 && K[g] > 0) {
            flops += 2.0 * M[g] * N[g] * K[g];
            live++;
        }
    /* cpu_gemm's int4 and 16-bit paths keep per-backend scratch: they
     * take the groups one at a time. */
    int side_by_side = live > 1 && flops / live < GROUPED_SMALL_FLOPS && be->gemm_dtype == DSK_DTYPE_FP32 &&
                       !cb->n_int4;
    if (side_by_side) {
        /* The kernels run single-threaded inside the parallel loop.  A
         * group of a few rows takes the row kernel, as cpu_gemm gives it:
         * an expert's rows then get the same bits whatever other rows it
         * has (BLAS's gemv for one row and gemm for two differ), which
         * speculative decoding's drafts rely on. */
#pragma omp parallel for schedule(dynamic, 1) num_threads(be->threads)
        for (int g = 0; g < count; g++) {
            if (M[g] <= 0 || N[g] <= 0 || K[g] <= 0)
                continue;
            const dsk_packed_weight *pw = packed_for(cb, ta, tb, M[g], N[g], K[g], alpha, B[g], beta);
            if (pw)
                dsk_packed_gemm(pw, A[g], M[g], C[g], beta == 1);
            else if (takes_row_kernel(ta, tb, M[g], K[g], alpha, beta))
                dsk_gemv_rows_f32(A[g], M[g], B[g], N[g], K[g], C[g], beta == 1);
            else
                dsk_cpu_gemm_f32(ta, tb, M[g], N[g], K[g], alpha, A[g], B[g], beta, C[g]);
        }
        return;
    }
    for (int g = 0; g < count; g++)
        if (M[g] > 0 && N[g] > 0 && K[g] > 0)
            cpu_gemm(be, ta, tb, M[g], N[g], K[g], alpha, A[g], B[g], beta, C[g]);
}

static void cpu_add(dsk_backend *be, float *y, const float *x, size_t n) { (void)be; dsk_cpu_add_f32(y, x, n); }
static void cpu_scale(dsk_backend *be, float *x, size_t n, float s) { (void)be; dsk_cpu_scale_f32(x, n, s); }
static double cpu_sumsq(dsk_backend *be, const float *x, size_t n) { (void)be; return dsk_cpu_sumsq_f32(x, n); }

static void cpu_embedding_fwd(dsk_backend *be, float *out, const float *table, const int32_t *tokens, int n, int C)
{
    (void)be;
    dsk_cpu_embedding_fwd_f32(out, table, tokens, n, C);
}
static void cpu_embedding_bwd(dsk_backend *be, float *dtable, const float *dout, const int32_t *tokens, int n,
                              int C)
{
    (void)be;
    dsk_cpu_embedding_bwd_f32(dtable, dout, tokens, n, C);
}
static void cpu_rmsnorm_fwd(dsk_backend *be, float *out, float *rstd, const float *x, const float *w, int n, int C,
                            float eps)
{
    (void)be;
    dsk_cpu_rmsnorm_fwd_f32(out, rstd, x, w, n, C, eps);
}
static void cpu_rmsnorm_bwd(dsk_backend *be, float *dx, float *dw, const float *dout, const float *x,
                            const float *w, const float *rstd, int n, int C)
{
    (void)be;
    dsk_cpu_rmsnorm_bwd_f32(dx, dw, dout, x, w, rstd, n, C);
}
static void cpu_rope(dsk_backend *be, float *x, const int32_t *pos, const float *cs, int n, int heads, int hd,
                     int inverse)
{
    (void)be;
    dsk_cpu_rope_f32(x, pos, cs, n, heads, hd, inverse);
}
static void cpu_attention_fwd(dsk_backend *be, float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                              const float *q, const float *k, const float *v, const int32_t *pos, const float *alpha,
                              const dsk_attn_shape *s)
{
    (void)be;
    dsk_cpu_attention_fwd_f32(out, lse_g, lse_l, out_g, out_l, q, k, v, pos, alpha, s);
}
static void cpu_attention_bwd(dsk_backend *be, float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                              const float *out, const float *q, const float *k, const float *v, const float *lse_g,
                              const float *lse_l, const float *out_g, const float *out_l, const int32_t *pos,
                              const float *alpha, const dsk_attn_shape *s)
{
    (void)be;
    dsk_cpu_attention_bwd_f32(dq, dk, dv, dalpha, dout, out, q, k, v, lse_g, lse_l, out_g, out_l, pos, alpha, s);
}
static void cpu_attention_decode(dsk_backend *be, float *out, const float *q, const float *kc, const float *vc,
                                 size_t seq_stride, const int32_t *seq, const int32_t *pos, int n, const float *alpha,
                                 const dsk_attn_shape *s)
{
    (void)be;
    if (dsk_attn_decode_avx2(out, q, kc, vc, seq_stride, seq, pos, n, alpha, s) == 0)
        return;
    dsk_cpu_attention_decode_f32(out, q, kc, vc, seq_stride, seq, pos, n, alpha, s);
}
static void cpu_swiglu_fwd(dsk_backend *be, float *out, const float *g, const float *u, size_t n)
{
    (void)be;
    if (dsk_swiglu_fwd_avx2(out, g, u, n) != 0)
        dsk_cpu_swiglu_fwd_f32(out, g, u, n);
}
static void cpu_swiglu_bwd(dsk_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u,
                           size_t n)
{
    (void)be;
    if (dsk_swiglu_bwd_avx2(dg, du, dout, g, u, n) != 0)
        dsk_cpu_swiglu_bwd_f32(dg, du, dout, g, u, n);
}
static void cpu_softmax_xent(dsk_backend *be, float *loss, float *logits, const int32_t *targets,
                             const float *weight, int n, int V, float grad_scale)
{
    (void)be;
    dsk_cpu_softmax_xent_f32(loss, logits, targets, weight, n, V, grad_scale);
}
static void cpu_adamw(dsk_backend *be, float *p, const float *g, float gs, float *m, float *v, size_t n, float lr,
                      float b1, float b2, float eps, float wd, float c1, float c2)
{
    cpu_backend *cb = (cpu_backend *)be;
    if (cb->n_packed && touches_frozen(cb, p, n * sizeof *p))
        dsk_die(EX_SOFTWARE, "cpu backend: adamw over a frozen weight (its panels would go stale)");
    dsk_cpu_adamw_f32(p, g, gs, m, v, n, lr, b1, b2, eps, wd, c1, c2);
}
int dsk_cpu_moe_dispatch(int32_t *slot_row, int32_t *row_token, int *offsets, long *select_counts,
                         const int32_t *sel, int n, int k, int E, int capacity)
{
    /* Two passes in token order: who is kept (first come, first served up
     * to the capacity), then where each kept pair goes. */
    int *count = calloc((size_t)E, sizeof *count);
    for (int i = 0; i < n * k; i++) {
        int e = sel[i];
        if (select_counts)
            select_counts[e]++;
        if (count[e] < capacity) {
            count[e]++;
            slot_row[i] = 0;
        } else {
            slot_row[i] = -1;
        }
    }
    offsets[0] = 0;
    for (int e = 0; e < E; e++)
        offsets[e + 1] = offsets[e] + count[e];
    for (int e = 0; e < E; e++)
        count[e] = offsets[e];
    for (int i = 0; i < n * k; i++)
        if (slot_row[i] == 0) {
            int row = count[sel[i]]++;
            slot_row[i] = row;
            row_token[row] = i / k;
        }
    free(count);
    return offsets[E];
}

/* The balancing losses' statistics (backend.h's moe_balance_stats) of
 * tokens [t0, t1), added to q_sum [E], sel_count [E] and sums [2]. */
static void moe_balance_part(double *q_sum, long *sel_count, double *sums, const float *probs, const int32_t *sel,
                             const float *logits, long t0, long t1, int E, int k)
{
    for (long t = t0; t < t1; t++) {
        const float *pt = probs + (size_t)t * E, *zt = logits + (size_t)t * E;
        double all = 0, mx = -INFINITY, se = 0;
        for (int e = 0; e < E; e++) {
            all += pt[e];
            mx = zt[e] > mx ? zt[e] : mx;
        }
        for (int e = 0; e < E; e++) {
            double q = pt[e] / all;
            q_sum[e] += q;
            if (q > 0)
                sums[0] -= q * log(q);
            se += exp(zt[e] - mx);
        }
        double lse = mx + log(se);
        sums[1] += lse * lse;
        for (int s = 0; s < k; s++)
            sel_count[sel[(size_t)t * k + s]]++;
    }
}

static void cpu_moe_balance_stats(dsk_backend *be, double *q_sum, long *sel_count, double *sums, const float *probs,
                                  const int32_t *sel, const float *logits, int rows_per, int n, int E, int k)
{
    (void)be;
    long T = rows_per > 0 ? rows_per : n, R = n > 0 ? (n + T - 1) / T : 0;
    memset(q_sum, 0, (size_t)R * E * sizeof *q_sum);
    memset(sel_count, 0, (size_t)R * E * sizeof *sel_count);
    sums[0] = sums[1] = 0;
    for (long r = 0; r < R; r++)
        moe_balance_part(q_sum + r * E, sel_count + r * E, sums, probs, sel, logits, r * T,
                         (r + 1) * T < n ? (r + 1) * T : n, E, k);
}

static void cpu_moe_route(dsk_backend *be, float *probs, int32_t *sel, float *gate, const float *logits,
                          const float *bias, int n, int E, int k, int router)
{
    (void)be;
    dsk_cpu_moe_route_f32(probs, sel, gate, logits, bias, n, E, k, router);
}
static int cpu_moe_dispatch(dsk_backend *be, int32_t *slot_row, int32_t *row_token, int *offsets,
                            long *select_counts, const int32_t *sel, int n, int k, int E, int capacity)
{
    (void)be;
    return dsk_cpu_moe_dispatch(slot_row, row_token, offsets, select_counts, sel, n, k, E, capacity);
}
static void cpu_moe_gather(dsk_backend *be, float *xp, const float *x, const int32_t *row_token, int rows, int d)
{
    (void)be;
    dsk_cpu_moe_gather_f32(xp, x, row_token, rows, d);
}
static void cpu_moe_combine(dsk_backend *be, float *out, const float *yp, const int32_t *slot_row, const float *gate,
                            int n, int k, int d)
{
    (void)be;
    dsk_cpu_moe_combine_f32(out, yp, slot_row, gate, n, k, d);
}
static void cpu_moe_combine_bwd(dsk_backend *be, float *dyp, float *dgate, const float *dout, const float *yp,
                                const int32_t *slot_row, const float *gate, int n, int k, int d)
{
    (void)be;
    dsk_cpu_moe_combine_bwd_f32(dyp, dgate, dout, yp, slot_row, gate, n, k, d);
}
static void cpu_moe_scatter_add(dsk_backend *be, float *dx, const float *dxp, const int32_t *slot_row, int n, int k,
                                int d)
{
    (void)be;
    dsk_cpu_moe_scatter_add_f32(dx, dxp, slot_row, n, k, d);
}
static void cpu_moe_route_bwd(dsk_backend *be, float *dlogits, const float *dgate, const float *probs,
                              const int32_t *sel, const float *gate, const float *logits, const float *aux_w,
                              int rows_per, float z_coef, int n, int E, int k, int router)
{
    (void)be;
    dsk_cpu_moe_route_bwd_f32(dlogits, dgate, probs, sel, gate, logits, aux_w, rows_per, z_coef, n, E, k, router);
}

static void cpu_destroy(dsk_backend *be)
{
    cpu_backend *cb = (cpu_backend *)be;
    free(cb->int4);
    for (int i = 0; i < cb->n_packed; i++)
        dsk_packed_free(&cb->packed[i].p);
    free(cb->packed);
    free(cb->tmp);
    free(cb->round_a);
    free(cb->round_b);
    free(cb);
}

dsk_backend *dsk_backend_cpu(int threads)
{
    cpu_backend *cb = dsk_xcalloc(1, sizeof *cb);
    dsk_backend *be = &cb->be;
    /* -j is capped at 4096 by the tools; OMP_NUM_THREADS is capped the
     * same (libgomp crashes creating 100000 threads). */
    if (threads <= 0 && omp_get_max_threads() > 4096)
        threads = 4096;
    if (threads > 0)
        omp_set_num_threads(threads);
    be->name = "cpu";
    be->threads = omp_get_max_threads();
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_write;
    be->download = cpu_copy;
    be->copy = cpu_write;
    be->zero = cpu_zero;
    be->gemm = cpu_gemm;
    be->gemm_add = cpu_gemm_add;
    be->gemm_grouped = cpu_gemm_grouped;
    be->register_int4 = cpu_register_int4;
    be->freeze_weights = cpu_freeze_weights;
    be->add = cpu_add;
    be->scale = cpu_scale;
    be->sumsq = cpu_sumsq;
    be->embedding_fwd = cpu_embedding_fwd;
    be->embedding_bwd = cpu_embedding_bwd;
    be->rmsnorm_fwd = cpu_rmsnorm_fwd;
    be->rmsnorm_bwd = cpu_rmsnorm_bwd;
    be->rope = cpu_rope;
    be->attention_fwd = cpu_attention_fwd;
    be->attention_bwd = cpu_attention_bwd;
    be->attention_decode = cpu_attention_decode;
    be->swiglu_fwd = cpu_swiglu_fwd;
    be->swiglu_bwd = cpu_swiglu_bwd;
    be->softmax_xent = cpu_softmax_xent;
    be->moe_route = cpu_moe_route;
    be->moe_dispatch = cpu_moe_dispatch;
    be->moe_gather = cpu_moe_gather;
    be->moe_combine = cpu_moe_combine;
    be->moe_combine_bwd = cpu_moe_combine_bwd;
    be->moe_scatter_add = cpu_moe_scatter_add;
    be->moe_balance_stats = cpu_moe_balance_stats;
    be->moe_route_bwd = cpu_moe_route_bwd;
    be->adamw = cpu_adamw;
    be->destroy = cpu_destroy;
    return be;
}

void dsk_rope_table(float *cos_sin, int max_pos, int hd, double theta)
{
    dsk_cpu_rope_table_f32(cos_sin, max_pos, hd, theta);
}
