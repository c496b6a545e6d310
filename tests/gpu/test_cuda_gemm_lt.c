/* The cuda backend's products through cuBLASLt (cuda/gemm_lt.cu) and
 * its gemm_grouped (cuda/gemm_grouped.cu) against the cpu backend
 * (tests/gpu/run.sh runs it, after test_cuda_gemm_dtype).
 *
 * Conventions as test_cuda_gemm_dtype.c: the same random bytes on both
 * backends, outputs with beta 0 first filled with 0xff bytes (NaN),
 * errors as max |dev - cpu| / max |cpu|, the fp32 tolerance for every
 * dtype (bf16 / fp16 products of the rounded operands are exact in
 * float32; only the order of the sums differs).  Checked:
 *   - gemm over many shapes: the four transpose pairs, odd sizes from 1
 *     to 300, M = 1 (a matrix-vector product), a small output over a
 *     long sum (split-K) and 1024 x 4096 x 1024, in fp32, bf16 and fp16,
 *     each run twice: the same bits both times (one plan per shape);
 *   - the plan cache: a shape, the same again, another, the first again
 *     (the same bits), the first on operands only 4-byte aligned (its own
 *     plan), and the first again after 1500 other shapes have gone
 *     through the cache (a plan made again is the same plan);
 *   - gemm_grouped with 1 to 16 groups, laid out as a MoE layer's
 *     (experts' blocks one after another in one buffer, so at odd
 *     offsets): uneven rows per group with zeros, the forward (A Bᵀ), the
 *     input gradient (A B) and the weight gradient (Aᵀ B, K = the
 *     group's rows, accumulating with alpha = beta = 1), groups of any
 *     shape with K = 0 among them; an empty group's C must be left as it
 *     was, bit for bit; twice, the same bits;
 *   - ragged products (the experts' rows, new each step) share the
 *     plans of their shapes rounded up: 16 groups of random rows over
 *     four steps, and no more than four new plans in the last two;
 *   - on a device only: the same products with DSK_CUDA_GEMM=cublas (the
 *     old path) against cuBLASLt's, and DSK_CUDA_GEMM=bogus refused;
 *     gemm_grouped on 4 side streams (DSK_CUDA_GROUPED_STREAMS=4) with
 *     one stream's bits, and bad values of it refused.
 * DSK_CUDA_TF32=1 in the environment loosens the fp32 tolerance to 5e-3.
 *
 *   test_cuda_gemm_lt         cpu against cuda; without a CUDA device:
 *                             checks that "cuda" fails as documented,
 *                             runs the harness cpu against cpu, says the
 *                             GPU half was skipped and exits 0
 *   test_cuda_gemm_lt --cpu   the harness cpu against cpu only
 *   --quick                   without the 1024 x 4096 x 1024 products
 *                             (they test the GPU's algorithms, not the
 *                             call), for the CPU emulation of cuda/
 *                             (tests/gpu/emu/run.sh)
 *
 * Exit status: 0 when every check passed, 1 otherwise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/rng.h"
#include "ops/backend.h"
#include "ops/half.h"

#include "compare.h"
#include "cuda_with.h"

#include "../../cuda/cuda_backend.h"
/* Weak: a build without nvcc links this program without the cuda backend. */
#pragma weak dsk_cuda_lt_plans_made
#pragma weak dsk_cuda_grouped_side_calls

static dsk_backend *REF, *DEV;
static dsk_rng RNG;
static int failures, checks;
static double tol_fp32 = 2e-5;
static long changed_bits[3];   /* per dtype: elements that differed on a second run */
static long runs_twice[3];     /* per dtype: products run twice */

static void record(const char *what, double err, double tol)
{
    int ok = err <= tol;   /* NaN fails */
    checks++;
    failures += !ok;
    printf("  %-4s %-60s err %9.2e  tol %7.0e\n", ok ? "ok" : "FAIL", what, err, tol);
}

/* Values in +-[0.1, 1]: never zero. */
static float *rnd(size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(0.1 + 0.9 * dsk_rng_uniform(&RNG));
        h[i] = dsk_rng_uniform(&RNG) < 0.5 ? -v : v;
    }
    return h;
}

/* n floats of 0xff bytes (NaN). */
static float *poisoned(size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    memset(h, 0xff, n * sizeof *h);
    return h;
}

static int irand(int lo, int hi) { return lo + (int)(dsk_rng_uniform(&RNG) * (hi - lo + 1) * 0.999999); }

/* host[0..n) at dev + off floats (off 1: an address only 4-byte aligned). */
static float *on(dsk_backend *be, const float *host, size_t n, size_t off)
{
    float *d = be->alloc(be, (n + off) * sizeof *d);
    if (n)
        be->upload(be, d + off, host, n * sizeof *d);
    return d;
}

static long differing(const float *x, const float *y, size_t n)
{
    long d = 0;
    for (size_t i = 0; i < n; i++)
        d += memcmp(&x[i], &y[i], sizeof *x) != 0;
    return d;
}

/* Sums of K terms: the tolerance grows with sqrt(K) past 1024. */
static double tol_for(int K) { return K > 1024 ? tol_fp32 * sqrt(K / 1024.0) : tol_fp32; }

/* C = alpha op(A) op(B) + beta C on a backend in a dtype, every matrix
 * `off` floats into its allocation; C starts as c (beta != 0) or NaN. */
static float *product(dsk_backend *be, int dtype, int ta, int tb, int M, int N, int K, float alpha, const float *a,
                      const float *b, float beta, const float *c, size_t off)
{
    size_t nc = (size_t)M * N;
    float *init = beta != 0 ? NULL : poisoned(nc);
    float *A = on(be, a, (size_t)M * K, off), *B = on(be, b, (size_t)K * N, off);
    float *C = on(be, beta != 0 ? c : init, nc, off);
    be->gemm_dtype = dtype;
    be->gemm(be, ta, tb, M, N, K, alpha, A + off, B + off, beta, C + off);
    be->gemm_dtype = DSK_DTYPE_FP32;
    float *out = get(be, C + off, nc);
    be->free(be, A), be->free(be, B), be->free(be, C);
    free(init);
    return out;
}

/* One product on both backends, the device's twice; records the error. */
static void compare(int dtype, int ta, int tb, int M, int N, int K, float alpha, float beta, size_t off)
{
    float *a = rnd((size_t)M * K), *b = rnd((size_t)K * N), *c = rnd((size_t)M * N);
    float *want = product(REF, dtype, ta, tb, M, N, K, alpha, a, b, beta, c, off);
    float *got = product(DEV, dtype, ta, tb, M, N, K, alpha, a, b, beta, c, off);
    float *again = product(DEV, dtype, ta, tb, M, N, K, alpha, a, b, beta, c, off);
    char what[96];
    snprintf(what, sizeof what, "%s %dx%dx%d %c%c beta %g%s", dsk_dtype_name(dtype), M, N, K, ta ? 'T' : 'N',
             tb ? 'T' : 'N', beta, off ? " (4-byte aligned)" : "");
    record(what, rel_err(got, want, (size_t)M * N), tol_for(K));
    changed_bits[dtype] += differing(got, again, (size_t)M * N);
    runs_twice[dtype]++;
    free(a), free(b), free(c), free(want), free(got), free(again);
}

static int quick;   /* --quick */

static void test_shapes(void)
{
    static const int shapes[][3] = {
        {1, 1, 1},    {1, 300, 257}, {1, 4096, 1024}, {3, 5, 7},      {7, 1, 13},      {17, 31, 29},
        {100, 1, 64}, {63, 65, 127}, {129, 257, 300}, {255, 299, 1},  {300, 300, 300}, {32, 48, 8192},
    };
    for (int dt = DSK_DTYPE_FP32; dt <= DSK_DTYPE_FP16; dt++) {
        for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
            for (int t = 0; t < 4; t++) {
                int ta = t >> 1, tb = t & 1, odd = (t + (int)si) & 1;
                compare(dt, ta, tb, shapes[si][0], shapes[si][1], shapes[si][2], odd ? 0.75f : 1.0f,
                        odd ? 0.5f : 0.0f, 0);
            }
        /* Big, as a 125m model's layers: the forward, input and weight gradients. */
        if (quick)
            continue;
        compare(dt, 0, 1, 1024, 4096, 1024, 1, 0, 0);
        compare(dt, 0, 0, 1024, 4096, 1024, 1, 0, 0);
        compare(dt, 1, 0, 1024, 4096, 1024, 1, 1, 0);
    }
}

/* The plan cache: hits, misses and eviction give the same results. */
static void test_cache(void)
{
    int M = 45, N = 77, K = 33;
    float *a = rnd((size_t)M * K), *b = rnd((size_t)K * N), *b2 = rnd((size_t)K * N);
    float *want = product(REF, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    float *first = product(DEV, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    record("cache: a shape", rel_err(first, want, (size_t)M * N), tol_fp32);
    float *got = product(DEV, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    record("cache: the same shape again, the same bits (differing)", (double)differing(got, first, (size_t)M * N),
           0);
    free(got);
    /* Another shape: one row more. */
    float *a2 = rnd((size_t)(M + 1) * K);
    float *want2 = product(REF, DSK_DTYPE_FP32, 0, 1, M + 1, N, K, 1, a2, b2, 0, NULL, 0);
    got = product(DEV, DSK_DTYPE_FP32, 0, 1, M + 1, N, K, 1, a2, b2, 0, NULL, 0);
    record("cache: another shape", rel_err(got, want2, (size_t)(M + 1) * N), tol_fp32);
    free(got), free(want2), free(a2);
    got = product(DEV, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    record("cache: the first shape again, the same bits (differing)", (double)differing(got, first, (size_t)M * N),
           0);
    free(got);
    got = product(DEV, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 1);
    record("cache: the first shape, operands 4-byte aligned", rel_err(got, want, (size_t)M * N), tol_fp32);
    free(got);
    got = product(DEV, DSK_DTYPE_BF16, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    free(got);
    got = product(DEV, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    record("cache: fp32 after bf16, the same bits (differing)", (double)differing(got, first, (size_t)M * N), 0);
    free(got);

    /* 1500 other shapes (more than the cache holds), checked together. */
    int n = 8, rows = 1500;
    float *x = rnd((size_t)rows * n), *w = rnd((size_t)n * n);
    float *dx = DEV->alloc(DEV, (size_t)rows * n * sizeof *dx), *dw = DEV->alloc(DEV, (size_t)n * n * sizeof *dw);
    float *dc = DEV->alloc(DEV, (size_t)rows * n * sizeof *dc);
    DEV->upload(DEV, dx, x, (size_t)rows * n * sizeof *x);
    DEV->upload(DEV, dw, w, (size_t)n * n * sizeof *w);
    double worst = 0;
    float *rx = on(REF, x, (size_t)rows * n, 0), *rw = on(REF, w, (size_t)n * n, 0);
    float *rc = REF->alloc(REF, (size_t)rows * n * sizeof *rc);
    for (int m = 1; m <= rows; m++) {
        DEV->gemm(DEV, 0, 0, m, n, n, 1, dx, dw, 0, dc);
        REF->gemm(REF, 0, 0, m, n, n, 1, rx, rw, 0, rc);
        if (m % 100 == 0 || m == rows) {
            float *g = get(DEV, dc, (size_t)m * n), *r = get(REF, rc, (size_t)m * n);
            double e = rel_err(g, r, (size_t)m * n);
            worst = isnan(e) || e > worst ? e : worst;
            free(g), free(r);
        }
    }
    record("cache: 1500 shapes m x 8 x 8 (every 100th checked)", worst, tol_fp32);
    DEV->free(DEV, dx), DEV->free(DEV, dw), DEV->free(DEV, dc);
    REF->free(REF, rx), REF->free(REF, rw), REF->free(REF, rc);
    free(x), free(w);
    got = product(DEV, DSK_DTYPE_FP32, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
    record("cache: the first shape after eviction, the same bits (differing)",
           (double)differing(got, first, (size_t)M * N), 0);
    free(got);
    free(a), free(b), free(b2), free(want), free(first);
}

/* ---- gemm_grouped ---- */

typedef struct groups {
    int count;
    int M[16], N[16], K[16];
    size_t ao[17], bo[17], co[17];   /* each group's offset in the packed A, B and C */
} groups;

static void pack(groups *g)
{
    g->ao[0] = g->bo[0] = g->co[0] = 0;
    for (int i = 0; i < g->count; i++) {
        g->ao[i + 1] = g->ao[i] + (size_t)g->M[i] * g->K[i];
        g->bo[i + 1] = g->bo[i] + (size_t)g->K[i] * g->N[i];
        g->co[i + 1] = g->co[i] + (size_t)g->M[i] * g->N[i];
    }
}

/* One gemm_grouped on a backend, every matrix packed one after another
 * in one buffer per operand (so at odd offsets); the packed C after it. */
static float *grouped(dsk_backend *be, int dtype, int ta, int tb, const groups *g, float alpha, const float *a,
                      const float *b, float beta, const float *c)
{
    int n = g->count;
    float *A = on(be, a, g->ao[n], 0), *B = on(be, b, g->bo[n], 0), *C = on(be, c, g->co[n], 0);
    const float *Ap[16], *Bp[16];
    float *Cp[16];
    for (int i = 0; i < n; i++) {
        Ap[i] = A + g->ao[i];
        Bp[i] = B + g->bo[i];
        Cp[i] = C + g->co[i];
    }
    be->gemm_dtype = dtype;
    be->gemm_grouped(be, ta, tb, n, g->M, g->N, g->K, alpha, Ap, Bp, beta, Cp);
    be->gemm_dtype = DSK_DTYPE_FP32;
    float *out = get(be, C, g->co[n]);
    be->free(be, A), be->free(be, B), be->free(be, C);
    return out;
}

static void compare_grouped(const char *kind, int dtype, int ta, int tb, const groups *g, float alpha, float beta)
{
    int n = g->count;
    float *a = rnd(g->ao[n]), *b = rnd(g->bo[n]);
    float *c = beta != 0 ? rnd(g->co[n]) : poisoned(g->co[n]);
    float *want = grouped(REF, dtype, ta, tb, g, alpha, a, b, beta, c);
    float *got = grouped(DEV, dtype, ta, tb, g, alpha, a, b, beta, c);
    float *again = grouped(DEV, dtype, ta, tb, g, alpha, a, b, beta, c);
    double worst = 0;
    long untouched = 0;   /* empty groups' elements that changed, on either backend */
    int maxK = 1;
    for (int i = 0; i < n; i++) {
        size_t at = g->co[i], len = g->co[i + 1] - at;
        if (g->M[i] > 0 && g->N[i] > 0 && g->K[i] > 0) {
            double e = rel_err(got + at, want + at, len);
            worst = isnan(e) || e > worst ? e : worst;
            maxK = g->K[i] > maxK ? g->K[i] : maxK;
        } else {
            untouched += differing(got + at, c + at, len) + differing(want + at, c + at, len);
        }
    }
    char what[96], shapes[40] = "";
    int empty = 0;
    for (int i = 0; i < n; i++)
        empty += !(g->M[i] > 0 && g->N[i] > 0 && g->K[i] > 0);
    snprintf(shapes, sizeof shapes, "%d groups, %d empty", n, empty);
    snprintf(what, sizeof what, "grouped %s %s %c%c: %s", dsk_dtype_name(dtype), kind, ta ? 'T' : 'N',
             tb ? 'T' : 'N', shapes);
    record(what, worst, tol_for(maxK));
    if (untouched) {
        snprintf(what, sizeof what, "grouped %s %s: empty groups' C left as it was (changed)",
                 dsk_dtype_name(dtype), kind);
        record(what, (double)untouched, 0);
    }
    changed_bits[dtype] += differing(got, again, g->co[n]);
    runs_twice[dtype]++;
    free(a), free(b), free(c), free(want), free(got), free(again);
}

static void test_grouped(void)
{
    for (int dt = DSK_DTYPE_FP32; dt <= DSK_DTYPE_FP16; dt++)
        for (int count = 1; count <= 16; count++) {
            if (dt != DSK_DTYPE_FP32 && count != 1 && count != 3 && count != 8 && count != 16)
                continue;
            /* A MoE layer: d = 37 (odd: the experts' blocks of rows start
             * anywhere), 40 hidden per expert, uneven rows, some none. */
            int d = 37, f = 40;
            int rows[16];
            for (int i = 0; i < count; i++)
                rows[i] = i > 0 && dsk_rng_uniform(&RNG) < 0.2 ? 0 : irand(1, 100);
            groups g = {.count = count};
            /* The forward: h = x Wᵀ, x [rows, d], W [f, d]. */
            for (int i = 0; i < count; i++)
                g.M[i] = rows[i], g.N[i] = f, g.K[i] = d;
            pack(&g);
            compare_grouped("forward", dt, 0, 1, &g, 1, 0);
            /* The input gradient: dx = dh W. */
            for (int i = 0; i < count; i++)
                g.M[i] = rows[i], g.N[i] = d, g.K[i] = f;
            pack(&g);
            compare_grouped("input gradient", dt, 0, 0, &g, 1, 0);
            /* The weight gradient: dW += dhᵀ x, summed over the group's rows. */
            for (int i = 0; i < count; i++)
                g.M[i] = f, g.N[i] = d, g.K[i] = rows[i];
            pack(&g);
            compare_grouped("weight gradient", dt, 1, 0, &g, 1, 1);
            /* Any shapes, K = 0 among them. */
            for (int i = 0; i < count; i++) {
                g.M[i] = irand(1, 70);
                g.N[i] = irand(1, 70);
                g.K[i] = dsk_rng_uniform(&RNG) < 0.15 ? 0 : irand(1, 90);
            }
            pack(&g);
            compare_grouped("any shapes", dt, 1, 1, &g, 0.75f, 0.5f);
        }
    /* Nothing to do: every group empty one way or another. */
    groups g = {.count = 4, .M = {0, 5, 6, 0}, .N = {7, 0, 8, 0}, .K = {9, 10, 0, 0}};
    pack(&g);
    compare_grouped("all empty", DSK_DTYPE_FP32, 0, 1, &g, 1, 0.5f);
}

/* A MoE layer's experts over steps: 16 groups of 1500 to 2500 rows, new
 * counts each time, in bf16 (the loop over cuBLASLt's products).  Their
 * rows round up to four quarter-octave sizes (1536, 1792, 2048, 2560), so
 * after the first steps no product needs a plan of its own. */
static void test_ragged_plans(void)
{
    if (!dsk_cuda_lt_plans_made || dsk_cuda_lt_plans_made(DEV) < 0)
        return;
    long before = 0;
    for (int step = 0; step < 4; step++) {
        if (step == 2)
            before = dsk_cuda_lt_plans_made(DEV);
        groups g = {.count = 16};
        for (int i = 0; i < 16; i++)
            g.M[i] = irand(1500, 2500), g.N[i] = 24, g.K[i] = 16;
        pack(&g);
        compare_grouped("ragged rows", DSK_DTYPE_BF16, 0, 1, &g, 1, 0);
    }
    long made = dsk_cuda_lt_plans_made(DEV) - before;
    char what[96];
    snprintf(what, sizeof what, "ragged products: plans made in steps 3 and 4 (%ld, at most 4)", made);
    record(what, made <= 4 ? 0 : (double)made, 0);
}

/* ---- on a device: the old path and the environment ---- */

static void test_env(void)
{
    dsk_err err = {0};
    dsk_backend *be = cuda_with("DSK_CUDA_GEMM", "bogus", &err);
    record("DSK_CUDA_GEMM=bogus refused with 64 (exit code if not)", be ? 1 : err.code == EX_USAGE ? 0 : err.code,
           0);
    if (be)
        be->destroy(be);
    memset(&err, 0, sizeof err);
    be = cuda_with("DSK_CUDA_GEMM", "cublas", &err);
    if (!be) {
        record("DSK_CUDA_GEMM=cublas: a backend", 1, 0);
        return;
    }
    /* cuBLAS against cuBLASLt, both against the cpu. */
    dsk_backend *lt = DEV;
    static const int shapes[][3] = {{1, 300, 257}, {63, 65, 127}, {256, 1024, 512}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int dt = DSK_DTYPE_FP32; dt <= DSK_DTYPE_FP16; dt++) {
            int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            float *a = rnd((size_t)M * K), *b = rnd((size_t)K * N);
            float *old = product(be, dt, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
            float *got = product(lt, dt, 0, 1, M, N, K, 1, a, b, 0, NULL, 0);
            char what[96];
            snprintf(what, sizeof what, "cuBLASLt against cuBLAS %s %dx%dx%d NT", dsk_dtype_name(dt), M, N, K);
            record(what, rel_err(got, old, (size_t)M * N), tol_fp32);
            free(a), free(b), free(old), free(got);
        }
    DEV = be;   /* gemm_grouped and a few products on the old path against the cpu */
    compare(DSK_DTYPE_FP32, 1, 0, 129, 257, 300, 1, 1, 1);
    compare(DSK_DTYPE_BF16, 0, 1, 129, 257, 300, 1, 0, 0);
    groups g = {.count = 5, .M = {3, 0, 40, 17, 1}, .N = {33, 33, 33, 33, 33}, .K = {21, 21, 21, 21, 21}};
    pack(&g);
    compare_grouped("on cuBLAS", DSK_DTYPE_FP32, 0, 1, &g, 1, 0);
    DEV = lt;
    be->destroy(be);
}

/* DSK_CUDA_GROUPED_STREAMS: 0, 9 and "two" refused; with 4 side streams a
 * MoE layer's 16 expert products (forward, and weight gradient
 * accumulating) in bf16 and fp16 give the one stream's bits, and did run
 * on the side streams (d 48, 40 hidden: every block's 16-bit copy inside
 * the layer's at a multiple of 8 values, as at a real model's widths,
 * where gemm serves it from that copy). */
static void test_side_streams(void)
{
    static const char *const bad[] = {"0", "9", "two"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dsk_err err = {0};
        dsk_backend *be = cuda_with("DSK_CUDA_GROUPED_STREAMS", bad[i], &err);
        char what[96];
        snprintf(what, sizeof what, "DSK_CUDA_GROUPED_STREAMS=%s refused with 64 (exit code if not)", bad[i]);
        record(what, be ? 1 : err.code == EX_USAGE ? 0 : err.code, 0);
        if (be)
            be->destroy(be);
    }
    dsk_err err = {0};
    dsk_backend *side = cuda_with("DSK_CUDA_GROUPED_STREAMS", "4", &err);
    if (!side) {
        record("DSK_CUDA_GROUPED_STREAMS=4: a backend", 1, 0);
        return;
    }
    int calls = 0;
    for (int dt = DSK_DTYPE_BF16; dt <= DSK_DTYPE_FP16; dt++)
        for (int kind = 0; kind < 2; kind++) {
            groups g = {.count = 16};
            for (int i = 0; i < 16; i++) {
                /* (an expert without rows only in the weight gradient: in the
                 * forward its weight would break the run of B's blocks, which
                 * a model's registered weights' copy serves instead) */
                int rows = kind && i % 5 == 3 ? 0 : irand(1, 100);
                g.M[i] = kind ? 40 : rows, g.N[i] = kind ? 48 : 40, g.K[i] = kind ? rows : 48;
            }
            pack(&g);
            float *a = rnd(g.ao[16]), *b = rnd(g.bo[16]), *c = rnd(g.co[16]);
            float beta = kind ? 1 : 0;
            float *one = grouped(DEV, dt, kind, !kind, &g, 1, a, b, beta, c);
            float *four = grouped(side, dt, kind, !kind, &g, 1, a, b, beta, c);
            calls++;
            char what[96];
            snprintf(what, sizeof what, "grouped %s %s on 4 side streams: elements differing from one stream",
                     dsk_dtype_name(dt), kind ? "weight gradient" : "forward");
            record(what, (double)differing(four, one, g.co[16]), 0);
            free(a), free(b), free(c), free(one), free(four);
        }
    long ran = dsk_cuda_grouped_side_calls(side);
    char what[96];
    snprintf(what, sizeof what, "grouped products on side streams: %ld calls (want %d)", ran, calls);
    record(what, ran == calls ? 0 : 1, 0);
    side->destroy(side);
}

static void run_all(int gpu)
{
    test_shapes();
    test_cache();
    test_grouped();
    test_ragged_plans();
    if (gpu) {
        test_env();
        test_side_streams();
    }
    for (int dt = DSK_DTYPE_FP32; dt <= DSK_DTYPE_FP16; dt++) {
        char what[96];
        snprintf(what, sizeof what, "%s: %ld products run twice, elements differing", dsk_dtype_name(dt),
                 runs_twice[dt]);
        record(what, (double)changed_bits[dt], 0);
    }
    printf("%d checks, %d failed\n", checks, failures);
}

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    int cpu_only = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cpu")) {
            cpu_only = 1;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: %s [--cpu] [--quick]\n", argv[0]);
            return 64;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    dsk_rng_seed(&RNG, 20240613);
    dsk_err err = {0};
    REF = dsk_backend_new("cpu", 0, &err);
    if (!REF)
        dsk_die_err(&err);
    dsk_backend *cuda = cpu_only ? NULL : dsk_backend_new("cuda", 0, &err);
    if (!cuda) {
        if (!cpu_only) {
            printf("# cuda backend: %s (exit code %d)\n", err.msg, err.code);
            int documented = err.code == EX_UNAVAILABLE &&
                             (!strncmp(err.msg, "no CUDA device: ", 16) || strstr(err.msg, "built without CUDA"));
            record("\"cuda\" without a device: 69, message", documented ? 0 : 1, 0);
        }
        printf("# harness self-check: cpu against cpu (gemm, gemm_grouped)\n");
        DEV = dsk_backend_new("cpu", 0, &err);
        run_all(0);
        if (!cpu_only)
            printf("GPU half skipped: no CUDA device\n");
    } else {
        DEV = cuda;
        const char *tf32 = getenv("DSK_CUDA_TF32");
        if (tf32 && *tf32 == '1')
            tol_fp32 = 5e-3;
        printf("# cpu (%d threads) against %s: gemm through cuBLASLt, gemm_grouped\n", REF->threads, DEV->name);
        run_all(1);
    }
    REF->destroy(REF);
    DEV->destroy(DEV);
    return failures ? 1 : 0;
}
