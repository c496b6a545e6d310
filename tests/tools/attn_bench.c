/* attn_bench: the flash attention alone, forward and backward, in each
 * precision a backend has (tests/gpu/throughput.sh on a GPU: what the
 * tensor-core kernels buy over the fp32 ones).
 *
 *   attn_bench BACKEND B T H KV HD [REPS]
 *
 * Causal attention (one document a row) on random inputs, REPS timed
 * calls (default 5) after one that warms up, with gemm_dtype fp32 and
 * then bf16 (on cuda: the fp32 kernels, then the bf16 tensor-core ones,
 * WMMA's ("kernels":"wmma"), mma.sync's ("mma"), those in blocks of 8
 * warps ("mma8"), the default's ("auto": mma.sync's with tiles
 * double-buffered by cp.async) and DSK_CUDA_ATTN=wide's ("wide": those
 * with 32 query rows a warp), DSK_CUDA_ATTN=stored's ("stored": dQ
 * from the dS the dK/dV kernel kept) and cuDNN's ("cudnn", when libcudnn
 * loads; "cudnn refused: auto" when it had no plan and the default's
 * kernels ran, cuDNN's reason on stderr); on cpu the attention is fp32
 * either way).  Prints
 * one JSON line per run: fwd_ms, bwd_ms and the TFLOPS of each, counting the products
 * a causal attention needs (forward 2 of them, T^2/2 x HD multiply-adds
 * each a head; backward 5), not the skipped tiles' work. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/progress.h"
#include "core/rng.h"
#include "ops/backend.h"

#include "../../cuda/cuda_backend.h"

#pragma weak dsk_cuda_set_attn
#pragma weak dsk_cuda_cudnn_available
#pragma weak dsk_cuda_cudnn_runs

static float *random_floats(dsk_rng *rng, size_t n)
{
    float *h = malloc(n * sizeof *h);
    if (!h)
        dsk_die(EX_OSERR, "out of memory");
    for (size_t i = 0; i < n; i++)
        h[i] = (float)(dsk_rng_uniform(rng) * 2 - 1);
    return h;
}

static void *upload(dsk_backend *be, const void *host, size_t bytes)
{
    void *d = be->alloc(be, bytes);
    be->upload(be, d, host, bytes);
    return d;
}

/* Waits for the backend's queue: a download returns when it is done. */
static void finish(dsk_backend *be, const float *dev)
{
    float x;
    be->download(be, &x, dev, sizeof x);
}

int main(int argc, char **argv)
{
    dsk_set_progname("attn_bench");
    if (argc < 7 || argc > 8)
        dsk_die(EX_USAGE, "usage: attn_bench BACKEND B T H KV HD [REPS]");
    int B = atoi(argv[2]), T = atoi(argv[3]), H = atoi(argv[4]), KV = atoi(argv[5]), hd = atoi(argv[6]);
    int reps = argc > 7 ? atoi(argv[7]) : 5;
    if (B < 1 || T < 1 || H < 1 || KV < 1 || H % KV || hd < 1 || hd > 256 || reps < 1)
        dsk_die(EX_USAGE, "B, T, H, KV (dividing H), HD (1 to 256) and REPS must be positive");
    dsk_err err = {0};
    dsk_backend *be = dsk_backend_new(argv[1], 0, &err);
    if (!be)
        dsk_die(err.code, "%s", err.msg);

    dsk_rng rng;
    dsk_rng_seed(&rng, 1);
    size_t nq = (size_t)B * T * H * hd, nk = (size_t)B * T * KV * hd, nl = (size_t)B * H * T;
    float *hq = random_floats(&rng, nq), *hk = random_floats(&rng, nk), *hv = random_floats(&rng, nk);
    float *hdo = random_floats(&rng, nq), alpha = 1;
    int32_t *hpos = malloc((size_t)B * T * sizeof *hpos);
    for (size_t i = 0; i < (size_t)B * T; i++)
        hpos[i] = (int32_t)(i % (size_t)T);
    float *q = upload(be, hq, nq * 4), *k = upload(be, hk, nk * 4), *v = upload(be, hv, nk * 4);
    float *dout = upload(be, hdo, nq * 4), *al = upload(be, &alpha, 4);
    int32_t *pos = upload(be, hpos, (size_t)B * T * 4);
    float *out = be->alloc(be, nq * 4), *lse = be->alloc(be, nl * 4);
    float *dq = be->alloc(be, nq * 4), *dk = be->alloc(be, nk * 4), *dv = be->alloc(be, nk * 4);
    dsk_attn_shape s = {B, T, H, KV, hd, DSK_ATTN_GLOBAL, 0, 1};
    /* Multiply-adds of one product over the causal triangle, all heads. */
    double macs = (double)B * H * ((double)T * (T + 1) / 2) * hd;

    static const struct {
        int dtype;
        const char *name;
        int kernels;   /* a dsk_cuda_attn; -1: the backend has one kind */
        const char *label;   /* "kernels" in the output, on cuda */
    } runs[] = {{DSK_DTYPE_FP32, "fp32", -1, "fp32"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_WMMA, "wmma"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_MMA, "mma"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_MMA8, "mma8"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_AUTO, "auto"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_WIDE, "wide"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_STORED, "stored"},
                {DSK_DTYPE_BF16, "bf16", DSK_CUDA_ATTN_CUDNN, "cudnn"}};
    int cuda = dsk_cuda_set_attn && !strcmp(be->name, "cuda");
    for (size_t x = 0; x < sizeof runs / sizeof *runs; x++) {
        if (!cuda && runs[x].kernels != -1 && runs[x].kernels != DSK_CUDA_ATTN_AUTO)
            continue;   /* the cpu's bf16: once */
        char why[512];
        if (cuda && runs[x].kernels == DSK_CUDA_ATTN_CUDNN && !dsk_cuda_cudnn_available(why, sizeof why)) {
            fprintf(stderr, "attn_bench: no cudnn row: %s\n", why);
            continue;
        }
        long dnn_runs = cuda ? dsk_cuda_cudnn_runs(be) : 0;
        if (cuda && runs[x].kernels >= 0)
            dsk_cuda_set_attn(be, (dsk_cuda_attn)runs[x].kernels);
        be->gemm_dtype = runs[x].dtype;
        double t_fwd = 0, t_bwd = 0;
        for (int r = 0; r <= reps; r++) {   /* r 0 warms up */
            double t0 = dsk_now();
            be->attention_fwd(be, out, lse, NULL, NULL, NULL, q, k, v, pos, al, &s);
            finish(be, out);
            double t1 = dsk_now();
            be->attention_bwd(be, dq, dk, dv, NULL, dout, out, q, k, v, lse, NULL, NULL, NULL, pos, al, &s);
            finish(be, dq);
            double t2 = dsk_now();
            if (r) {
                t_fwd += t1 - t0;
                t_bwd += t2 - t1;
            }
        }
        t_fwd /= reps;
        t_bwd /= reps;
        const char *kernels = cuda ? runs[x].label : "cpu";
        if (cuda && runs[x].kernels == DSK_CUDA_ATTN_CUDNN && dsk_cuda_cudnn_runs(be) == dnn_runs)
            kernels = "cudnn refused: auto";   /* its reason is on stderr */
        printf("{\"backend\":\"%s\",\"dtype\":\"%s\",\"kernels\":\"%s\",\"B\":%d,\"T\":%d,\"H\":%d,\"KV\":%d,"
               "\"hd\":%d,\"fwd_ms\":%.3f,\"bwd_ms\":%.3f,\"fwd_tflops\":%.4g,\"bwd_tflops\":%.4g}\n",
               be->name, runs[x].name, kernels, B, T, H, KV, hd, 1e3 * t_fwd, 1e3 * t_bwd, 2 * 2 * macs / t_fwd / 1e12,
               5 * 2 * macs / t_bwd / 1e12);
    }

    float *bufs[] = {q, k, v, dout, al, out, lse, dq, dk, dv};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        be->free(be, bufs[i]);
    be->free(be, pos);
    be->destroy(be);
    free(hq), free(hk), free(hv), free(hdo), free(hpos);
    return 0;
}
