/* gemm in bf16 and fp16 (be->gemm_dtype): the cuda backend's tensor-core
 * products against the cpu backend's, which round the operands the same
 * way (round to nearest even, lib/ops/half.h) and sum in float32
 * (tests/gpu/run.sh runs it, after test_cuda_ops).
 *
 * Conventions as test_cuda_ops.c: the same random bytes on both
 * backends, outputs on the device under test first filled with 0xff
 * bytes (NaN), errors as max |dev - cpu| / max |cpu|.  Both sides
 * multiply exactly the same rounded numbers and every product is exact
 * in float32 (8 x 8 or 11 x 11 significant bits), so only the order of
 * the float32 sums differs: the fp32 tolerance applies.  Besides: the
 * rounded product must differ from the fp32 one by about the type's
 * precision (the device did round), an fp16 overflow (an operand past
 * 65504) must give inf on the same rows, and fp16 subnormal operands
 * must round alike.  A CPU-only check runs always: the cpu backend's
 * rounded product against a double-precision sum over the rounded
 * operands.
 *
 *   test_cuda_gemm_dtype         cpu against cuda; without a CUDA device:
 *                                checks that "cuda" fails as documented,
 *                                runs the harness cpu against cpu, says
 *                                the GPU half was skipped and exits 0
 *   test_cuda_gemm_dtype --cpu   the harness cpu against cpu only
 *
 * Exit status: 0 when every check passed, 1 otherwise. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "ops/backend.h"
#include "ops/half.h"

#include "../../cuda/cuda_backend.h"
/* Weak: a build without nvcc links this program without the cuda backend. */
#pragma weak dsk_cuda_half_stats

#include "harness.h"

static double worst[3];   /* per dtype: the worst product error against the cpu */

static void record(const char *what, double err, double tol, int below)
{
    /* below: err must be at most tol; else at least tol.  NaN fails either way. */
    int ok = gh_count(below ? err <= tol : err >= tol);
    printf("  %-4s %-52s err %9.2e  %s %7.0e\n", ok ? "ok" : "FAIL", what, err, below ? "tol" : "min", tol);
}

/* C = alpha op(A) op(B) + beta C on a backend in a dtype; the result on the host. */
static float *product(dsk_backend *be, int dtype, int ta, int tb, int M, int N, int K, float alpha, const float *a,
                      const float *b, float beta, const float *c, int poison)
{
    size_t nc = (size_t)M * N;
    float *A = gh_upload(be, a, (size_t)M * K * 4), *B = gh_upload(be, b, (size_t)K * N * 4);
    float *C = beta != 0 ? gh_upload(be, c, nc * 4) : poison ? gh_poisoned(be, nc * 4) : be->alloc(be, nc * 4);
    be->gemm_dtype = dtype;
    be->gemm(be, ta, tb, M, N, K, alpha, A, B, beta, C);
    be->gemm_dtype = DSK_DTYPE_FP32;
    float *out = get(be, C, nc);
    be->free(be, A), be->free(be, B), be->free(be, C);
    return out;
}

/* The cpu backend's rounded product against sums in double over the
 * rounded operands (the reference's own check, on every machine). */
static void cpu_reference_check(int dtype, int ta, int tb, int M, int N, int K, float alpha, const float *a,
                                const float *b, float beta, const float *c, const float *got)
{
    float *ra = malloc((size_t)M * K * 4), *rb = malloc((size_t)K * N * 4);
    dsk_round_dtype(dtype, ra, a, (size_t)M * K);
    dsk_round_dtype(dtype, rb, b, (size_t)K * N);
    double num = 0, den = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? ra[(size_t)k * M + i] : ra[(size_t)i * K + k]) *
                     (tb ? rb[(size_t)j * K + k] : rb[(size_t)k * N + j]);
            s = alpha * s + (beta != 0 ? beta * (double)c[(size_t)i * N + j] : 0);
            num = fmax(num, fabs(got[(size_t)i * N + j] - s));
            den = fmax(den, fabs(s));
        }
    char what[96];
    snprintf(what, sizeof what, "cpu %s %dx%dx%d %c%c vs double", dsk_dtype_name(dtype), M, N, K, ta ? 'T' : 'N',
             tb ? 'T' : 'N');
    record(what, den > 0 ? num / den : num, 2e-5, 1);
    free(ra), free(rb);
}

static void test_shapes(void)
{
    static const int shapes[][3] = {{37, 53, 29}, {1, 67, 45}, {64, 64, 64}, {5, 3, 1}, {129, 257, 300}, {256, 96, 1024}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int dt = DSK_DTYPE_BF16; dt <= DSK_DTYPE_FP16; dt++) {
                    int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], bi = (ta + tb + (int)si) & 1;
                    float alpha = bi ? 1.3f : 1.0f, beta = bi ? 0.5f : 0.0f;
                    float *a = gh_rnd((size_t)M * K, 1), *b = gh_rnd((size_t)K * N, 1), *c = gh_rnd((size_t)M * N, 1);
                    float *want = product(REF, dt, ta, tb, M, N, K, alpha, a, b, beta, c, 0);
                    float *got = product(DEV, dt, ta, tb, M, N, K, alpha, a, b, beta, c, 1);
                    float *fp32 = product(REF, DSK_DTYPE_FP32, ta, tb, M, N, K, alpha, a, b, beta, c, 0);
                    char what[96];
                    snprintf(what, sizeof what, "%s %dx%dx%d %c%c beta %g", dsk_dtype_name(dt), M, N, K,
                             ta ? 'T' : 'N', tb ? 'T' : 'N', beta);
                    double e = rel_err(got, want, (size_t)M * N);
                    worst[dt] = isnan(e) || e > worst[dt] ? e : worst[dt];
                    record(what, e, 2e-5, 1);
                    if (K >= 16) {
                        /* It rounded: off the fp32 product by about the type's
                         * precision (2^-9 bf16, 2^-12 fp16, shrunk by the sum). */
                        snprintf(what, sizeof what, "%s %dx%dx%d %c%c: differs from fp32", dsk_dtype_name(dt), M, N,
                                 K, ta ? 'T' : 'N', tb ? 'T' : 'N');
                        record(what, rel_err(got, fp32, (size_t)M * N), dt == DSK_DTYPE_BF16 ? 2e-4 : 2e-5, 0);
                    }
                    if (si < 2)
                        cpu_reference_check(dt, ta, tb, M, N, K, alpha, a, b, beta, c, want);
                    free(a), free(b), free(c), free(want), free(got), free(fp32);
                }
}

/* fp16 past its range and below its normals. */
static void test_fp16_edges(void)
{
    int M = 33, N = 40, K = 64;
    float *a = gh_rnd((size_t)M * K, 1), *b = gh_rnd((size_t)K * N, 1);
    /* Row 3 of A holds 70000 (inf in fp16): row 3 of C is non-finite on both, the rest finite. */
    a[3 * K + 5] = 70000.0f;
    float *want = product(REF, DSK_DTYPE_FP16, 0, 0, M, N, K, 1, a, b, 0, NULL, 0);
    float *got = product(DEV, DSK_DTYPE_FP16, 0, 0, M, N, K, 1, a, b, 0, NULL, 1);
    int mismatched = 0, inf_row = 0;
    for (int i = 0; i < M * N; i++) {
        mismatched += !isfinite(got[i]) != !isfinite(want[i]);
        inf_row += i / N == 3 && !isfinite(got[i]);
    }
    record("fp16 overflow: the same elements non-finite", mismatched, 0, 1);
    record("fp16 overflow: the whole row non-finite (missing)", N - inf_row, 0, 1);
    free(a), free(want), free(got);

    /* Subnormal operands (|x| < 2^-14) and some that round to zero. */
    a = gh_rnd((size_t)M * K, 3e-5f);
    for (int i = 0; i < M * K; i += 7)
        a[i] *= 1e-3f;   /* below 2^-25: zero in fp16 */
    want = product(REF, DSK_DTYPE_FP16, 0, 1, M, N / 2, K, 1, a, b, 0, NULL, 0);
    got = product(DEV, DSK_DTYPE_FP16, 0, 1, M, N / 2, K, 1, a, b, 0, NULL, 1);
    record("fp16 subnormal operands", rel_err(got, want, (size_t)M * (N / 2)), 2e-5, 1);
    free(a), free(b), free(want), free(got);
}

/* The dtype is per call: back to fp32, the product is fp32's again (the
 * tolerance of test_cuda_ops's gemm). */
static void test_back_to_fp32(void)
{
    int M = 50, N = 70, K = 90;
    float *a = gh_rnd((size_t)M * K, 1), *b = gh_rnd((size_t)K * N, 1);
    float *h16 = product(DEV, DSK_DTYPE_FP16, 0, 0, M, N, K, 1, a, b, 0, NULL, 1);
    float *want = product(REF, DSK_DTYPE_FP32, 0, 0, M, N, K, 1, a, b, 0, NULL, 0);
    float *got = product(DEV, DSK_DTYPE_FP32, 0, 0, M, N, K, 1, a, b, 0, NULL, 1);
    record("fp32 after fp16: fp32 again", rel_err(got, want, (size_t)M * N), 2e-5, 1);
    free(a), free(b), free(h16), free(want), free(got);
}

/* ---- reused 16-bit operands (cuda/gemm_operands.cu) ----
 * A layer's products in a row, with every way an operand can change
 * between two products that share it: an op writing it (scale, add,
 * upload, copy), a product overwriting it, more operands than slots,
 * the same buffer as both operands, a shorter or later part of a buffer,
 * and the other 16-bit type.  Each product's result is saved (copied aside), and
 * all of them are compared: against the cpu (the fp32 tolerance), and on
 * cuda against a second cuda backend with DSK_CUDA_HALF_CACHE=0, which
 * must give the same bits.  On cuda the reuse itself is counted too. */
enum { RM = 48, RK = 40, RN = 24, R_EXTRA = 11 };
#define R_OUTS 14

/* One run of a sequence on one backend: host copies of the results it
 * kept, in order, and (cuda) the reuse counts after each stage. */
enum { SEQ_OUTS = 16, SEQ_STAGES = 8 };
typedef struct seq_run {
    float *out[SEQ_OUTS];
    size_t len[SEQ_OUTS];
    int n_out;
    unsigned long long hits[SEQ_STAGES], misses[SEQ_STAGES];
} seq_run;

static void counts(dsk_backend *be, seq_run *r, int stage)
{
    if (dsk_cuda_half_stats && !strcmp(be->name, "cuda"))
        dsk_cuda_half_stats(be, &r->hits[stage], &r->misses[stage]);
}

static void keep(dsk_backend *be, seq_run *r, const float *dev, size_t n)
{
    if (r->n_out == SEQ_OUTS)
        dsk_die(EX_SOFTWARE, "a sequence kept more than %d results", SEQ_OUTS);
    r->out[r->n_out] = get(be, dev, n);
    r->len[r->n_out++] = n;
}

/* got against want (the cpu): the worst relative error; *same: whether
 * got has the bits of off (a second cuda backend; NULL: none). */
static double compare_runs(const seq_run *got, const seq_run *want, const seq_run *off, int *same)
{
    double e = 0;
    *same = 1;
    for (int i = 0; i < got->n_out; i++) {
        double ei = rel_err(got->out[i], want->out[i], got->len[i]);
        e = isnan(ei) || ei > e ? ei : e;
        if (off)
            *same &= !memcmp(got->out[i], off->out[i], got->len[i] * 4);
    }
    return e;
}

static void free_run(seq_run *r)
{
    for (int i = 0; i < r->n_out; i++)
        free(r->out[i]);
}

/* y = x wᵀ (a linear layer's product) in dtype. */
static void linear(dsk_backend *be, int dtype, int M, int N, int K, const float *x, const float *w, float *y)
{
    be->gemm_dtype = dtype;
    be->gemm(be, 0, 1, M, N, K, 1, x, w, 0, y);
    be->gemm_dtype = DSK_DTYPE_FP32;
}

/* A sequence's stages and the reuse each must show: the products'
 * operand copies reused (hits) and converted (misses) per stage. */
typedef struct seq_counts {
    int stages;
    const unsigned long long *hits, *misses;
    const char *const *name;
} seq_counts;

/* seq on the cpu, on the device and (plain) on a second cuda backend
 * with DSK_CUDA_HALF_CACHE=0, in each 16-bit type: its products against
 * the cpu's (tolerance tol[dtype]), the same bits as plain's, and the
 * counts of each stage. */
static void check_sequence(void (*seq)(dsk_backend *, int, float *const[], seq_run *), float *const host[],
                           dsk_backend *plain, const char *products, const double tol[3], const char *bits,
                           const seq_counts *want)
{
    for (int dt = DSK_DTYPE_BF16; dt <= DSK_DTYPE_FP16; dt++) {
        seq_run ref = {0}, got = {0}, off = {0};
        seq(REF, dt, host, &ref);
        seq(DEV, dt, host, &got);
        if (plain)
            seq(plain, dt, host, &off);
        int same;
        double e = compare_runs(&got, &ref, plain ? &off : NULL, &same);
        char what[112];
        snprintf(what, sizeof what, "%s: %s", dsk_dtype_name(dt), products);
        record(what, e, tol[dt], 1);
        if (plain) {
            snprintf(what, sizeof what, "%s: %s", dsk_dtype_name(dt), bits);
            record(what, !same, 0, 1);
            for (int s2 = 0; s2 < want->stages; s2++) {
                unsigned long long h = got.hits[s2 + 1] - got.hits[s2], m = got.misses[s2 + 1] - got.misses[s2];
                snprintf(what, sizeof what, "%s: %s (hits %llu, misses %llu; want %llu, %llu)", dsk_dtype_name(dt),
                         want->name[s2], h, m, want->hits[s2], want->misses[s2]);
                record(what, h != want->hits[s2] || m != want->misses[s2], 0, 1);
            }
        }
        free_run(&ref), free_run(&got), free_run(&off);
    }
}

static void reuse_sequence(dsk_backend *be, int dt, float *const host[], seq_run *r)
{
    size_t nx = (size_t)RM * RK, nw = (size_t)RN * RK, ny = (size_t)RM * RN;
    float *x = gh_upload(be, host[0], nx * 4), *x2 = gh_upload(be, host[1], nx * 4);
    float *wq = gh_upload(be, host[2], nw * 4), *wk = gh_upload(be, host[3], nw * 4);
    float *wv = gh_upload(be, host[4], nw * 4);
    float *q = gh_poisoned(be, ny * 4), *kk = gh_poisoned(be, ny * 4), *v = gh_poisoned(be, ny * 4);
    float *y = gh_poisoned(be, nx * 4);
    counts(be, r, 0);
    /* 1. q, k and v from one input: x converted once. */
    linear(be, dt, RM, RN, RK, x, wq, q), linear(be, dt, RM, RN, RK, x, wk, kk), linear(be, dt, RM, RN, RK, x, wv, v);
    keep(be, r, q, ny), keep(be, r, kk, ny), keep(be, r, v, ny);
    counts(be, r, 1);
    /* 2. An op writes x, then the product runs again. */
    be->scale(be, x, nx, -1.5f);
    linear(be, dt, RM, RN, RK, x, wq, q);
    counts(be, r, 2);
    keep(be, r, q, ny);
    /* 3. The weights change by upload, copy and add. */
    be->upload(be, wk, host[5], nw * 4);
    linear(be, dt, RM, RN, RK, x, wk, kk), keep(be, r, kk, ny);
    be->copy(be, wv, wq, nw * 4);
    linear(be, dt, RM, RN, RK, x, wv, v), keep(be, r, v, ny);
    be->add(be, x, x2, nx);
    linear(be, dt, RM, RN, RK, x, wv, v), keep(be, r, v, ny);
    counts(be, r, 3);
    /* 4. A product overwrites an operand another product read: y = q wq
     *    caches q; q = x wkᵀ rewrites it; y = q wq must see the new q. */
    be->gemm_dtype = dt;
    be->gemm(be, 0, 0, RM, RK, RN, 1, q, wq, 0, y);
    be->gemm(be, 0, 1, RM, RN, RK, 1, x, wk, 0, q);
    be->gemm(be, 0, 0, RM, RK, RN, 1, q, wq, 0, y);
    be->gemm_dtype = DSK_DTYPE_FP32;
    keep(be, r, y, nx);
    counts(be, r, 4);
    /* 5. More operands than slots, twice round: every one evicted and
     *    back (each different, so that a mixed-up slot shows). */
    float *extra[R_EXTRA];
    for (int i = 0; i < R_EXTRA; i++) {
        extra[i] = gh_upload(be, host[6 + i % 3], nw * 4);
        be->scale(be, extra[i], nw, 1.0f + 0.125f * (float)i);
    }
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < R_EXTRA; i++)
            linear(be, dt, RM, RN, RK, x, extra[i], i == 0 ? q : i == R_EXTRA - 1 ? kk : v);
    keep(be, r, q, ny), keep(be, r, kk, ny);
    /* 6. x's first rows (a copy of the same address, shorter), then x as
     *    both operands (x xᵀ: the short copy must not serve), x's last
     *    rows, and x in the other type. */
    float *xx = gh_poisoned(be, (size_t)RM * RM * 4);
    be->scale(be, x, nx, 0.75f);
    linear(be, dt, RM / 2, RN, RK, x, wq, q), keep(be, r, q, ny / 2);
    linear(be, dt, RM, RM, RK, x, x, xx), keep(be, r, xx, (size_t)RM * RM);
    linear(be, dt, RM / 2, RN, RK, x + nx / 2, wq, q), keep(be, r, q, ny / 2);
    linear(be, dt == DSK_DTYPE_BF16 ? DSK_DTYPE_FP16 : DSK_DTYPE_BF16, RM, RN, RK, x, wq, q), keep(be, r, q, ny);
    if (r->n_out != R_OUTS)
        dsk_die(EX_SOFTWARE, "reuse_sequence kept %d results, not %d", r->n_out, R_OUTS);
    for (int i = 0; i < R_EXTRA; i++)
        be->free(be, extra[i]);
    float *bufs[] = {x, x2, wq, wk, wv, q, kk, v, y, xx};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        be->free(be, bufs[i]);
}

static void test_operand_reuse(dsk_backend *plain)
{
    enum { N_HOST = 9 };
    float *host[N_HOST];
    for (int i = 0; i < N_HOST; i++)
        host[i] = gh_rnd(i < 2 ? (size_t)RM * RK : (size_t)RN * RK, 1);
    /* 1: q, k, v from x: 4 conversions (x and three weights), x reused
     * twice; 2: after scale(x) nothing is current: 2 conversions; 3: each
     * of the three changes makes both operands stale; 4: y = q wq,
     * q = x wkᵀ, y = q wq: x and wq reused, q not (the second product
     * overwrote it). */
    static const unsigned long long hits[4] = {2, 0, 0, 2}, misses[4] = {4, 2, 6, 4};
    static const char *const stage[4] = {"q,k,v reuse x", "an op makes every copy stale",
                                         "weights changed by upload, copy and add", "a product's output is stale"};
    static const seq_counts want = {4, hits, misses, stage};
    static const double tol[3] = {0, 2e-5, 2e-5};
    char products[64];
    snprintf(products, sizeof products, "%d products with operands rewritten between", R_OUTS);
    check_sequence(reuse_sequence, host, plain, products, tol, "the same bits as DSK_CUDA_HALF_CACHE=0", &want);
    for (int i = 0; i < N_HOST; i++)
        free(host[i]);
}

/* The copies an op writes with its outputs (cuda, when gemm_dtype is
 * 16-bit: rmsnorm_fwd, swiglu_fwd, swiglu_bwd, the inverse rope,
 * softmax_xent's gradient, rmsnorm_bwd's dx, the attention's output and
 * its dV; dsk_cuda_half_produce; rope and softmax_xent forget only their
 * own outputs' copies): the products after them read those, not a
 * conversion, and get the same bits as with DSK_CUDA_HALF_CACHE=0.
 * Against the cpu the tolerance is the type's: the ops' fp32 outputs
 * differ in the last bits, which may round to a neighbouring 16-bit
 * value. */
enum { P_STAGES = 7, P_HD = 8, P_POS = 16 };   /* rope: RN = 3 heads of P_HD */

static void produced_sequence(dsk_backend *be, int dt, float *const host[], seq_run *r)
{
    size_t nx = (size_t)RM * RK, nw = (size_t)RN * RK, ny = (size_t)RM * RN;
    float *x = gh_upload(be, host[0], nx * 4), *nw_w = gh_upload(be, host[1], RK * 4);
    float *wq = gh_upload(be, host[2], nw * 4), *wk = gh_upload(be, host[3], nw * 4);
    float *g = gh_upload(be, host[4], ny * 4), *u = gh_upload(be, host[5], ny * 4);
    float *dy = gh_upload(be, host[6], ny * 4);
    float *h = gh_poisoned(be, nx * 4), *rstd = gh_poisoned(be, RM * 4), *act = gh_poisoned(be, ny * 4);
    float *dg = gh_poisoned(be, ny * 4), *du = gh_poisoned(be, ny * 4);
    float *q = gh_poisoned(be, ny * 4), *kk = gh_poisoned(be, ny * 4), *y = gh_poisoned(be, nx * 4);
    float *y2 = gh_poisoned(be, nx * 4);
    float cs_h[P_POS * P_HD];
    int32_t pos_h[RM];
    for (int p = 0; p < P_POS; p++)
        for (int i = 0; i < P_HD / 2; i++) {
            double th = p * pow(10000.0, -2.0 * i / P_HD);
            cs_h[(p * P_HD / 2 + i) * 2] = (float)cos(th);
            cs_h[(p * P_HD / 2 + i) * 2 + 1] = (float)sin(th);
        }
    for (int t = 0; t < RM; t++)
        pos_h[t] = t % P_POS;
    float *cs = gh_upload(be, cs_h, sizeof cs_h);
    int32_t *pos = gh_upload(be, pos_h, sizeof pos_h);
    int32_t tgt_h[RM];
    for (int t = 0; t < RM; t++)
        tgt_h[t] = (t * 7) % RN;
    int32_t *tgt = gh_upload(be, tgt_h, sizeof tgt_h);
    float *loss = gh_poisoned(be, RM * 4), *gw = gh_upload(be, host[3], nw * 4), *dnw = gh_upload(be, host[1], RK * 4);
    be->gemm_dtype = dt;   /* as in training: the ops run with it set */
    counts(be, r, 0);
    /* 1. h = rmsnorm(x); q, k from h: h's copy made by the norm. */
    be->rmsnorm_fwd(be, h, rstd, x, nw_w, RM, RK, 1e-5f);
    be->gemm(be, 0, 1, RM, RN, RK, 1, h, wq, 0, q);
    be->gemm(be, 0, 1, RM, RN, RK, 1, h, wk, 0, kk);
    counts(be, r, 1);
    /* 2. act = swiglu(g, u); y = act wq. */
    be->swiglu_fwd(be, act, g, u, ny);
    be->gemm(be, 0, 0, RM, RK, RN, 1, act, wq, 0, y);
    counts(be, r, 2);
    /* 3. dg, du = swiglu'(dy); y2 = dg wq + du wk. */
    be->swiglu_bwd(be, dg, du, dy, g, u, ny);
    be->gemm(be, 0, 0, RM, RK, RN, 1, dg, wq, 0, y2);
    be->gemm(be, 0, 0, RM, RK, RN, 1, du, wk, 1, y2);
    counts(be, r, 3);
    /* 4. The backward's inverse rotations of dq (here dg) and dk (du), then
     *    their products: each rotation keeps the other's copy, and the
     *    weights' from stage 3. */
    be->rope(be, dg, pos, cs, RM, RN / P_HD, P_HD, 1);
    be->rope(be, du, pos, cs, RM, RN / P_HD, P_HD, 1);
    be->gemm(be, 0, 0, RM, RK, RN, 1, dg, wq, 0, y);
    be->gemm(be, 0, 0, RM, RK, RN, 1, du, wk, 0, h);
    counts(be, r, 4);
    /* (download, which forgets no copy: stage 5 writes q and y again) */
    keep(be, r, q, ny), keep(be, r, kk, ny), keep(be, r, dg, ny), keep(be, r, y2, nx);
    keep(be, r, act, ny), keep(be, r, y, nx), keep(be, r, h, nx);
    /* 5. The LM head in two chunks of rows (x as the final norm's output,
     *    wq as the head's weight [RN words, RK]): logits, their gradient
     *    in place, then dh and the weight's gradient from it. */
    for (int c = 0; c < 2; c++) {
        const float *hc = x + (size_t)c * (RM / 2) * RK;
        be->gemm(be, 0, 1, RM / 2, RN, RK, 1, hc, wq, 0, q);
        be->softmax_xent(be, loss + c * (RM / 2), q, tgt + c * (RM / 2), NULL, RM / 2, RN, 1.0f / RM);
        be->gemm(be, 0, 0, RM / 2, RK, RN, 1, q, wq, 0, y + (size_t)c * (RM / 2) * RK);
        be->gemm(be, 1, 0, RN, RK, RM / 2, 1, q, hc, 1, gw);
    }
    counts(be, r, 5);
    keep(be, r, y, nx), keep(be, r, gw, nw);
    /* 6. dx (y2) += rmsnorm'(dy = y), then dx wqᵀ: dx's copy made by the norm. */
    be->rmsnorm_bwd(be, y2, dnw, y, x, nw_w, rstd, RM, RK);
    be->gemm(be, 0, 1, RM, RN, RK, 1, y2, wq, 0, q);
    counts(be, r, 6);
    keep(be, r, y2, nx), keep(be, r, q, ny);
    /* 7. Causal attention over documents of P_POS tokens (3 heads of P_HD),
     *    its output through wq; its backward, then dV through wq. */
    dsk_attn_shape as = {1, RM, RN / P_HD, RN / P_HD, P_HD, DSK_ATTN_GLOBAL, 0, 1};
    float *lse = gh_poisoned(be, (size_t)RM * (RN / P_HD) * 4);
    be->attention_fwd(be, act, lse, NULL, NULL, NULL, g, u, dy, pos, NULL, &as);
    be->gemm(be, 0, 0, RM, RK, RN, 1, act, wq, 0, y);
    be->attention_bwd(be, dg, du, kk, NULL, q, act, g, u, dy, lse, NULL, NULL, NULL, pos, NULL, &as);
    be->gemm(be, 0, 0, RM, RK, RN, 1, kk, wq, 0, y2);
    counts(be, r, 7);
    be->gemm_dtype = DSK_DTYPE_FP32;
    keep(be, r, y, nx), keep(be, r, y2, nx), keep(be, r, kk, ny);
    be->free(be, lse);
    float *bufs[] = {x, nw_w, wq, wk, g, u, dy, h, rstd, act, dg, du, q, kk, y, y2, cs, (float *)pos, (float *)tgt,
                     loss, gw, dnw};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        be->free(be, bufs[i]);
}

static void test_produced_copies(dsk_backend *plain)
{
    enum { N_HOST = 7 };
    float *host[N_HOST];
    for (int i = 0; i < N_HOST; i++) {
        size_t len = i == 0 ? (size_t)RM * RK : i == 1 ? (size_t)RK : i < 4 ? (size_t)RN * RK : (size_t)RM * RN;
        host[i] = gh_rnd(len, 1);
    }
    /* Each op's outputs come with their copies: every product reads them
     * (hits) and converts only its weight (misses).  (Stage 4: dg, du made
     * by the rotations, wq, wk kept through them; stage 5: per chunk the
     * rows of x converted, the head's weight kept through the loss, its
     * gradient made by it.) */
    static const unsigned long long hits[P_STAGES] = {2, 1, 2, 4, 10, 1, 2};
    static const unsigned long long misses[P_STAGES] = {2, 1, 2, 0, 2, 1, 2};
    static const char *const stage[P_STAGES] = {"h = rmsnorm(x); h wq, h wk", "act = swiglu(g, u); act wq",
                                                "dg, du = swiglu'(dy); dg wq + du wk",
                                                "rope^-1 dg, rope^-1 du; dg wq, du wk",
                                                "LM head and loss, 2 chunks of rows", "dx += rmsnorm'(dy); dx wq",
                                                "attention: out wq; its backward: dv wq"};
    static const seq_counts want = {P_STAGES, hits, misses, stage};
    static const double tol[3] = {0, 2e-2, 4e-3};
    check_sequence(produced_sequence, host, plain, "products after the ops that write copies", tol,
                   "their copies give the bits of DSK_CUDA_HALF_CACHE=0", &want);
    for (int i = 0; i < N_HOST; i++)
        free(host[i]);
}

/* ---- registered weights' copies (cuda/weights_copy.cu) ----
 * Three weights in one registered buffer (register_weights, as the model
 * registers its parameters), products on them, and every way they
 * change: adamw over all of them and over a part (a ZeRO shard), an
 * upload into one, weights_written, an add (an op that keeps no copy),
 * the other 16-bit type, and a freed buffer whose address comes back
 * unregistered.  The same bits as DSK_CUDA_HALF_CACHE=0 (no copies at
 * all), and on cuda the counts: a product reads a weight's copy (a hit)
 * unless the buffer had to be converted again (a miss). */
enum { W_STAGES = 7 };

static void weights_sequence(dsk_backend *be, int dt, float *const host[], seq_run *r)
{
    size_t nx = (size_t)RM * RK, nw = (size_t)RN * RK, ny = (size_t)RM * RN;
    float *W = gh_upload(be, host[1], 3 * nw * 4), *x = gh_upload(be, host[0], nx * 4);
    float *g = gh_upload(be, host[2], 3 * nw * 4), *m = be->alloc(be, 3 * nw * 4), *v = be->alloc(be, 3 * nw * 4);
    float *y = gh_poisoned(be, ny * 4);
    if (be->register_weights)
        be->register_weights(be, W, 3 * nw);
    counts(be, r, 0);
    /* 1. q, k, v: the buffer converted once (at its first product), x once. */
    for (int i = 0; i < 3; i++)
        linear(be, dt, RM, RN, RK, x, W + i * nw, y), keep(be, r, y, ny);
    counts(be, r, 1);
    /* 2. adamw over the buffer: its copy kept current. */
    be->adamw(be, W, g, 0.5f, m, v, 3 * nw, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.1f, 0.001f);
    linear(be, dt, RM, RN, RK, x, W + nw, y), keep(be, r, y, ny);
    counts(be, r, 2);
    /* 3. adamw over the middle weight only, then an upload into the last
     *    and weights_written over it: both read from the copy. */
    be->adamw(be, W + nw, g, 1.0f, m, v, nw, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f, 0.19f, 0.002f);
    be->upload(be, W + 2 * nw, host[3], nw * 4);
    if (be->weights_written)
        be->weights_written(be, W + 2 * nw, nw);
    linear(be, dt, RM, RN, RK, x, W + nw, y), keep(be, r, y, ny);
    linear(be, dt, RM, RN, RK, x, W + 2 * nw, y), keep(be, r, y, ny);
    counts(be, r, 3);
    /* 4. An add into the first weight: the buffer is converted again. */
    be->add(be, W, g + nw, nw);
    linear(be, dt, RM, RN, RK, x, W, y), keep(be, r, y, ny);
    linear(be, dt, RM, RN, RK, x, W + 2 * nw, y), keep(be, r, y, ny);
    counts(be, r, 4);
    /* 5. The other type: converted to it. */
    linear(be, dt == DSK_DTYPE_BF16 ? DSK_DTYPE_FP16 : DSK_DTYPE_BF16, RM, RN, RK, x, W + nw, y), keep(be, r, y, ny);
    counts(be, r, 5);
    /* 6. The buffer freed; a new one, likely at its address, is not
     *    registered: its values are converted, not an old copy read. */
    be->free(be, W);
    W = gh_upload(be, host[4], 3 * nw * 4);
    linear(be, dt, RM, RN, RK, x, W, y), keep(be, r, y, ny);
    counts(be, r, 6);
    float *bufs[] = {W, x, g, m, v, y};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        be->free(be, bufs[i]);
}

static void test_weight_copies(dsk_backend *plain)
{
    enum { N_HOST = 5 };
    size_t nw = (size_t)RN * RK;
    float *host[N_HOST];
    for (int i = 0; i < N_HOST; i++)
        host[i] = gh_rnd(i == 0 ? (size_t)RM * RK : i == 3 ? nw : 3 * nw, 1);
    /* (every op but gemm forgets the slots: x is converted again after
     * adamw, upload, add and free) */
    static const unsigned long long hits[W_STAGES - 1] = {4, 1, 3, 2, 0, 0};
    static const unsigned long long misses[W_STAGES - 1] = {2, 1, 1, 2, 2, 2};
    static const char *const stage[W_STAGES - 1] = {"q, k, v on the buffer", "after adamw over it",
                                                    "after adamw over a part, an upload, weights_written",
                                                    "after an add into it", "in the other type",
                                                    "a new buffer at a freed one's place"};
    static const seq_counts want = {W_STAGES - 1, hits, misses, stage};
    static const double tol[3] = {0, 2e-5, 2e-5};
    check_sequence(weights_sequence, host, plain, "products on registered weights", tol,
                   "weights' copies give the bits of DSK_CUDA_HALF_CACHE=0", &want);
    for (int i = 0; i < N_HOST; i++)
        free(host[i]);
}

/* ---- a MoE layer's experts on copies of the whole layer's rows ----
 * moe_gather and moe_combine_bwd write the copies of their outputs (the
 * rows of every expert, one after another); each expert's product reads
 * its block of rows from them, when the block starts at a multiple of 8
 * values (16-byte aligned, as a conversion of its own would be); and
 * gemm_grouped over blocks that follow one another converts them all at
 * once.  The same bits as DSK_CUDA_HALF_CACHE=0. */
enum { M_ROWS = 2 * RM, M_STAGES = 4 };
static const int m_block[4] = {0, 32, 72, M_ROWS};   /* three experts' rows */

static void moe_sequence(dsk_backend *be, int dt, float *const host[], seq_run *r)
{
    size_t nx = (size_t)RM * RK, nw = (size_t)RN * RK, np = (size_t)M_ROWS * RK, ny = (size_t)M_ROWS * RN;
    int32_t row_token_h[M_ROWS], slot_row_h[M_ROWS];
    for (int i = 0; i < M_ROWS; i++) {
        row_token_h[i] = (i * 7) % RM;
        slot_row_h[i] = (i * 37) % M_ROWS;   /* (token, slot) pairs to rows: a permutation */
    }
    float *x = gh_upload(be, host[0], nx * 4), *w = gh_upload(be, host[1], nw * 4);
    float *yp = gh_upload(be, host[2], np * 4), *dout = gh_upload(be, host[0], nx * 4);
    float *gate = gh_upload(be, host[3], M_ROWS * 4);
    int32_t *row_token = gh_upload(be, row_token_h, sizeof row_token_h);
    int32_t *slot_row = gh_upload(be, slot_row_h, sizeof slot_row_h);
    float *xp = gh_poisoned(be, np * 4), *dyp = gh_poisoned(be, np * 4), *dgate = gh_poisoned(be, M_ROWS * 4);
    float *y = gh_poisoned(be, ny * 4);
    be->gemm_dtype = dt;
    counts(be, r, 0);
    /* 1. xp = the rows in expert order; each expert's block times wᵀ. */
    be->moe_gather(be, xp, x, row_token, M_ROWS, RK);
    for (int e = 0; e < 3; e++)
        be->gemm(be, 0, 1, m_block[e + 1] - m_block[e], RN, RK, 1, xp + (size_t)m_block[e] * RK, w, 0,
                 y + (size_t)m_block[e] * RN);
    counts(be, r, 1);
    keep(be, r, y, ny);
    /* 2. A block 4 values in: not 16-byte aligned in the copy, converted. */
    be->gemm(be, 0, 1, 10, RN, RK, 1, xp + 4, w, 0, y);
    counts(be, r, 2);
    keep(be, r, y, (size_t)10 * RN);
    /* 3. dyp = the gates times the output's gradient, in expert order;
     *    each expert's block times wᵀ again. */
    be->moe_combine_bwd(be, dyp, dgate, dout, yp, slot_row, gate, RM, 2, RK);
    for (int e = 0; e < 3; e++)
        be->gemm(be, 0, 1, m_block[e + 1] - m_block[e], RN, RK, 1, dyp + (size_t)m_block[e] * RK, w, 0,
                 y + (size_t)m_block[e] * RN);
    counts(be, r, 3);
    keep(be, r, y, ny);
    /* 4. gemm_grouped over the three blocks of yp, which has no copy:
     *    one conversion of all of it, each block read from that. */
    int Ms[3], Ns[3], Ks[3];
    const float *As[3], *Bs[3];
    float *Cs[3];
    for (int e = 0; e < 3; e++) {
        Ms[e] = m_block[e + 1] - m_block[e], Ns[e] = RN, Ks[e] = RK;
        As[e] = yp + (size_t)m_block[e] * RK, Bs[e] = w, Cs[e] = y + (size_t)m_block[e] * RN;
    }
    be->gemm_grouped(be, 0, 1, 3, Ms, Ns, Ks, 1, As, Bs, 0, Cs);
    counts(be, r, 4);
    be->gemm_dtype = DSK_DTYPE_FP32;
    keep(be, r, y, ny), keep(be, r, xp, np), keep(be, r, dyp, np);
    float *bufs[] = {x, w, yp, dout, gate, (float *)row_token, (float *)slot_row, xp, dyp, dgate, y};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        be->free(be, bufs[i]);
}

static void test_moe_copies(dsk_backend *plain)
{
    float *host[4] = {gh_rnd((size_t)RM * RK, 1), gh_rnd((size_t)RN * RK, 1), gh_rnd((size_t)M_ROWS * RK, 1),
                      gh_rnd(M_ROWS, 1)};
    /* Each stage converts w once (the op before it forgot every copy but
     * its own; stages 2 and 4 reuse the one before's); the experts'
     * blocks are hits, in stage 4 after one conversion of all of yp. */
    static const unsigned long long hits[M_STAGES] = {5, 1, 5, 6}, misses[M_STAGES] = {1, 1, 1, 1};
    static const char *const stage[M_STAGES] = {"moe_gather; 3 experts' blocks times w",
                                                "a block 4 values in (unaligned)",
                                                "moe_combine_bwd; 3 experts' blocks times w",
                                                "gemm_grouped over 3 blocks of a buffer without a copy"};
    static const seq_counts want = {M_STAGES, hits, misses, stage};
    static const double tol[3] = {0, 2e-5, 2e-5};
    check_sequence(moe_sequence, host, plain, "experts' products on the layer's copies", tol,
                   "blocks of copies give the bits of DSK_CUDA_HALF_CACHE=0", &want);
    for (int i = 0; i < 4; i++)
        free(host[i]);
}

static void run_all(dsk_backend *plain)
{
    test_shapes();
    test_fp16_edges();
    test_back_to_fp32();
    test_operand_reuse(plain);
    test_produced_copies(plain);
    test_weight_copies(plain);
    test_moe_copies(plain);
    printf("\n%-8s %11s\n", "dtype", "worst err");
    for (int dt = DSK_DTYPE_BF16; dt <= DSK_DTYPE_FP16; dt++)
        printf("%-8s %11.2e\n", dsk_dtype_name(dt), worst[dt]);
}

static void cuda_absent(double err)
{
    record("\"cuda\" without a device: 69, message", err, 0, 1);
}

int main(int argc, char **argv)
{
    int cpu_only = gh_start(argc, argv);
    dsk_rng_seed(&RNG, 20240612);
    gh_open_ref();
    if (REF->gemm_dtype != DSK_DTYPE_FP32)
        record("a new cpu backend's gemm_dtype is fp32", 1, 0, 1);
    if (!gh_open_dev(cpu_only, cuda_absent)) {
        /* The harness against a second cpu backend, and the cpu's rounded
         * products against double sums. */
        printf("# harness self-check: cpu against cpu (bf16, fp16)\n");
        run_all(NULL);
    } else {
        if (DEV->gemm_dtype != DSK_DTYPE_FP32)
            record("a new cuda backend's gemm_dtype is fp32", 1, 0, 1);
        printf("# cpu (%d threads) against %s: gemm in bf16 and fp16\n", REF->threads, DEV->name);
        /* A second cuda backend that converts every product's operands afresh. */
        setenv("DSK_CUDA_HALF_CACHE", "0", 1);
        dsk_err err = {0};
        dsk_backend *plain = dsk_backend_new("cuda", 0, &err);
        unsetenv("DSK_CUDA_HALF_CACHE");
        if (!plain)
            dsk_die(EX_SOFTWARE, "a second cuda backend: %s", err.msg);
        run_all(plain);
        plain->destroy(plain);
    }
    return gh_close();
}
