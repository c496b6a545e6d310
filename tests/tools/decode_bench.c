/* decode_bench: a decoding step's product through a backend, y = x Wᵀ
 * with one row of x, from int4 codes (register_int4) against the fp32
 * weights (tests/gpu/throughput.sh on a GPU: what the int4 kernel buys
 * over cuBLAS; on the cpu, int4_bench measures the kernels themselves).
 *
 *   decode_bench BACKEND ROWS COLS [GROUP [REPS]]
 *
 * A random 4-bit layer (GROUP columns per scale, default 128) registered
 * as int4, and its dequantized weights W, each in enough copies to make
 * 256 MiB (at most 64) that the products take in turn, so that a GPU's
 * L2 cache does not hold them.  REPS products of each (default 200)
 * after a warm-up; the backend's queue is drained before and after (a
 * download).  Prints one
 * JSON line: microseconds per product and the weight bytes read per
 * second of each (int4: codes, scales and zero points; fp32: W), and
 * their ratio. */
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/progress.h"
#include "core/rng.h"
#include "ops/backend.h"
#include "quant/int4.h"

/* Products cycling over n weights (distinct buffers: on a GPU the
 * set is made larger than the L2 cache, so each product streams its
 * weights from memory, as a model's layers in turn do); seconds each. */
static double time_products(dsk_backend *be, int reps, int rows, int cols, const float *x, float *const *W, int n,
                            float *y)
{
    float sink;
    for (int i = 0; i < n; i++)   /* warm-up */
        be->gemm(be, 0, 1, 1, rows, cols, 1.0f, x, W[i], 0.0f, y);
    be->download(be, &sink, y, sizeof sink);
    double t0 = dsk_now();
    for (int r = 0; r < reps; r++)
        be->gemm(be, 0, 1, 1, rows, cols, 1.0f, x, W[r % n], 0.0f, y);
    be->download(be, &sink, y, sizeof sink);
    return (dsk_now() - t0) / reps;
}

/* Copies of a weight set of `bytes` that make up 256 MiB, 1 to 64. */
static int copies_for(double bytes)
{
    double c = (double)(256 << 20) / bytes;
    return c < 1 ? 1 : c > 64 ? 64 : (int)c + 1;
}

int main(int argc, char **argv)
{
    dsk_set_progname("decode_bench");
    if (argc < 4 || argc > 6)
        dsk_die(EX_USAGE, "usage: decode_bench BACKEND ROWS COLS [GROUP [REPS]]");
    int rows = atoi(argv[2]), cols = atoi(argv[3]);
    int G = argc > 4 ? atoi(argv[4]) : 128, reps = argc > 5 ? atoi(argv[5]) : 200;
    if (rows < 8 || cols < 8 || rows % 8 || cols % 8 || G < 1 || cols % G || reps < 1)
        dsk_die(EX_USAGE, "ROWS and COLS must be multiples of 8, GROUP must divide COLS, REPS positive");
    dsk_err err = {0};
    dsk_backend *be = dsk_backend_new(argv[1], 0, &err);
    if (!be)
        dsk_die(err.code, "%s", err.msg);

    dsk_rng rng;
    dsk_rng_seed(&rng, 1);
    size_t nw = (size_t)rows * cols, ng = (size_t)(cols / G) * rows;
    uint8_t *codes = dsk_xmalloc(nw), *zeros = dsk_xmalloc(ng);
    float *scales = dsk_xmalloc(ng * sizeof *scales), *w = dsk_xmalloc(nw * sizeof *w);
    float *hx = dsk_xmalloc((size_t)cols * sizeof *hx);
    for (size_t i = 0; i < nw; i++)
        codes[i] = (uint8_t)(dsk_rng_next(&rng) & 15);
    for (size_t i = 0; i < ng; i++) {
        zeros[i] = (uint8_t)(1 + dsk_rng_next(&rng) % 15);
        scales[i] = (float)(0.001 + 0.01 * dsk_rng_uniform(&rng));
    }
    for (int i = 0; i < cols; i++)
        hx[i] = (float)(dsk_rng_uniform(&rng) * 2 - 1);
    dsk_q4_linear L = {.rows = rows, .cols = cols, .group_size = G};
    if (dsk_q4_pack(&L, codes, zeros, scales, NULL, &err) || dsk_q4_prepare(&L, &err))
        dsk_die(err.code, "%s", err.msg);
    dsk_q4_dequantize(&L, w);

    if (!be->register_int4)
        dsk_die(EX_UNAVAILABLE, "backend %s has no int4 products", be->name);

    /* Bytes a product reads of the weights: a nibble a weight and an fp32
     * scale and zero point per group and row (the runtime layout's). */
    double q4_bytes = nw / 2.0 + ng * 8.0, f32_bytes = nw * 4.0;
    int nq = copies_for(q4_bytes), nf = copies_for(f32_bytes);
    /* The int4 weights are keys: register_int4 copies the codes (cuda) and
     * the product reads those, never the key's buffer. */
    float **keys = dsk_xmalloc((size_t)nq * sizeof *keys), **wf = dsk_xmalloc((size_t)nf * sizeof *wf);
    for (int i = 0; i < nq; i++) {
        keys[i] = be->alloc(be, sizeof(float));
        be->register_int4(be, keys[i], &L);
    }
    for (int i = 0; i < nf; i++) {
        wf[i] = be->alloc(be, nw * 4);
        be->upload(be, wf[i], w, nw * 4);
    }
    float *x = be->alloc(be, (size_t)cols * 4), *y = be->alloc(be, (size_t)rows * 4);
    be->upload(be, x, hx, (size_t)cols * 4);

    double t_q4 = time_products(be, reps, rows, cols, x, keys, nq, y);
    double t_f32 = time_products(be, reps, rows, cols, x, wf, nf, y);
    printf("{\"backend\":\"%s\",\"rows\":%d,\"cols\":%d,\"group\":%d,\"int4_us\":%.2f,\"fp32_us\":%.2f,"
           "\"int4_gbps\":%.1f,\"fp32_gbps\":%.1f,\"speedup\":%.2f}\n",
           be->name, rows, cols, G, 1e6 * t_q4, 1e6 * t_f32, q4_bytes / t_q4 / 1e9, f32_bytes / t_f32 / 1e9,
           t_f32 / t_q4);

    for (int i = 0; i < nq; i++)
        be->free(be, keys[i]);
    for (int i = 0; i < nf; i++)
        be->free(be, wf[i]);
    free(keys), free(wf);
    be->free(be, x);
    be->free(be, y);
    be->destroy(be);   /* before L: the backend holds a pointer to it */
    dsk_q4_free(&L);
    free(codes), free(zeros), free(scales), free(w), free(hx);
    return 0;
}
