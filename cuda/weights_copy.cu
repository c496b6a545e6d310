/* Registered weights' 16-bit copies: a model's parameters in the type of
 * its bf16 / fp16 products, kept current instead of converted for every
 * product that reads a weight.
 *
 * Why: weights change once a step (AdamW), but every product reads one,
 * and in gemm_operands.cu's slots a weight's copy rarely survives until
 * it is read again (the forward's products and the backward's come
 * between).  Converting them is a pass over each weight per product that
 * reads it: at the 1.3b preset about 16 GB of traffic a step, and a MoE
 * layer's experts, each read by a product of its own in a loop, more.
 * Here the model registers its parameter buffer once (register_weights,
 * lib/model/model.c); the first bf16 / fp16 product that reads a weight
 * converts the whole buffer (2 bytes a parameter of device memory), and
 * from then on:
 *   - adamw writes each parameter's 16-bit value as it writes the float
 *     (kernels_optim.cu, dsk_cuda_weights_out): 2 bytes more a parameter
 *     once a step;
 *   - upload (a checkpoint loaded, MoE's bias update) and weights_written
 *     (ZeRO's all-gather of the other ranks' updates, lib/dist/zero.c)
 *     convert what they wrote;
 *   - any other op that writes into the buffer (copy, zero, add, scale;
 *     the model never does) makes the copy not current, and the next
 *     product converts the whole buffer again.
 * An allocation that fails gives the copies' memory back with the slots'
 * (dsk_cuda_half_release): the buffers stay registered, and the next
 * product makes the copy again, or, when that fails too, forgets the
 * buffer and converts per product as before.
 * The values are the same bits a conversion gives (the same rounding of
 * the same float), so results do not change; tests/gpu/train_check.sh
 * checks a run against DSK_CUDA_HALF_CACHE=0, which turns these copies
 * off with the slots.  A product of another type than the copy's (fp16
 * after bf16) converts the buffer to that type. */
#include <stdint.h>
#include <stdio.h>

#include "cuda_internal.cuh"

template <typename H> __global__ void k_weights_round(H *__restrict__ out, const float *__restrict__ w, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = dsk_to_half<H>(w[i]);
}

/* w[lo, hi) into e's copy, in e's type. */
static void convert(dsk_cuda *cb, dsk_cuda_wcopy *e, size_t lo, size_t hi)
{
    if (hi <= lo)
        return;
    const int threads = 256;
    const unsigned blocks = dsk_cuda_blocks(cb, hi - lo, threads);
    dsk_cuda_prof_scope timed(cb, e->dtype == DSK_DTYPE_BF16 ? "weights to bf16" : "weights to fp16");
    if (e->dtype == DSK_DTYPE_BF16) {
        k_weights_round<__nv_bfloat16><<<blocks, threads, 0, cb->stream>>>((__nv_bfloat16 *)e->half + lo, e->w + lo,
                                                                            hi - lo);
        LAUNCHED(cb, "weights to bf16");
    } else {
        k_weights_round<__half><<<blocks, threads, 0, cb->stream>>>((__half *)e->half + lo, e->w + lo, hi - lo);
        LAUNCHED(cb, "weights to fp16");
    }
}

/* The entry whose buffer holds p[0..n), or NULL. */
static dsk_cuda_wcopy *holder(dsk_cuda *cb, const void *p, size_t n)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + n * sizeof(float);
    for (int i = 0; i < DSK_CUDA_WEIGHT_COPIES; i++) {
        dsk_cuda_wcopy *e = &cb->wcopy[i];
        uintptr_t wlo = (uintptr_t)e->w, whi = wlo + e->n * sizeof(float);
        if (e->w && lo >= wlo && hi <= whi && (lo - wlo) % sizeof(float) == 0)
            return e;
    }
    return NULL;
}

static void forget(dsk_cuda_wcopy *e)
{
    if (e->half)
        CUDA_CHECK(cudaFree(e->half));
    *e = dsk_cuda_wcopy{NULL, 0, NULL, -1};
}

void dsk_cuda_register_weights(dsk_backend *be, const float *w, size_t n)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!w || !n || cb->half_slots == 0)   /* DSK_CUDA_HALF_CACHE=0: no copies of anything */
        return;
    dsk_cuda_wcopy *free_e = NULL;
    for (int i = 0; i < DSK_CUDA_WEIGHT_COPIES; i++) {
        dsk_cuda_wcopy *e = &cb->wcopy[i];
        if (e->w == w) {   /* again: its values are new */
            CUDA_CHECK(cudaStreamSynchronize(cb->stream));
            forget(e);
        }
        if (!e->w && !free_e)
            free_e = e;
    }
    if (free_e)   /* more buffers than entries: the rest go through the slots */
        *free_e = dsk_cuda_wcopy{w, n, NULL, -1};
}

/* A weight whose 16-bit copy starts 16-byte aligned (its offset in the
 * buffer a multiple of 8): the others convert through the slots.  On an
 * H200, cuBLAS ran other kernels on a copy only 2-byte aligned (every
 * weight after a hybrid layer's one-float alpha) than on the slots'
 * buffers, so the same product gave other bits with the copies than
 * without, and ran slower. */
static dsk_cuda_wcopy *aligned_holder(dsk_cuda *cb, const float *p, size_t n)
{
    dsk_cuda_wcopy *e = holder(cb, p, n);
    return e && (size_t)(p - e->w) % 8 == 0 ? e : NULL;
}

int dsk_cuda_weights_hold(dsk_cuda *cb, int dtype, const float *p, size_t n)
{
    return (dtype == DSK_DTYPE_BF16 || dtype == DSK_DTYPE_FP16) && aligned_holder(cb, p, n) != NULL;
}

/* p's place in e's 16-bit copy. */
static const void *copy_at(const dsk_cuda_wcopy *e, const float *p)
{
    return (const char *)e->half + (size_t)(p - e->w) * 2;
}

const void *dsk_cuda_weights_half(dsk_cuda *cb, int dtype, const float *p, size_t n, int *fresh)
{
    dsk_cuda_wcopy *e = aligned_holder(cb, p, n);
    *fresh = 0;
    if (!e || (dtype != DSK_DTYPE_BF16 && dtype != DSK_DTYPE_FP16))
        return NULL;
    if (e->dtype != dtype) {
        if (!e->half && cudaMalloc(&e->half, e->n * 2) != cudaSuccess) {
            /* Not worth failing a run for: the products convert as before. */
            (void)cudaGetLastError();
            if (cb->verbose)
                fprintf(stderr, "cuda: a 16-bit copy of %zu weights did not fit: converting them per product\n",
                        e->n);
            e->half = NULL;
            forget(e);
            return NULL;
        }
        e->dtype = dtype;
        convert(cb, e, 0, e->n);
        *fresh = 1;
    }
    return copy_at(e, p);
}

const void *dsk_cuda_weights_current(dsk_cuda *cb, int dtype, const float *p, size_t n)
{
    dsk_cuda_wcopy *e = aligned_holder(cb, p, n);
    if (!e || !e->half || e->dtype != dtype)
        return NULL;
    return copy_at(e, p);
}

dsk_half_out dsk_cuda_weights_out(dsk_cuda *cb, const float *p, size_t n)
{
    dsk_cuda_wcopy *e = holder(cb, p, n);
    if (!e || e->dtype < 0)
        return dsk_half_out{NULL, 0};
    return dsk_half_out{(char *)e->half + (size_t)(p - e->w) * 2, e->dtype == DSK_DTYPE_BF16};
}

/* Each registered buffer's part in [p, p + bytes): e, and the float range. */
template <class Each> static void each_overlap(dsk_cuda *cb, const void *p, size_t bytes, Each each)
{
    uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    for (int i = 0; i < DSK_CUDA_WEIGHT_COPIES; i++) {
        dsk_cuda_wcopy *e = &cb->wcopy[i];
        uintptr_t wlo = (uintptr_t)e->w, whi = wlo + e->n * sizeof(float);
        if (e->w && lo < whi && wlo < hi) {
            uintptr_t a = lo > wlo ? lo : wlo, b = hi < whi ? hi : whi;
            /* whole floats: a part-written float's copy is redone too */
            each(e, (size_t)(a - wlo) / sizeof(float), (size_t)(b - wlo + sizeof(float) - 1) / sizeof(float));
        }
    }
}

void dsk_cuda_weights_refresh(dsk_cuda *cb, const void *p, size_t bytes)
{
    each_overlap(cb, p, bytes, [&](dsk_cuda_wcopy *e, size_t a, size_t b) {
        if (e->dtype >= 0)
            convert(cb, e, a, b);
    });
}

void dsk_cuda_weights_written(dsk_backend *be, const float *w, size_t n)
{
    dsk_cuda_weights_refresh(dsk_cuda_of(be), w, n * sizeof(float));
}

void dsk_cuda_weights_stale(dsk_cuda *cb, const void *p, size_t bytes)
{
    each_overlap(cb, p, bytes, [](dsk_cuda_wcopy *e, size_t, size_t) { e->dtype = -1; });
}

void dsk_cuda_weights_freed(dsk_cuda *cb, const void *p)
{
    for (int i = 0; i < DSK_CUDA_WEIGHT_COPIES; i++)
        if (cb->wcopy[i].w && cb->wcopy[i].w == p)
            forget(&cb->wcopy[i]);   /* the caller waited for the stream */
}

int dsk_cuda_weights_release(dsk_cuda *cb)
{
    int any = 0;
    for (int i = 0; i < DSK_CUDA_WEIGHT_COPIES; i++) {
        dsk_cuda_wcopy *e = &cb->wcopy[i];
        if (e->half) {
            if (!any)
                CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* queued products may read them */
            CUDA_CHECK(cudaFree(e->half));
            e->half = NULL;
            e->dtype = -1;
            any = 1;
        }
    }
    return any;
}

void dsk_cuda_weights_free(dsk_cuda *cb)
{
    for (int i = 0; i < DSK_CUDA_WEIGHT_COPIES; i++)
        if (cb->wcopy[i].w)
            forget(&cb->wcopy[i]);
}
