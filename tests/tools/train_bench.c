/* train_bench: training steps per second of a config on random tokens,
 * next to the machine's measured sgemm peak (make bench), or on a GPU
 * (tests/gpu/throughput.sh).
 *
 *   train_bench CONFIG_JSON B T STEPS THREADS [BACKEND [DTYPE [RECOMPUTE]]]
 *
 * BACKEND cpu (default) or cuda[:N]; DTYPE fp32 (default), bf16 or fp16
 * (the matrix products' precision); RECOMPUTE 0 or 1.  Prints one JSON
 * line: tokens_per_s, step_ms, gflops (model FLOPs: 3 x forward, not
 * counting recomputation), activation_bytes (what the batch allocates),
 * sgemm_gflops (cpu: a large square sgemm through the same BLAS).
 * With DSK_CUDA_PROFILE=1 the cuda backend's table (printed on stderr at
 * the end) covers the timed steps only, not the warm-up. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/progress.h"
#include "core/rng.h"
#include "dist/memory.h"
#include "model/model.h"
#include "ops/blas_kernels.h"
#include "train/optim.h"

#include "../../cuda/cuda_backend.h"
/* Weak: a build without nvcc has no cuda backend. */
#pragma weak dsk_cuda_profile_reset

static double sgemm_peak(void)
{
    int n = 1024;
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (size_t i = 0; i < (size_t)n * n; i++)
        a[i] = b[i] = 0.001f * (float)(i % 997);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = dsk_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double g = 2.0 * n * n * n / (dsk_now() - t0) / 1e9;
        if (g > best)
            best = g;
    }
    free(a), free(b), free(c);
    return best;
}

int main(int argc, char **argv)
{
    dsk_blas_choose_kernels(argv);   /* the kernels the tools run */
    if (argc < 6 || argc > 9) {
        fprintf(stderr, "usage: train_bench CONFIG_JSON B T STEPS THREADS [BACKEND [DTYPE [RECOMPUTE]]]\n");
        return 64;
    }
    const char *backend = argc > 6 ? argv[6] : "cpu", *dtype = argc > 7 ? argv[7] : "fp32";
    int recompute = argc > 8 ? atoi(argv[8]) : 0;
    int gemm_dtype = !strcmp(dtype, "bf16") ? DSK_DTYPE_BF16 : !strcmp(dtype, "fp16") ? DSK_DTYPE_FP16 : DSK_DTYPE_FP32;
    if (strcmp(dtype, "fp32") && gemm_dtype == DSK_DTYPE_FP32) {
        fprintf(stderr, "train_bench: dtype '%s': fp32, bf16 or fp16\n", dtype);
        return 64;
    }
    dsk_err err = {0};
    dsk_model_config cfg;
    if (dsk_config_load(&cfg, argv[1], &err)) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return 1;
    }
    int B = atoi(argv[2]), T = atoi(argv[3]), steps = atoi(argv[4]), threads = atoi(argv[5]);
    if (cfg.vocab_size <= 0) {   /* a preset as --show-config prints it without a tokenizer */
        fprintf(stderr, "train_bench: %s: vocab_size is %d: give it one (dsk-train --show-config ... --set vocab=N)\n",
                argv[1], cfg.vocab_size);
        return 64;
    }
    if (B < 1 || T < 1 || steps < 1 || threads < 0) {
        fprintf(stderr, "train_bench: B, T and STEPS must be at least 1, THREADS at least 0\n");
        return 64;
    }
    dsk_backend *be = dsk_backend_new(backend, threads, &err);
    if (!be) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return err.code;
    }
    be->gemm_dtype = gemm_dtype;
    dsk_model *m = dsk_model_create(&cfg, be);
    m->recompute = recompute;
    dsk_model_init_weights(m, 1);
    dsk_model_alloc_batch(m, B, T);
    size_t n = (size_t)B * T;
    int32_t *tok = malloc(n * 4), *tgt = malloc(n * 4), *pos = malloc(n * 4);
    dsk_rng r;
    dsk_rng_seed(&r, 2);
    for (size_t i = 0; i < n; i++) {
        tok[i] = (int32_t)(dsk_rng_next(&r) % (uint64_t)cfg.vocab_size);
        tgt[i] = (int32_t)(dsk_rng_next(&r) % (uint64_t)cfg.vocab_size);
        pos[i] = (int32_t)(i % (size_t)T);
    }
    dsk_batch b = {B, T, tok, tgt, pos, NULL};
    if (dsk_model_set_batch(m, &b, &err)) {
        fprintf(stderr, "train_bench: %s\n", err.msg);
        return 1;
    }
    dsk_adamw_opts o;
    dsk_adamw_defaults(&o);
    o.warmup = 0;
    dsk_optimizer *opt = dsk_optimizer_create(m, &o);
    /* MoE layers run as in training: capacity, balancing losses, statistics. */
    m->moe_run.train = 1;
    m->moe_run.aux_grad_scale = 1.0f;
    double t0 = 0, t_fwd = 0, t_bwd = 0, t_opt = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) {
            if (dsk_cuda_profile_reset)
                dsk_cuda_profile_reset(be);   /* (waits for the warm-up) */
            t0 = dsk_now();   /* step 0 warms up */
        }
        double a = dsk_now();
        dsk_model_zero_grad(m);
        dsk_model_forward(m, (float)(1.0 / m->n_targets));
        double b2 = dsk_now();
        dsk_model_backward(m);
        double c = dsk_now();
        dsk_optimizer_step(opt);
        if (s > 0) {
            t_fwd += b2 - a;
            t_bwd += c - b2;
            t_opt += dsk_now() - c;
        }
    }
    fprintf(stderr, "train_bench: forward %.1f ms, backward %.1f ms, optimizer %.1f ms per step\n",
            t_fwd * 1e3 / steps, t_bwd * 1e3 / steps, t_opt * 1e3 / steps);
    double dt = (dsk_now() - t0) / steps;
    double tok_s = (double)n / dt, gflops = 3 * dsk_config_flops_per_token(&cfg, T) * tok_s / 1e9;
    int cpu = !strcmp(be->name, "cpu");
    printf("{\"impl\":\"dsk\",\"backend\":\"%s\",\"dtype\":\"%s\",\"recompute\":%d,\"threads\":%d,"
           "\"tokens_per_s\":%.1f,\"step_ms\":%.2f,\"gflops\":%.2f,\"activation_bytes\":%zu,"
           "\"sgemm_gflops\":%.2f,\"blas_kernels\":\"%s\",\"loss\":%.4f}\n", be->name, dtype, recompute, be->threads, tok_s, dt * 1e3,
           gflops, dsk_mem_activations(&cfg, B, T, recompute, be->logits_budget), cpu ? sgemm_peak() : 0.0, dsk_blas_kernels(), m->loss_sum / m->n_targets);
    dsk_optimizer_free(opt);
    dsk_model_free(m);
    be->destroy(be);
    free(tok), free(tgt), free(pos);
    return 0;
}
