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

static void run_all(void)
{
    test_shapes();
    test_fp16_edges();
    test_back_to_fp32();
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
        run_all();
    } else {
        if (DEV->gemm_dtype != DSK_DTYPE_FP32)
            record("a new cuda backend's gemm_dtype is fp32", 1, 0, 1);
        printf("# cpu (%d threads) against %s: gemm in bf16 and fp16\n", REF->threads, DEV->name);
        run_all();
    }
    return gh_close();
}
