/* The CPU kernels, written once over REAL (float or double) and compiled
 * by cpu_kernels_f32.c and cpu_kernels_f64.c.  Not a header to include
 * anywhere else.
 *
 * Threading: OpenMP with static schedules, and every reduction either
 * owned by one thread or summed in a fixed order afterwards, so a run is
 * bit-for-bit repeatable at a given thread count. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "ops/attn_first.h"
#include "ops/cpu_kernels.h"

#ifndef REAL
#error "define REAL, KS, CBLAS_GEMM and CBLAS_GEMV before including cpu_kernels_impl.h"
#endif

typedef REAL real;

/* A parallel region costs a fork and a join (waking threads that sleep
 * between regions): several microseconds, more than a loop over a few
 * thousand elements.  Loops over less work than this many element
 * operations run on the calling thread.  The split never changes a
 * result: every loop below gives each element one owner. */
#define PAR_MIN_WORK 32768.0
#define PAR_IF(work) if ((double)(work) >= PAR_MIN_WORK)

#ifndef KERNEL_EXP
#define KERNEL_EXP(x) exp(x)
#endif

void KS(gemm)(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, const real *B, real beta,
              real *C)
{
    if (M == 0 || N == 0)
        return;
    if (M == 1) {
        /* One row (decoding one token): a matrix-vector product.  GEMM
         * would first copy all of B into its packed layout, which for an
         * LM head costs more than the product.  C is cleared first: some
         * OpenBLAS versions scale y by beta = 0 as a product (NaN stays). */
        if (beta == 0)
            memset(C, 0, (size_t)N * sizeof *C);
        if (trans_b)   /* B [N,K]: C = B a */
            CBLAS_GEMV(CblasRowMajor, CblasNoTrans, N, K, alpha, B, K, A, 1, beta, C, 1);
        else           /* B [K,N]: C = Bᵀ a */
            CBLAS_GEMV(CblasRowMajor, CblasTrans, K, N, alpha, B, N, A, 1, beta, C, 1);
        return;
    }
    CBLAS_GEMM(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
               alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

void KS(add)(real *y, const real *x, size_t n)
{
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void KS(scale)(real *x, size_t n, real s)
{
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

double KS(sumsq)(const real *x, size_t n)
{
    /* Fixed blocks summed in order: the same value at any thread count. */
    enum { BLOCK = 1 << 16 };
    size_t nb = (n + BLOCK - 1) / BLOCK;
    double *part = malloc((nb ? nb : 1) * sizeof *part);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        double s = 0;
        size_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
#pragma omp simd reduction(+ : s)
        for (size_t i = b * BLOCK; i < end; i++)
            s += (double)x[i] * (double)x[i];
        part[b] = s;
    }
    double total = 0;
    for (size_t b = 0; b < nb; b++)
        total += part[b];
    free(part);
    return total;
}

void KS(embedding_fwd)(real *out, const real *table, const int32_t *tokens, int n, int C)
{
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * C)
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * C, table + (size_t)tokens[i] * C, (size_t)C * sizeof(real));
}

void KS(embedding_bwd)(real *dtable, const real *dout, const int32_t *tokens, int n, int C)
{
    /* Split by columns, so each table entry has one writer and tokens
     * that repeat add up in order. */
    enum { COLS = 32 };
    int nblocks = (C + COLS - 1) / COLS;
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * C)
    for (int b = 0; b < nblocks; b++) {
        int c0 = b * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
        for (int i = 0; i < n; i++) {
            real *dst = dtable + (size_t)tokens[i] * C;
            const real *src = dout + (size_t)i * C;
            for (int c = c0; c < c1; c++)
                dst[c] += src[c];
        }
    }
}

void KS(rmsnorm_fwd)(real *out, real *rstd, const real *x, const real *w, int n, int C, real eps)
{
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * C * 3)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * C;
        real *oi = out + (size_t)i * C;
        real ss = 0;
        for (int c = 0; c < C; c++)
            ss += xi[c] * xi[c];
        real r = 1 / sqrt(ss / C + eps);
        rstd[i] = r;
        for (int c = 0; c < C; c++)
            oi[c] = xi[c] * r * w[c];
    }
}

void KS(rmsnorm_bwd)(real *dx, real *dw, const real *dout, const real *x, const real *w, const real *rstd, int n,
                     int C)
{
    /* y = x r w, r = (mean(x^2) + eps)^-1/2:
     * dx = r (dy w) - x r^3 mean(dy w x). */
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * C * 3)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
        real *dxi = dx + (size_t)i * C;
        real r = rstd[i], dot = 0;
        for (int c = 0; c < C; c++)
            dot += di[c] * w[c] * xi[c];
        real k = r * r * r * dot / C;
        for (int c = 0; c < C; c++)
            dxi[c] += r * di[c] * w[c] - k * xi[c];
    }
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * C * 3)
    for (int c = 0; c < C; c++) {
        real s = 0;
        for (int i = 0; i < n; i++)
            s += dout[(size_t)i * C + c] * x[(size_t)i * C + c] * rstd[i];
        dw[c] += s;
    }
}

void KS(rope_table)(real *cos_sin, int max_pos, int hd, double theta)
{
    int half = hd / 2;
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            /* As transformers computes it: inv_freq in float, then p * inv_freq. */
            double inv_freq = 1.0 / pow(theta, (double)(2 * i) / hd);
            double a = (double)p * inv_freq;
            cos_sin[((size_t)p * half + i) * 2] = (real)cos(a);
            cos_sin[((size_t)p * half + i) * 2 + 1] = (real)sin(a);
        }
}

void KS(rope)(real *x, const int32_t *pos, const real *cos_sin, int n, int heads, int hd, int inverse)
{
    /* rotate-half: the pair is (x[i], x[i + hd/2]), not adjacent elements. */
    int half = hd / 2;
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * heads * hd * 2)
    for (int t = 0; t < n; t++) {
        const real *cs = cos_sin + (size_t)pos[t] * half * 2;
        for (int h = 0; h < heads; h++) {
            real *v = x + (size_t)t * heads * hd + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                real c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
                real a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

/* ---- attention ------------------------------------------------------------------------- */

/* a . b over n: eight partial sums (element d into sum d % 8) added in a
 * fixed tree, which the compiler makes vector code of; one running sum
 * would be a chain of dependent adds, a few cycles each. */
static inline real KS(dot8)(const real *a, const real *b, int n)
{
    real acc[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
#pragma GCC unroll 8
        for (int l = 0; l < 8; l++)
            acc[l] += a[d + l] * b[d + l];
    for (; d < n; d++)
        acc[d & 7] += a[d] * b[d];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* p[first..i] = softmax(scale * q . k_j) (the decoder's one-query path). */
static void KS(attn_row)(real *p, const real *qi, const real *k, size_t k_stride, int first, int i, int hd,
                         real scale)
{
    real mx = -INFINITY;
    for (int j = first; j <= i; j++) {
        real s = KS(dot8)(qi, k + (size_t)j * k_stride, hd) * scale;
        p[j] = s;
        if (s > mx)
            mx = s;
    }
    real sum = 0;
    for (int j = first; j <= i; j++) {
        p[j] = KERNEL_EXP(p[j] - mx);
        sum += p[j];
    }
    for (int j = first; j <= i; j++)
        p[j] /= sum;
}

/* Row i of a T x T score matrix becomes its masked softmax: keys
 * [first, i] only, zeros elsewhere (the matrix products read whole rows).
 * Returns the row's log-sum-exp over the visible keys, what the backward
 * needs to rebuild the row. */
static real KS(masked_softmax_row)(real *row, int T, int first, int i)
{
    real mx = -INFINITY, sum = 0;
    for (int j = first; j <= i; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (int j = 0; j < first; j++)
        row[j] = 0;
    for (int j = first; j <= i; j++) {
        row[j] = KERNEL_EXP(row[j] - mx);
        sum += row[j];
    }
    real inv = 1 / sum;
    for (int j = first; j <= i; j++)
        row[j] *= inv;
    for (int j = i + 1; j < T; j++)
        row[j] = 0;
    return mx + log(sum);
}

/* The backward's copy of that row, from the scores and the saved
 * log-sum-exp: exp(score - lse) on [first, i], zeros elsewhere. */
static void KS(softmax_row_from_lse)(real *p, const real *scores, int T, int first, int i, real lse)
{
    for (int j = 0; j < first; j++)
        p[j] = 0;
    for (int j = first; j <= i; j++)
        p[j] = KERNEL_EXP(scores[j] - lse);
    for (int j = i + 1; j < T; j++)
        p[j] = 0;
}

/* C[M,N] = alpha op(A) op(B) + beta C with explicit leading dimensions:
 * heads are column slices of the [tokens, heads*hd] activations. */
static void KS(gemm_ld)(int ta, int tb, int M, int N, int K, real alpha, const real *A, int lda, const real *B,
                        int ldb, real beta, real *C, int ldc)
{
    CBLAS_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
               B, ldb, beta, C, ldc);
}

/* Attention per (row, head) as dense T x T products through the BLAS
 * (single-threaded inside the OpenMP loop), masks applied in the softmax.
 * The T x T matrices are each thread's scratch, reused from one (row,
 * head) to the next: what outlives the call is the log-sum-exp per query
 * (and a hybrid layer's two part outputs), as backend.h asks. */
void KS(attention_fwd)(real *out, real *lse_g, real *lse_l, real *out_g, real *out_l, const real *q, const real *k,
                       const real *v, const int32_t *pos, const real *alpha, const dsk_attn_shape *s)
{
    int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, group = H / KV;
    int qs = H * hd, ks = KV * hd;
    real scale = 1 / sqrt((real)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL, hybrid = use_g && use_l;
    real a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
#pragma omp parallel
    {
        real *pg = malloc((size_t)T * T * sizeof *pg);
        real *pl = hybrid ? malloc((size_t)T * T * sizeof *pl) : pg;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                size_t head = (size_t)b * T * qs + (size_t)h * hd;
                const real *Q = q + head;
                const real *K = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
                const real *V = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
                const int32_t *pb = pos + (size_t)b * T;
                size_t rows = ((size_t)b * H + h) * T;
                KS(gemm_ld)(0, 1, T, T, hd, scale, Q, qs, K, ks, 0, pg, T);
                if (hybrid)
                    memcpy(pl, pg, (size_t)T * T * sizeof *pl);
                for (int i = 0; i < T; i++) {
                    if (use_g)
                        lse_g[rows + i] = KS(masked_softmax_row)(pg + (size_t)i * T, T,
                                                                 dsk_attn_first(i, pb[i], 0, s->window), i);
                    if (use_l)
                        lse_l[rows + i] = KS(masked_softmax_row)(pl + (size_t)i * T, T,
                                                                 dsk_attn_first(i, pb[i], 1, s->window), i);
                }
                if (!hybrid) {
                    KS(gemm_ld)(0, 0, T, hd, T, 1, pg, T, V, ks, 0, out + head, qs);
                    continue;
                }
                KS(gemm_ld)(0, 0, T, hd, T, 1, pg, T, V, ks, 0, out_g + head, qs);
                KS(gemm_ld)(0, 0, T, hd, T, 1, pl, T, V, ks, 0, out_l + head, qs);
                for (int i = 0; i < T; i++)
                    for (int d = 0; d < hd; d++) {
                        size_t at = head + (size_t)i * qs + d;
                        out[at] = a * out_g[at] + (1 - a) * out_l[at];
                    }
            }
        if (hybrid)
            free(pl);
        free(pg);
    }
}

/* The probabilities come back from the scores and the saved log-sum-exp
 * (one more T x T product per head than keeping them); the rest is the
 * softmax's backward on whole rows.  out, out_g and out_l are not read
 * here: the row sums dO . O_part they would give are taken as P . dP. */
void KS(attention_bwd)(real *dq, real *dk, real *dv, real *dalpha, const real *dout, const real *out, const real *q,
                       const real *k, const real *v, const real *lse_g, const real *lse_l, const real *out_g,
                       const real *out_l, const int32_t *pos, const real *alpha, const dsk_attn_shape *s)
{
    (void)out;
    (void)out_g;
    (void)out_l;
    int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, group = H / KV;
    int qs = H * hd, ks = KV * hd;
    real scale = 1 / sqrt((real)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL, hybrid = use_g && use_l;
    real a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
    /* One task per (row, kv head) owns its slices of dk and dv: the query
     * heads of a group add into them in order, without races. */
    /* d alpha sums over every (query, key) of the batch: in double, so
     * the float build is an accurate reference for the GPU's. */
    double *dalpha_part = calloc((size_t)B * KV, sizeof *dalpha_part);
#pragma omp parallel
    {
        size_t TT = (size_t)T * T;
        real *S = malloc(TT * sizeof *S), *dP = malloc(TT * sizeof *dP), *dS = malloc(TT * sizeof *dS);
        real *pg = use_g ? malloc(TT * sizeof *pg) : NULL, *pl = use_l ? malloc(TT * sizeof *pl) : NULL;
        real *Pc = hybrid ? malloc(TT * sizeof *Pc) : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kh = 0; kh < KV; kh++) {
                const real *K = k + (size_t)b * T * ks + (size_t)kh * hd;
                const real *V = v + (size_t)b * T * ks + (size_t)kh * hd;
                real *dK = dk + (size_t)b * T * ks + (size_t)kh * hd;
                real *dV = dv + (size_t)b * T * ks + (size_t)kh * hd;
                const int32_t *pb = pos + (size_t)b * T;
                for (int j = 0; j < T; j++)
                    for (int d = 0; d < hd; d++)
                        dK[(size_t)j * ks + d] = dV[(size_t)j * ks + d] = 0;
                double da = 0;
                for (int h = kh * group; h < (kh + 1) * group; h++) {
                    const real *Q = q + (size_t)b * T * qs + (size_t)h * hd;
                    const real *dO = dout + (size_t)b * T * qs + (size_t)h * hd;
                    real *dQ = dq + (size_t)b * T * qs + (size_t)h * hd;
                    size_t rows = ((size_t)b * H + h) * T;
                    KS(gemm_ld)(0, 1, T, T, hd, scale, Q, qs, K, ks, 0, S, T);
                    for (int i = 0; i < T; i++) {
                        if (use_g)
                            KS(softmax_row_from_lse)(pg + (size_t)i * T, S + (size_t)i * T, T,
                                                     dsk_attn_first(i, pb[i], 0, s->window), i, lse_g[rows + i]);
                        if (use_l)
                            KS(softmax_row_from_lse)(pl + (size_t)i * T, S + (size_t)i * T, T,
                                                     dsk_attn_first(i, pb[i], 1, s->window), i, lse_l[rows + i]);
                    }
                    /* dP = dO V^T: the gradient of the mixed probabilities. */
                    KS(gemm_ld)(0, 1, T, T, hd, 1, dO, qs, V, ks, 0, dP, T);
                    for (int i = 0; i < T; i++) {
                        real *dSi = dS + (size_t)i * T;
                        const real *dPi = dP + (size_t)i * T;
                        for (int j = 0; j < T; j++)
                            dSi[j] = 0;
                        for (int part = 0; part < 2; part++) {
                            if (part == 0 ? !use_g : !use_l)
                                continue;
                            const real *Pi = (part == 0 ? pg : pl) + (size_t)i * T;
                            real wgt = part == 0 ? a : 1 - a;
                            int first = dsk_attn_first(i, pb[i], part == 1, s->window);
                            /* dS = wgt P (dP - sum_j P dP), the softmax's backward. */
                            real rowdot = 0;
                            for (int j = first; j <= i; j++)
                                rowdot += Pi[j] * dPi[j];
                            for (int j = first; j <= i; j++)
                                dSi[j] += wgt * Pi[j] * (dPi[j] - rowdot);
                        }
                        if (hybrid) {
                            /* d out / d alpha = (P_global - P_local) V. */
                            const real *Pg = pg + (size_t)i * T, *Pl = pl + (size_t)i * T;
                            real *Pci = Pc + (size_t)i * T;
                            for (int j = 0; j <= i; j++) {
                                da += (Pg[j] - Pl[j]) * dPi[j];
                                Pci[j] = a * Pg[j] + (1 - a) * Pl[j];
                            }
                            for (int j = i + 1; j < T; j++)
                                Pci[j] = 0;
                        }
                    }
                    KS(gemm_ld)(0, 0, T, hd, T, scale, dS, T, K, ks, 0, dQ, qs);
                    KS(gemm_ld)(1, 0, T, hd, T, scale, dS, T, Q, qs, 1, dK, ks);
                    const real *P = hybrid ? Pc : use_g ? pg : pl;
                    KS(gemm_ld)(1, 0, T, hd, T, 1, P, T, dO, qs, 1, dV, ks);
                }
                dalpha_part[(size_t)b * KV + kh] = da;
            }
        free(S);
        free(dP);
        free(dS);
        free(pg);
        free(pl);
        free(Pc);
    }
    if (hybrid && dalpha) {
        double da = 0;
        for (size_t i = 0; i < (size_t)B * KV; i++)
            da += dalpha_part[i];
        dalpha[0] += (real)da;
    }
    free(dalpha_part);
}

/* All rows and heads of a decoding step in one parallel loop (a loop
 * per row would pay a fork and join for each). */
void KS(attention_decode)(real *out, const real *q, const real *k_cache, const real *v_cache, size_t seq_stride,
                          const int32_t *seq, const int32_t *pos, int n, const real *alpha, const dsk_attn_shape *s)
{
    int H = s->H, KV = s->KV, hd = s->hd, group = H / KV, max_keys = 0;
    size_t ks = (size_t)KV * hd;
    real scale = 1 / sqrt((real)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    real a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
    double work = 0;   /* multiply-adds: a dot product and a weighted sum per key and head */
    for (int r = 0; r < n; r++) {
        max_keys = pos[r] + 1 > max_keys ? pos[r] + 1 : max_keys;
        work += 2.0 * (pos[r] + 1) * H * hd * (use_g + use_l);
    }
#pragma omp parallel PAR_IF(work)
    {
        real *p = malloc((size_t)max_keys * sizeof *p);
        /* the head's output summed here, where no store to it can alias the cache */
        real *restrict acc = malloc((size_t)hd * sizeof *acc);
#pragma omp for collapse(2) schedule(static)
        for (int r = 0; r < n; r++) {
            for (int h = 0; h < H; h++) {
                int i = pos[r];
                const real *qh = q + ((size_t)r * H + h) * hd;
                const real *kb = k_cache + (size_t)seq[r] * seq_stride + (size_t)(h / group) * hd;
                const real *vb = v_cache + (size_t)seq[r] * seq_stride + (size_t)(h / group) * hd;
                for (int d = 0; d < hd; d++)
                    acc[d] = 0;
                for (int part = 0; part < 2; part++) {
                    if (part == 0 ? !use_g : !use_l)
                        continue;
                    int first = dsk_attn_first(i, i, part == 1, s->window);
                    real wgt = part == 0 ? a : 1 - a;
                    KS(attn_row)(p, qh, kb, ks, first, i, hd, scale);
                    for (int j = first; j <= i; j++) {
                        real w = wgt * p[j];
                        const real *vj = vb + (size_t)j * ks;
                        for (int d = 0; d < hd; d++)
                            acc[d] += w * vj[d];
                    }
                }
                memcpy(out + ((size_t)r * H + h) * hd, acc, (size_t)hd * sizeof *acc);
            }
        }
        free(p);
        free(acc);
    }
}

/* ---- feed-forward, loss, optimizer ------------------------------------------------------------ */

void KS(swiglu_fwd)(real *out, const real *g, const real *u, size_t n)
{
#pragma omp parallel for schedule(static) PAR_IF(n * 8)
    for (size_t i = 0; i < n; i++)
        out[i] = g[i] / (1 + KERNEL_EXP(-g[i])) * u[i];
}

void KS(swiglu_bwd)(real *dg, real *du, const real *dout, const real *g, const real *u, size_t n)
{
#pragma omp parallel for schedule(static) PAR_IF(n * 8)
    for (size_t i = 0; i < n; i++) {
        real sig = 1 / (1 + KERNEL_EXP(-g[i]));
        real silu = g[i] * sig;
        du[i] = dout[i] * silu;
        dg[i] = dout[i] * u[i] * sig * (1 + g[i] * (1 - sig));
    }
}

void KS(softmax_xent)(real *loss, real *logits, const int32_t *targets, const real *weight, int n, int V,
                      real grad_scale)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        real *z = logits + (size_t)i * V;
        int32_t t = targets[i];
        real w = t < 0 || t >= V ? 0 : weight ? weight[i] : 1;
        real zt = w != 0 ? z[t] : 0;
        real mx = -INFINITY;
        for (int c = 0; c < V; c++)
            mx = z[c] > mx ? z[c] : mx;
        /* With a gradient to write, keep exp(z - max) in place: one exp per logit. */
        real sum = 0;
        if (grad_scale != 0) {
            for (int c = 0; c < V; c++) {
                z[c] = KERNEL_EXP(z[c] - mx);
                sum += z[c];
            }
        } else {
            for (int c = 0; c < V; c++)
                sum += KERNEL_EXP(z[c] - mx);
        }
        loss[i] = w == 0 ? 0 : w * (mx + log(sum) - zt);
        if (grad_scale != 0) {
            real k = grad_scale * w / sum;
            for (int c = 0; c < V; c++)
                z[c] *= k;
            if (w != 0)
                z[t] -= grad_scale * w;
        }
    }
}

/* ---- mixture of experts ------------------------------------------------------------------ */

void KS(moe_route)(real *probs, int32_t *sel, real *gate, const real *logits, const real *bias, int n, int E, int k,
                   int router)
{
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * E * 8)
    for (int t = 0; t < n; t++) {
        const real *z = logits + (size_t)t * E;
        real *p = probs + (size_t)t * E;
        if (router == DSK_ROUTER_SOFTMAX) {
            real mx = -INFINITY, sum = 0;
            for (int e = 0; e < E; e++)
                mx = z[e] > mx ? z[e] : mx;
            for (int e = 0; e < E; e++)
                sum += p[e] = exp(z[e] - mx);
            for (int e = 0; e < E; e++)
                p[e] /= sum;
        } else {
            for (int e = 0; e < E; e++)
                p[e] = 1 / (1 + exp(-z[e]));
        }
        /* Top k by selection score, a partial selection sort (k is small). */
        int32_t *st = sel + (size_t)t * k;
        for (int s = 0; s < k; s++) {
            int best = -1;
            real best_score = 0;
            for (int e = 0; e < E; e++) {
                int taken = 0;
                for (int r = 0; r < s; r++)
                    taken |= st[r] == e;
                real score = p[e] + (bias ? bias[e] : 0);
                if (!taken && (best < 0 || score > best_score)) {
                    best = e;
                    best_score = score;
                }
            }
            st[s] = best;
        }
        real *g = gate + (size_t)t * k, norm = 0;
        for (int s = 0; s < k; s++)
            norm += g[s] = p[st[s]];
        if (router == DSK_ROUTER_SIGMOID)
            for (int s = 0; s < k; s++)
                g[s] /= norm;
    }
}

void KS(moe_gather)(real *xp, const real *x, const int32_t *row_token, int rows, int d)
{
#pragma omp parallel for schedule(static) PAR_IF((size_t)rows * d)
    for (int r = 0; r < rows; r++)
        memcpy(xp + (size_t)r * d, x + (size_t)row_token[r] * d, (size_t)d * sizeof *xp);
}

void KS(moe_combine)(real *out, const real *yp, const int32_t *slot_row, const real *gate, int n, int k, int d)
{
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * k * d)
    for (int t = 0; t < n; t++)
        for (int s = 0; s < k; s++) {
            int32_t row = slot_row[(size_t)t * k + s];
            if (row < 0)
                continue;
            real g = gate[(size_t)t * k + s];
            const real *y = yp + (size_t)row * d;
            real *o = out + (size_t)t * d;
            for (int c = 0; c < d; c++)
                o[c] += g * y[c];
        }
}

void KS(moe_combine_bwd)(real *dyp, real *dgate, const real *dout, const real *yp, const int32_t *slot_row,
                         const real *gate, int n, int k, int d)
{
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++)
        for (int s = 0; s < k; s++) {
            int32_t row = slot_row[(size_t)t * k + s];
            if (row < 0) {
                dgate[(size_t)t * k + s] = 0;
                continue;
            }
            real g = gate[(size_t)t * k + s], dot = 0;
            const real *y = yp + (size_t)row * d, *dO = dout + (size_t)t * d;
            real *dy = dyp + (size_t)row * d;
            for (int c = 0; c < d; c++) {
                dy[c] = g * dO[c];
                dot += dO[c] * y[c];
            }
            dgate[(size_t)t * k + s] = dot;
        }
}

void KS(moe_scatter_add)(real *dx, const real *dxp, const int32_t *slot_row, int n, int k, int d)
{
    /* A gather per token: each dx row has one writer, slots add in order. */
#pragma omp parallel for schedule(static) PAR_IF((size_t)n * k * d)
    for (int t = 0; t < n; t++)
        for (int s = 0; s < k; s++) {
            int32_t row = slot_row[(size_t)t * k + s];
            if (row < 0)
                continue;
            const real *src = dxp + (size_t)row * d;
            real *dst = dx + (size_t)t * d;
            for (int c = 0; c < d; c++)
                dst[c] += src[c];
        }
}

#define ROUTE_REAL real
#define ROUTE_ROW KS(route_bwd_row)
#define ROUTE_QUALIFIER static inline
#include "ops/route_bwd_row.h"
#undef ROUTE_REAL
#undef ROUTE_ROW
#undef ROUTE_QUALIFIER

void KS(moe_route_bwd)(real *dlogits, const real *dgate, const real *probs, const int32_t *sel, const real *gate,
                       const real *logits, const real *aux_w, int rows_per, real z_coef, int n, int E, int k,
                       int router)
{
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++)
        KS(route_bwd_row)(dlogits + (size_t)t * E, dgate + (size_t)t * k, probs + (size_t)t * E, sel + (size_t)t * k,
                          gate + (size_t)t * k, aux_w ? aux_w + (size_t)(t / rows_per) * E : NULL,
                          logits + (size_t)t * E, z_coef, E, k, router);
}

void KS(adamw)(real *param, const real *grad, real grad_scale, real *m, real *v, size_t n, real lr, real beta1,
               real beta2, real eps, real weight_decay, real c1, real c2)
{
    /* PyTorch's AdamW, operation for operation, so the reference test can
     * compare weights after several steps. */
    real step_size = lr / c1, c2_sqrt = sqrt(c2), decay = 1 - lr * weight_decay;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real g = grad[i] * grad_scale;
        param[i] *= decay;
        m[i] += (g - m[i]) * (1 - beta1);
        v[i] = v[i] * beta2 + (1 - beta2) * g * g;
        real denom = sqrt(v[i]) / c2_sqrt + eps;
        param[i] -= step_size * (m[i] / denom);
    }
}
