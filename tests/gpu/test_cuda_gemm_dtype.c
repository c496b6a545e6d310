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
#include "core/rng.h"
#include "ops/backend.h"
#include "ops/half.h"

static dsk_backend *REF, *DEV;
static dsk_rng RNG;
static int failures, checks;
static double worst[3];   /* per dtype: the worst product error against the cpu */

static void record(const char *what, double err, double tol, int below)
{
    /* below: err must be at most tol; else at least tol.  NaN fails either way. */
    int ok = below ? err <= tol : err >= tol;
    checks++;
    failures += !ok;
    printf("  %-4s %-52s err %9.2e  %s %7.0e\n", ok ? "ok" : "FAIL", what, err, below ? "tol" : "min", tol);
}

/* Values in +-[0.1, 1] * scale: never zero. */
static float *rnd(size_t n, float scale)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        float v = (float)(0.1 + 0.9 * dsk_rng_uniform(&RNG));
        h[i] = (dsk_rng_uniform(&RNG) < 0.5 ? -v : v) * scale;
    }
    return h;
}

static void *on(dsk_backend *be, const void *host, size_t bytes)
{
    void *d = be->alloc(be, bytes);
    be->upload(be, d, host, bytes);
    return d;
}

static float *get(dsk_backend *be, const void *dev, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    be->download(be, h, dev, n * sizeof *h);
    return h;
}

static double rel_err(const float *got, const float *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i]))
            return INFINITY;
        double d = fabs((double)got[i] - (double)want[i]);
        num = d > num ? d : num;
        den = fabs((double)want[i]) > den ? fabs((double)want[i]) : den;
    }
    return n == 0 ? 0 : den > 0 ? num / den : num;
}

/* C = alpha op(A) op(B) + beta C on a backend in a dtype; the result on the host. */
static float *product(dsk_backend *be, int dtype, int ta, int tb, int M, int N, int K, float alpha, const float *a,
                      const float *b, float beta, const float *c, int poison)
{
    size_t nc = (size_t)M * N;
    float *A = on(be, a, (size_t)M * K * 4), *B = on(be, b, (size_t)K * N * 4), *C;
    if (beta != 0) {
        C = on(be, c, nc * 4);
    } else {
        C = be->alloc(be, nc * 4);
        if (poison) {
            void *h = malloc(nc * 4 + 1);
            memset(h, 0xff, nc * 4);
            be->upload(be, C, h, nc * 4);
            free(h);
        }
    }
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
                    float *a = rnd((size_t)M * K, 1), *b = rnd((size_t)K * N, 1), *c = rnd((size_t)M * N, 1);
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
    float *a = rnd((size_t)M * K, 1), *b = rnd((size_t)K * N, 1);
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
    a = rnd((size_t)M * K, 3e-5f);
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
    float *a = rnd((size_t)M * K, 1), *b = rnd((size_t)K * N, 1);
    float *h16 = product(DEV, DSK_DTYPE_FP16, 0, 0, M, N, K, 1, a, b, 0, NULL, 1);
    float *want = product(REF, DSK_DTYPE_FP32, 0, 0, M, N, K, 1, a, b, 0, NULL, 0);
    float *got = product(DEV, DSK_DTYPE_FP32, 0, 0, M, N, K, 1, a, b, 0, NULL, 1);
    record("fp32 after fp16: fp32 again", rel_err(got, want, (size_t)M * N), 2e-5, 1);
    free(a), free(b), free(h16), free(want), free(got);
}

static void run_all(void)
{
    test_shapes();
    test_fp16_edges();
    test_back_to_fp32();
    printf("\n%-8s %11s\n", "dtype", "worst err");
    for (int dt = DSK_DTYPE_BF16; dt <= DSK_DTYPE_FP16; dt++)
        printf("%-8s %11.2e\n", dsk_dtype_name(dt), worst[dt]);
    printf("%d checks, %d failed\n", checks, failures);
}

int main(int argc, char **argv)
{
    dsk_set_progname(argv[0]);
    int cpu_only = argc > 1 && !strcmp(argv[1], "--cpu");
    if (argc > 2 || (argc == 2 && !cpu_only)) {
        fprintf(stderr, "usage: %s [--cpu]\n", argv[0]);
        return 64;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    dsk_rng_seed(&RNG, 20240612);
    dsk_err err = {0};
    REF = dsk_backend_new("cpu", 0, &err);
    if (!REF)
        dsk_die_err(&err);
    if (REF->gemm_dtype != DSK_DTYPE_FP32)
        record("a new cpu backend's gemm_dtype is fp32", 1, 0, 1);
    dsk_backend *cuda = cpu_only ? NULL : dsk_backend_new("cuda", 0, &err);
    if (!cuda) {
        if (!cpu_only) {
            printf("# cuda backend: %s (exit code %d)\n", err.msg, err.code);
            int documented = err.code == EX_UNAVAILABLE &&
                             (!strncmp(err.msg, "no CUDA device: ", 16) || strstr(err.msg, "built without CUDA"));
            record("\"cuda\" without a device: 69, message", documented ? 0 : 1, 0, 1);
        }
        /* The harness against a second cpu backend, and the cpu's rounded
         * products against double sums. */
        printf("# harness self-check: cpu against cpu (bf16, fp16)\n");
        DEV = dsk_backend_new("cpu", 0, &err);
        run_all();
        if (!cpu_only)
            printf("GPU half skipped: no CUDA device\n");
    } else {
        DEV = cuda;
        if (DEV->gemm_dtype != DSK_DTYPE_FP32)
            record("a new cuda backend's gemm_dtype is fp32", 1, 0, 1);
        printf("# cpu (%d threads) against %s: gemm in bf16 and fp16\n", REF->threads, DEV->name);
        run_all();
    }
    REF->destroy(REF);
    DEV->destroy(DEV);
    return failures ? 1 : 0;
}
