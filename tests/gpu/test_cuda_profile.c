/* DSK_CUDA_PROFILE=1 (cuda/op_profile.cu): the per-op table of a cuda
 * backend counts what ran, nests its parts inside their op, leaves the
 * results alone, and refuses values it does not know (tests/gpu/run.sh
 * runs it, on the emulation too).
 *
 * A known sequence on a profiled backend: 3 RMSNorms, 2 fp32 products,
 * then 4 bf16 products on one input (the last repeating the first, so
 * the 16-bit copies are reused: 3 conversions, not 4), a copy, and more
 * adds than the event pool holds (so the events are read mid-run).  The
 * counts and flops must be exactly those; every time must be finite and
 * not negative; a part's times must not add up to more than its op's;
 * the outputs must be bit for bit those of the unprofiled backend; reset
 * must forget; the printed table must name the ops and parts; an op
 * with parts of more names than the table lists per op sums the rest,
 * and the ops after it are still listed.
 *
 *   test_cuda_profile         cuda; without a CUDA device: the checks
 *                             that need none, and says the GPU half was
 *                             skipped
 *   test_cuda_profile --cpu   the checks that need no device only
 *
 * Exit status: 0 when every check passed, 1 otherwise. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "ops/backend.h"

#include "../../cuda/cuda_backend.h"
/* Weak: a build without nvcc links this program without the cuda backend. */
#pragma weak dsk_cuda_profile_get
#pragma weak dsk_cuda_profile_reset
#pragma weak dsk_cuda_profile_print

#include "cuda_with.h"
#include "harness.h"

static void check(const char *what, int ok)
{
    gh_count(ok);
    printf("  %-4s %s\n", ok ? "ok" : "FAIL", what);
}

enum { ROWS = 24, COLS = 40, M = 32, N = 48, K = 64, ADDS = 2500 };

typedef struct outputs {
    float *norm, *prod[6], *copy, *sum;
} outputs;

/* The sequence on be; its outputs on the host. */
static void run_sequence(dsk_backend *be, const float *x_h, const float *w_h, const float *a_h, float *const *b_h,
                         outputs *o)
{
    float *x = gh_upload(be, x_h, sizeof(float) * ROWS * COLS), *w = gh_upload(be, w_h, sizeof(float) * COLS);
    float *out = gh_poisoned(be, sizeof(float) * ROWS * COLS), *rstd = gh_poisoned(be, sizeof(float) * ROWS);
    for (int i = 0; i < 3; i++)
        be->rmsnorm_fwd(be, out, rstd, x, w, ROWS, COLS, 1e-5f);
    o->norm = get(be, out, (size_t)ROWS * COLS);

    float *a = gh_upload(be, a_h, sizeof(float) * M * K), *b[3], *c[6];
    for (int i = 0; i < 3; i++)
        b[i] = gh_upload(be, b_h[i], sizeof(float) * K * N);
    for (int i = 0; i < 6; i++)
        c[i] = gh_poisoned(be, sizeof(float) * M * N);
    be->gemm(be, 0, 0, M, N, K, 1, a, b[0], 0, c[0]);
    be->gemm(be, 0, 0, M, N, K, 1, a, b[1], 0, c[1]);
    be->gemm_dtype = DSK_DTYPE_BF16;
    for (int i = 0; i < 4; i++)   /* a with b0, b1, b2, b0 again */
        be->gemm(be, 0, 0, M, N, K, 1, a, b[i % 3], 0, c[2 + i]);
    be->gemm_dtype = DSK_DTYPE_FP32;
    for (int i = 0; i < 6; i++)
        o->prod[i] = get(be, c[i], (size_t)M * N);

    float *dst = gh_poisoned(be, sizeof(float) * ROWS * COLS);
    be->copy(be, dst, x, sizeof(float) * ROWS * COLS);
    o->copy = get(be, dst, (size_t)ROWS * COLS);
    for (int i = 0; i < ADDS; i++)
        be->add(be, dst, x, (size_t)ROWS * COLS);
    o->sum = get(be, dst, (size_t)ROWS * COLS);

    be->free(be, x), be->free(be, w), be->free(be, out), be->free(be, rstd), be->free(be, a), be->free(be, dst);
    for (int i = 0; i < 3; i++)
        be->free(be, b[i]);
    for (int i = 0; i < 6; i++)
        be->free(be, c[i]);
}

static void free_outputs(outputs *o)
{
    free(o->norm), free(o->copy), free(o->sum);
    for (int i = 0; i < 6; i++)
        free(o->prod[i]);
}

/* One entry of the table: checks its calls (and flops when want_flops >= 0); its ms. */
static double entry(dsk_backend *be, const char *op, const char *section, unsigned long long want_calls,
                    double want_flops)
{
    unsigned long long calls = 0;
    double ms = -1, flops = -1;
    int rc = dsk_cuda_profile_get(be, op, section, &calls, &ms, &flops);
    char what[160];
    snprintf(what, sizeof what, "%s%s%s: %llu calls (want %llu), %.4f ms", op, section ? " / " : "",
             section ? section : "", calls, want_calls, ms);
    check(what, rc == 0 && calls == want_calls && isfinite(ms) && ms >= 0);
    if (want_flops >= 0) {
        snprintf(what, sizeof what, "%s%s%s: %.0f flops counted (want %.0f)", op, section ? " / " : "",
                 section ? section : "", flops, want_flops);
        check(what, flops == want_flops);
    }
    return ms;
}

static void test_profiled(const float *x_h, const float *w_h, const float *a, float *const *b)
{
    dsk_err err = {0};
    dsk_backend *prof = cuda_with("DSK_CUDA_PROFILE", "1", &err);
    if (!prof)
        dsk_die(EX_SOFTWARE, "a profiled cuda backend: %s", err.msg);
    outputs plain = {0}, timed = {0};
    run_sequence(DEV, x_h, w_h, a, b, &plain);
    run_sequence(prof, x_h, w_h, a, b, &timed);

    int same = !memcmp(plain.norm, timed.norm, sizeof(float) * ROWS * COLS) &&
               !memcmp(plain.copy, timed.copy, sizeof(float) * ROWS * COLS) &&
               !memcmp(plain.sum, timed.sum, sizeof(float) * ROWS * COLS);
    for (int i = 0; i < 6; i++)
        same &= !memcmp(plain.prod[i], timed.prod[i], sizeof(float) * M * N);
    check("profiled outputs: the same bits as unprofiled", same);
    free_outputs(&plain), free_outputs(&timed);

    unsigned long long calls;
    double ms, flops;
    check("an unprofiled cuda backend has no table",
          dsk_cuda_profile_get(DEV, "gemm", NULL, &calls, &ms, &flops) == -1);

    const double f = 2.0 * M * N * K;
    char fp32[64], bf16[64];
    snprintf(fp32, sizeof fp32, "fp32 %dx%dx%d NN", M, N, K);
    snprintf(bf16, sizeof bf16, "bf16 %dx%dx%d NN", M, N, K);
    entry(prof, "rmsnorm_fwd", NULL, 3, 0);
    double gemm_ms = entry(prof, "gemm", NULL, 6, 0);
    double parts = entry(prof, "gemm", fp32, 2, 2 * f);
    parts += entry(prof, "gemm", bf16, 4, 4 * f);
    /* a and b0, then b1, then b2: the fourth product reuses a's and b0's copies. */
    parts += entry(prof, "gemm", "operands to bf16", 3, 0);
    char what[160];
    snprintf(what, sizeof what, "gemm's parts %.4f ms within its %.4f ms", parts, gemm_ms);
    check(what, parts <= gemm_ms * 1.01 + 1e-3);
    entry(prof, "copy", NULL, 1, 0);
    double add_ms = entry(prof, "add", NULL, ADDS, 0);
    check("the adds took time", add_ms > 0);
    entry(prof, "gemm", "operands to fp16", 0, 0);
    entry(prof, "swiglu_fwd", NULL, 0, 0);
    /* download is an op of the table: the sequence downloads 9 outputs. */
    entry(prof, "download", NULL, 9, -1);

    FILE *f_out = tmpfile();
    if (!f_out)
        dsk_die(EX_OSERR, "tmpfile: %s", strerror(errno));
    dsk_cuda_profile_print(prof, f_out);
    rewind(f_out);
    char text[8192];
    size_t len = fread(text, 1, sizeof text - 1, f_out);
    text[len] = 0;
    fclose(f_out);
    int named = strstr(text, "cuda profile") && strstr(text, "rmsnorm_fwd") && strstr(text, "operands to bf16") &&
                strstr(text, bf16) && strstr(text, "host ms") && strstr(text, "\n    ") != NULL;
    check("the printed table names the ops and, indented, their parts, with host times", named);
    if (!named)
        fputs(text, stdout);

    dsk_cuda_profile_reset(prof);
    entry(prof, "rmsnorm_fwd", NULL, 0, 0);
    entry(prof, "gemm", bf16, 0, 0);
    /* After a reset the count starts again from nothing. */
    float *x = gh_upload(prof, x_h, sizeof(float) * ROWS * COLS), *w = gh_upload(prof, w_h, sizeof(float) * COLS);
    float *out = gh_poisoned(prof, sizeof(float) * ROWS * COLS), *rstd = gh_poisoned(prof, sizeof(float) * ROWS);
    for (int i = 0; i < 2; i++)
        prof->rmsnorm_fwd(prof, out, rstd, x, w, ROWS, COLS, 1e-5f);
    entry(prof, "rmsnorm_fwd", NULL, 2, 0);

    /* Products of 60 shapes (a MoE layer's ragged experts name a new one
     * nearly every call): the first 39 names listed under gemm, the rest
     * summed in its "(other parts)", and the ops after them still listed. */
    dsk_cuda_profile_reset(prof);
    float *ga = gh_upload(prof, a, sizeof(float) * M * K), *gb = gh_upload(prof, b[0], sizeof(float) * K * N);
    float *gc = gh_poisoned(prof, sizeof(float) * M * N);
    for (int rows = 1; rows <= 60; rows++)
        prof->gemm(prof, 0, 0, rows % M + 1, N, K - rows % 3, 1, ga, gb, 0, gc);
    prof->add(prof, gc, gc, (size_t)M * N);
    entry(prof, "gemm", NULL, 60, 0);
    entry(prof, "gemm", "(other parts)", 60 - 39, -1);
    entry(prof, "add", NULL, 1, 0);
    prof->free(prof, ga), prof->free(prof, gb), prof->free(prof, gc);
    prof->free(prof, x), prof->free(prof, w), prof->free(prof, out), prof->free(prof, rstd);
    prof->destroy(prof);
}

static void test_refused(void)
{
    const char *bad[] = {"2", "yes", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dsk_err err = {0};
        dsk_backend *be = cuda_with("DSK_CUDA_PROFILE", bad[i], &err);
        char what[1200];
        snprintf(what, sizeof what, "DSK_CUDA_PROFILE=%s: exit code %d (want 64), \"%s\"", bad[i], err.code, err.msg);
        check(what, !be && err.code == 64 && strstr(err.msg, "DSK_CUDA_PROFILE"));
        if (be)
            be->destroy(be);
    }
    dsk_err err = {0};
    dsk_backend *be = cuda_with("DSK_CUDA_PROFILE", "0", &err);
    unsigned long long calls;
    double ms, flops;
    check("DSK_CUDA_PROFILE=0: a backend without a table",
          be && dsk_cuda_profile_get(be, "gemm", NULL, &calls, &ms, &flops) == -1);
    if (be)
        be->destroy(be);
}

static void cuda_absent(double err) { check("\"cuda\" without a device fails as documented", err == 0); }

int main(int argc, char **argv)
{
    int cpu_only = gh_start(argc, argv);
    unsetenv("DSK_CUDA_PROFILE");   /* DEV is the unprofiled backend */
    dsk_rng_seed(&RNG, 20261129);
    gh_open_ref();
    if (dsk_cuda_profile_get) {
        unsigned long long calls;
        double ms, flops;
        check("the cpu backend has no cuda table", dsk_cuda_profile_get(REF, "gemm", NULL, &calls, &ms, &flops) == -1);
    }
    if (gh_open_dev(cpu_only, cuda_absent)) {
        printf("# %s: DSK_CUDA_PROFILE\n", DEV->name);
        float *x = gh_rnd((size_t)ROWS * COLS, 1), *w = gh_rnd(COLS, 1), *a = gh_rnd((size_t)M * K, 1), *b[3];
        for (int i = 0; i < 3; i++)
            b[i] = gh_rnd((size_t)K * N, 1);
        test_profiled(x, w, a, b);
        test_refused();
        free(x), free(w), free(a);
        for (int i = 0; i < 3; i++)
            free(b[i]);
    }
    return gh_close();
}
