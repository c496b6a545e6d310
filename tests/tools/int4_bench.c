/* int4_bench: int4 (GPTQ layout) matrix-vector speed against fp32 sgemv
 * through the BLAS the project links, on one layer shape.
 *
 *   int4_bench ROWS COLS [N [GROUP]]
 *
 * N rows of input (default 1: decoding; above 1 the fp32 side is sgemm),
 * GROUP the group size (default 128, or COLS when 128 does not divide it).
 * Each kernel runs twice: "cold" cycles through enough copies of the
 * weights to be several times the last-level cache, so every call streams
 * them from memory as in a real model; "warm" repeats one copy (which
 * the int4 weights may fit in cache).  Prints ms per call (best of several
 * trials), the weight bytes read per second, the CPU time per call (all
 * threads: the cost on a machine shared with other work; run with
 * OMP_WAIT_POLICY=passive so idle threads do not count), and the
 * fp32 / int4 ratios. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/progress.h"
#include "core/rng.h"
#include "quant/int4.h"

/* Buffer sets at least this many times the L3 cache defeat it. */
#define COLD_FACTOR 4

static size_t l3_bytes(void)
{
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    return l3 > 0 ? (size_t)l3 : (size_t)32 << 20;
}

static int copies_for(size_t bytes)
{
    size_t want = COLD_FACTOR * l3_bytes();
    size_t c = (want + bytes - 1) / bytes;
    return c < 1 ? 1 : (int)c;
}

typedef void (*call_fn)(void *ctx, int copy);

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct timing {
    double wall_ms; /* best of several trials of >= 50 ms each */
    double cpu_ms;  /* CPU time of all threads per call, over all trials */
} timing;

/* Wall time takes the best trial because a busy machine only ever adds
 * time; CPU time is what the call costs whatever else runs (with
 * OMP_WAIT_POLICY=passive, so that threads waiting at a barrier sleep
 * instead of spinning).  One untimed call per copy first. */
static timing time_call(call_fn fn, void *ctx, int copies)
{
    for (int c = 0; c < copies; c++)
        fn(ctx, c);
    timing tm = {1e30, 0};
    double start = dsk_now(), cpu0 = cpu_seconds();
    long k = 0;
    for (int trial = 0; trial < 5 || (trial < 50 && dsk_now() - start < 1.0); trial++) {
        long calls = 0;
        double t0 = dsk_now(), t;
        do {
            fn(ctx, (int)(k++ % copies));
            calls++;
            t = dsk_now() - t0;
        } while (t < 0.05 || calls < 3);
        if (1e3 * t / (double)calls < tm.wall_ms)
            tm.wall_ms = 1e3 * t / (double)calls;
    }
    tm.cpu_ms = 1e3 * (cpu_seconds() - cpu0) / (double)k;
    return tm;
}

static void report(const char *name, timing cold, timing warm, size_t bytes)
{
    printf("%-16s cold %8.3f ms %6.1f GB/s   warm %8.3f ms %6.1f GB/s   cpu %8.3f ms\n", name, cold.wall_ms,
           (double)bytes / cold.wall_ms / 1e6, warm.wall_ms, (double)bytes / warm.wall_ms / 1e6, cold.cpu_ms);
}

typedef struct bench {
    int rows, cols, n;
    float **W;  /* fp32 copies */
    dsk_q4_linear *Q; /* int4 copies (runtime arrays duplicated) */
    float *x, *y;
} bench;

static void call_fp32(void *ctx, int c)
{
    bench *b = ctx;
    if (b->n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, b->rows, b->cols, 1.0f, b->W[c], b->cols, b->x, 1, 0.0f, b->y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b->n, b->rows, b->cols, 1.0f, b->x, b->cols, b->W[c],
                    b->cols, 0.0f, b->y, b->rows);
}

static void call_int4(void *ctx, int c)
{
    bench *b = ctx;
    dsk_q4_matmul(&b->Q[c], b->x, b->n, b->y);
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: int4_bench ROWS COLS [N [GROUP]]\n");
        return 64;
    }
    int rows = atoi(argv[1]), cols = atoi(argv[2]), n = argc > 3 ? atoi(argv[3]) : 1;
    int G = argc > 4 ? atoi(argv[4]) : (cols % 128 == 0 ? 128 : cols);
    if (rows <= 0 || cols <= 0 || n <= 0 || G <= 0) {
        fprintf(stderr, "int4_bench: sizes must be positive\n");
        return 64;
    }
    int ngroups = cols / G;
    size_t nw = (size_t)rows * cols, ns = (size_t)ngroups * rows;

    dsk_rng rng;
    dsk_rng_seed(&rng, 1);
    uint8_t *codes = malloc(nw), *zeros = malloc(ns);
    float *scales = malloc(ns * sizeof *scales);
    for (size_t k = 0; k < nw; k++)
        codes[k] = (uint8_t)(dsk_rng_next(&rng) & 15);
    for (size_t k = 0; k < ns; k++) {
        zeros[k] = (uint8_t)(1 + dsk_rng_next(&rng) % 15);
        scales[k] = 0.01f * (float)(1 + dsk_rng_next(&rng) % 100);
    }
    dsk_q4_linear L = {.rows = rows, .cols = cols, .group_size = G};
    dsk_err err = {0};
    if (dsk_q4_pack(&L, codes, zeros, scales, NULL, &err) || dsk_q4_prepare(&L, &err)) {
        fprintf(stderr, "int4_bench: %s\n", err.msg);
        return 65;
    }
    free(codes), free(zeros), free(scales);

    bench b = {.rows = rows, .cols = cols, .n = n};
    b.x = malloc((size_t)n * cols * sizeof *b.x);
    b.y = malloc((size_t)n * rows * sizeof *b.y);
    for (size_t k = 0; k < (size_t)n * cols; k++)
        b.x[k] = (float)dsk_rng_normal(&rng);

    /* fp32 weights: the dequantized layer, so both sides compute the same y. */
    size_t fp32_bytes = nw * sizeof(float);
    int fp32_copies = copies_for(fp32_bytes);
    b.W = malloc((size_t)fp32_copies * sizeof *b.W);
    b.W[0] = malloc(fp32_bytes);
    dsk_q4_dequantize(&L, b.W[0]);
    for (int c = 1; c < fp32_copies; c++) {
        b.W[c] = malloc(fp32_bytes);
        memcpy(b.W[c], b.W[0], fp32_bytes);
    }

    size_t code_bytes = (size_t)rows * L.kcols / 2, meta_bytes = (size_t)rows * L.ngroups * 2 * sizeof(float);
    size_t int4_bytes = code_bytes + meta_bytes;
    int int4_copies = copies_for(int4_bytes);
    b.Q = malloc((size_t)int4_copies * sizeof *b.Q);
    b.Q[0] = L;
    for (int c = 1; c < int4_copies; c++) {
        /* Shallow copy sharing the small arrays; fresh copies of the big ones. */
        b.Q[c] = L;
        b.Q[c].owns_packed = 0;
        b.Q[c].panel_codes = malloc(code_bytes);
        b.Q[c].panel_meta = malloc(meta_bytes);
        memcpy(b.Q[c].panel_codes, L.panel_codes, code_bytes);
        memcpy(b.Q[c].panel_meta, L.panel_meta, meta_bytes);
    }

    /* Agreement check: int4 against the fp32 BLAS result on the same weights. */
    float *ref = malloc((size_t)n * rows * sizeof *ref);
    call_fp32(&b, 0);
    memcpy(ref, b.y, (size_t)n * rows * sizeof *ref);
    call_int4(&b, 0);
    double worst = 0, scale = 0;
    for (size_t k = 0; k < (size_t)n * rows; k++) {
        double d = b.y[k] - ref[k];
        worst = d < 0 ? (-d > worst ? -d : worst) : (d > worst ? d : worst);
        double a = ref[k] < 0 ? -ref[k] : ref[k];
        scale = a > scale ? a : scale;
    }

    printf("shape %dx%d, n=%d, group %d, %d threads, kernel %s, L3 %.0f MiB\n", rows, cols, n, G,
           omp_get_max_threads(), dsk_q4_kernel_name(), (double)l3_bytes() / (1 << 20));
    printf("weights: fp32 %.1f MiB x %d copies, int4 %.1f MiB x %d copies (cold set >= %dx L3)\n",
           (double)fp32_bytes / (1 << 20), fp32_copies, (double)int4_bytes / (1 << 20), int4_copies, COLD_FACTOR);
    printf("max |int4 - fp32| = %.3g (max |y| %.3g)\n", worst, scale);

    const char *fp32_name = n == 1 ? "fp32 sgemv" : "fp32 sgemm";
    timing f_cold = time_call(call_fp32, &b, fp32_copies), f_warm = time_call(call_fp32, &b, 1);
    timing q_cold = time_call(call_int4, &b, int4_copies), q_warm = time_call(call_int4, &b, 1);
    report(fp32_name, f_cold, f_warm, fp32_bytes);
    report("int4", q_cold, q_warm, int4_bytes);
    if (strcmp(dsk_q4_kernel_name(), "portable") != 0 && dsk_q4_set_kernel(DSK_Q4_KERNEL_PORTABLE) == 0) {
        timing p_cold = time_call(call_int4, &b, int4_copies), p_warm = time_call(call_int4, &b, 1);
        dsk_q4_set_kernel(DSK_Q4_KERNEL_AUTO);
        report("int4 portable", p_cold, p_warm, int4_bytes);
    }
    printf("speedup int4 vs %s: cold %.2fx, warm %.2fx, cpu time %.2fx\n", fp32_name, f_cold.wall_ms / q_cold.wall_ms,
           f_warm.wall_ms / q_warm.wall_ms, f_cold.cpu_ms / q_cold.cpu_ms);

    for (int c = 1; c < int4_copies; c++) {
        free(b.Q[c].panel_codes);
        free(b.Q[c].panel_meta);
    }
    for (int c = 0; c < fp32_copies; c++)
        free(b.W[c]);
    dsk_q4_free(&L);
    free(b.Q), free(b.W), free(b.x), free(b.y), free(ref);
    return 0;
}
