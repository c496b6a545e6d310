/* gemm's 16-bit operands: the float32 operands of a bf16 / fp16 product
 * rounded into device buffers that tensor cores read, and kept while
 * they are current.
 *
 * Why keep them: the model runs products on the same operand back to
 * back (q, k and v from one normalised input; gate and up from another;
 * in the backward, each output gradient twice, for dX and dW, and each
 * layer input once per weight it feeds).  Rounding an operand costs a
 * pass over it (4 bytes read, 2 written a value), which at the 1.3b
 * preset is about as many bytes as all the other element-wise work of a
 * step; reusing the copy saves about a third of those passes.
 *
 * When a copy is current: it is keyed by its source's address, length
 * and type (an operand inside a larger current copy, 16-byte aligned in
 * it, is served from it: the MoE experts' blocks of rows), and forgotten
 * as soon as anything may have written the source: every backend op but
 * gemm, gemm_add, gemm_grouped, rope, softmax_xent, sumsq and download
 * forgets them all (the op table wraps each in a flush,
 * cuda_backend.cu), so does every collective (comm_nccl.cu), and gemm,
 * gemm_add, gemm_grouped, rope and softmax_xent forget those their
 * outputs overlap.  So products share copies when nothing but those ops
 * comes between them, which is where the repeats are (and the LM head's
 * weight, whose copy lasts through its chunks of rows: products and
 * softmax_xent).  gemm_grouped rounds an operand whose groups cover one
 * span of memory (one after another, or each block twice) in one pass
 * before its products (dsk_cuda_half_prepare).
 *
 * Copies made by the producer: an op whose outputs go on to products
 * (rmsnorm_fwd's normalised rows, rmsnorm_bwd's dx, swiglu_fwd's
 * activation, swiglu_bwd's two gradients, attention_fwd's output,
 * attention_bwd's dV, the inverse rope's rotated gradient,
 * softmax_xent's gradient of the logits, moe_gather's rows in expert
 * order and moe_combine_bwd's gradient of the experts' outputs) writes
 * each output's 16-bit copy with it (dsk_cuda_half_produce,
 * dsk_half_out), from the value in
 * a register: 2 bytes more written a value instead of a conversion pass
 * (4 read, 2 written).  Its results are the same bits: the same float,
 * rounded the same way.  Eight slots: the largest group of products on
 * common operands, a q/k/v backward, touches seven (three gradients,
 * three weights, one input).
 *
 * The cost is device memory: the slots keep their buffers, each as large
 * as the largest operand it has held (at 1.3b, batch 8 x 2048, counted
 * over one step's products and copies: about 750 MiB, against 260 MiB
 * for the one buffer of converting afresh).  An allocation that fails
 * gives them back and tries again (dsk_cuda_half_release).
 * DSK_CUDA_HALF_CACHE=0
 * turns reuse off: every product converts both of its operands afresh
 * into one buffer, and no op writes copies (as before, and the reference
 * the tests compare it with). */
#include <stdint.h>
#include <stdio.h>

#include "cuda_internal.cuh"

/* Two arrays in one launch: a[0..na) into out_a, then b[0..nb) into out_b
 * (either count may be 0). */
template <typename H>
__global__ void k_round_half(H *__restrict__ out_a, const float *__restrict__ a, size_t na, H *__restrict__ out_b,
                             const float *__restrict__ b, size_t nb)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < na + nb; i += (size_t)gridDim.x * blockDim.x) {
        if (i < na)
            out_a[i] = dsk_to_half<H>(a[i]);
        else
            out_b[i - na] = dsk_to_half<H>(b[i - na]);
    }
}

/* The same four values a thread (16-byte loads, 8-byte stores), where
 * both counts are multiples of 4 and the arrays aligned (dsk_vec4_ok):
 * on an H200 the kernel above moved about 40% of the memory's peak. */
__global__ void k_round_half4(dsk_half_out out_a, const float4 *__restrict__ a, size_t na4, dsk_half_out out_b,
                              const float4 *__restrict__ b, size_t nb4)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < na4 + nb4; i += (size_t)gridDim.x * blockDim.x) {
        if (i < na4)
            out_a.put4(4 * i, a[i]);
        else
            out_b.put4(4 * (i - na4), b[i - na4]);
    }
}

static void round_half(dsk_cuda *cb, int dtype, void *out_a, const float *a, size_t na, void *out_b, const float *b,
                       size_t nb)
{
    if (na + nb == 0)
        return;
    const int threads = 256;
    const unsigned blocks = dsk_cuda_blocks(cb, na + nb, threads);
    dsk_cuda_prof_scope timed(cb, dtype == DSK_DTYPE_BF16 ? "operands to bf16" : "operands to fp16");
    const void *arrays[] = {a, b};
    const dsk_half_out ha = {out_a, dtype == DSK_DTYPE_BF16}, hb = {out_b, dtype == DSK_DTYPE_BF16};
    if (na % 4 == 0 && dsk_vec4_ok(nb, arrays, 2, ha, hb)) {
        k_round_half4<<<dsk_cuda_blocks(cb, (na + nb) / 4, threads), threads, 0, cb->stream>>>(
            ha, (const float4 *)a, na / 4, hb, (const float4 *)b, nb / 4);
        LAUNCHED(cb, "gemm: operands to 16 bits");
        return;
    }
    /* The kernels named with their type (the CPU emulation in tests/gpu/emu
     * cannot deduce a kernel's template arguments from a launch's). */
    if (dtype == DSK_DTYPE_BF16) {
        k_round_half<__nv_bfloat16><<<blocks, threads, 0, cb->stream>>>((__nv_bfloat16 *)out_a, a, na,
                                                                         (__nv_bfloat16 *)out_b, b, nb);
        LAUNCHED(cb, "gemm: operands to bf16");
    } else {
        k_round_half<__half><<<blocks, threads, 0, cb->stream>>>((__half *)out_a, a, na, (__half *)out_b, b, nb);
        LAUNCHED(cb, "gemm: operands to fp16");
    }
}

void dsk_cuda_round_bf16(dsk_cuda *cb, void *out_a, const float *a, size_t na, void *out_b, const float *b,
                         size_t nb)
{
    round_half(cb, DSK_DTYPE_BF16, out_a, a, na, out_b, b, nb);
}

static const char *type_name(int dtype) { return dtype == DSK_DTYPE_BF16 ? "bf16" : "fp16"; }

/* Without slots: both operands into the one buffer, B's part 256-byte
 * aligned as tensor-core kernels like it. */
static void one_buffer(dsk_cuda *cb, int dtype, const float *A, size_t na, const float *B, size_t nb, const void **Ah,
                       const void **Bh)
{
    size_t a_bytes = (na * 2 + 255) & ~(size_t)255, bytes = a_bytes + nb * 2;
    if (bytes > cb->gemm_half_len) {
        /* The old buffer may still be read by queued products. */
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
        if (cb->gemm_half)
            CUDA_CHECK(cudaFree(cb->gemm_half));
        cb->gemm_half = NULL;
        if (cudaMalloc(&cb->gemm_half, bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            cb->gemm_half_len = 0;
            dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes for %s operands on device %d", bytes,
                    type_name(dtype), cb->device);
        }
        cb->gemm_half_len = bytes;
    }
    char *base = (char *)cb->gemm_half;
    round_half(cb, dtype, base, A, na, base + a_bytes, B, nb);
    *Ah = base;
    *Bh = base + a_bytes;
}

/* The slot whose copy holds src[0..n): its own, or (the same test) a
 * larger one that contains it (a MoE expert's block of rows inside the whole layer's
 * copy), at *at values from its start.  Inside a larger copy only at a
 * multiple of 8 values: the 16-bit operand then stays 16-byte aligned,
 * as a fresh conversion's is, so that the product runs the same
 * algorithm and gives the same bits as with DSK_CUDA_HALF_CACHE=0. */
static int find(const dsk_cuda *cb, const float *src, size_t n, int dtype, size_t *at)
{
    /* As integers: src may lie in another allocation. */
    uintptr_t lo = (uintptr_t)src, hi = lo + n * sizeof(float);
    for (int i = 0; i < cb->half_slots; i++) {
        const dsk_cuda_half_slot *s = &cb->half[i];
        uintptr_t slo = (uintptr_t)s->src, shi = slo + s->n * sizeof(float);
        if (s->src && s->dtype == dtype && slo <= lo && hi <= shi && (lo - slo) % (8 * sizeof(float)) == 0) {
            *at = (lo - slo) / sizeof(float);
            return i;
        }
    }
    return -1;
}

/* The slot a new copy of `bytes` goes to, never `keep`: the smallest free
 * one big enough, else the biggest free one, else the least recently
 * used (so that slots grow, with a wait for the stream, as little as
 * possible). */
static int victim(const dsk_cuda *cb, size_t bytes, int keep)
{
    int best = -1, rank = 3;
    for (int i = 0; i < cb->half_slots; i++) {
        if (i == keep)
            continue;
        const dsk_cuda_half_slot *s = &cb->half[i];
        int r = !s->src ? (s->cap >= bytes ? 0 : 1) : 2;
        const dsk_cuda_half_slot *b = best >= 0 ? &cb->half[best] : NULL;
        if (r < rank || (r == rank && ((r == 0 && s->cap < b->cap) || (r == 1 && s->cap > b->cap) ||
                                       (r == 2 && s->used < b->used)))) {
            best = i;
            rank = r;
        }
    }
    return best;
}

/* Gives slot i room for `bytes`.  Out of memory, the other slots' buffers
 * (but `keep`'s) go back first, and the weights' copy (weights_copy.cu)
 * unless the caller holds a pointer into it (hold_weights), then it gives
 * up. */
static void reserve(dsk_cuda *cb, int i, int keep, size_t bytes, int dtype, int hold_weights)
{
    dsk_cuda_half_slot *s = &cb->half[i];
    if (s->cap >= bytes)
        return;
    dsk_cuda_prof_scope timed(cb, "16-bit copy's room grows (wait, free, allocate)");
    /* Queued products may still read the old buffers. */
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    if (s->buf)
        CUDA_CHECK(cudaFree(s->buf));
    s->buf = NULL;
    s->cap = 0;
    if (cudaMalloc(&s->buf, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        for (int j = 0; j < cb->half_slots; j++) {
            dsk_cuda_half_slot *o = &cb->half[j];
            if (j != i && j != keep && o->buf) {
                CUDA_CHECK(cudaFree(o->buf));
                *o = dsk_cuda_half_slot{};
            }
        }
        if (!hold_weights)
            dsk_cuda_weights_release(cb);
        if (cudaMalloc(&s->buf, bytes) != cudaSuccess) {
            (void)cudaGetLastError();
            s->buf = NULL;
            dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes for %s operands on device %d", bytes,
                    type_name(dtype), cb->device);
        }
        if (cb->verbose)
            fprintf(stderr, "cuda: %zu bytes for %s operands did not fit: the other 16-bit copies gave their memory "
                    "back (then they did)\n", bytes, type_name(dtype));
    }
    s->cap = bytes;
}

/* Slot for (src, n), filled by the caller (a conversion, or the kernel
 * that writes src) when *fresh; src's copy starts *at values into it
 * (0 when fresh). */
static int slot_for(dsk_cuda *cb, int dtype, const float *src, size_t n, int keep, int *fresh, size_t *at,
                    int hold_weights = 0)
{
    int i = find(cb, src, n, dtype, at);
    *fresh = i < 0;
    if (i < 0) {
        *at = 0;
        i = victim(cb, n * 2, keep);
        cb->half[i].src = NULL;   /* not current while it is refilled */
        reserve(cb, i, keep, n * 2, dtype, hold_weights);
        cb->half[i].src = src;
        cb->half[i].n = n;
        cb->half[i].dtype = dtype;
    }
    cb->half[i].used = ++cb->half_clock;
    return i;
}

void dsk_cuda_half_operands(dsk_cuda *cb, int dtype, const float *A, size_t na, const float *B, size_t nb,
                            const void **Ah, const void **Bh)
{
    if (cb->half_slots == 0) {
        one_buffer(cb, dtype, A, na, B, nb, Ah, Bh);
        return;
    }
    /* Weights have copies of their own (weights_copy.cu), counted with the
     * slots': reused, or converted (the whole buffer) when not current.
     * The other operands' slots first: out of memory, they may take the
     * weights' copy's memory, which they must not once a pointer into it
     * is held.  An operand whose weights' copy did not fit takes a slot
     * after all. */
    int new_a = 0, new_b = 0, ia = -1, ib = -1;
    size_t at_a = 0, at_b = 0;
    const int a_w = dsk_cuda_weights_hold(cb, dtype, A, na), b_w = dsk_cuda_weights_hold(cb, dtype, B, nb);
    if (!a_w)
        ia = slot_for(cb, dtype, A, na, -1, &new_a, &at_a);
    if (!b_w)
        ib = slot_for(cb, dtype, B, nb, ia, &new_b, &at_b);   /* the same slot when B is A */
    const void *wa = a_w ? dsk_cuda_weights_half(cb, dtype, A, na, &new_a) : NULL;
    const void *wb = b_w ? dsk_cuda_weights_half(cb, dtype, B, nb, &new_b) : NULL;
    if (a_w && !wa)
        ia = slot_for(cb, dtype, A, na, ib, &new_a, &at_a, wb != NULL);
    if (b_w && !wb)
        ib = slot_for(cb, dtype, B, nb, ia, &new_b, &at_b, wa != NULL);
    cb->half_misses += new_a + new_b;
    cb->half_hits += !new_a + !new_b;
    new_b = new_b && !wb && ib != ia;
    new_a = new_a && !wa;
    round_half(cb, dtype, new_a ? cb->half[ia].buf : NULL, A, new_a ? na : 0, new_b ? cb->half[ib].buf : NULL, B,
               new_b ? nb : 0);
    *Ah = wa ? wa : (const char *)cb->half[ia].buf + at_a * 2;
    *Bh = wb ? wb : (const char *)cb->half[ib].buf + at_b * 2;
}

void dsk_cuda_half_prepare(dsk_cuda *cb, const float *src, size_t n)
{
    int dtype = cb->be.gemm_dtype;
    if (cb->half_slots == 0 || n == 0 || (dtype != DSK_DTYPE_BF16 && dtype != DSK_DTYPE_FP16) ||
        dsk_cuda_weights_hold(cb, dtype, src, n))
        return;
    int fresh;
    size_t at;
    int i = slot_for(cb, dtype, src, n, -1, &fresh, &at);
    if (fresh) {
        round_half(cb, dtype, cb->half[i].buf, src, n, NULL, NULL, 0);
        cb->half_misses++;
    }
}

int dsk_cuda_half_current(dsk_cuda *cb, int dtype, const float *src, size_t n, const void **h)
{
    if (cb->half_slots == 0 || (dtype != DSK_DTYPE_BF16 && dtype != DSK_DTYPE_FP16))
        return 0;
    if (dsk_cuda_weights_hold(cb, dtype, src, n)) {   /* where gemm would look, and only there */
        *h = dsk_cuda_weights_current(cb, dtype, src, n);
        return *h != NULL;
    }
    size_t at;
    int i = find(cb, src, n, dtype, &at);
    if (i < 0)
        return 0;
    cb->half[i].used = ++cb->half_clock;
    *h = (const char *)cb->half[i].buf + at * 2;
    return 1;
}

void dsk_cuda_half_produce(dsk_cuda *cb, size_t n, const float *a, dsk_half_out *ha, const float *b,
                           dsk_half_out *hb)
{
    int dtype = cb->be.gemm_dtype;
    *ha = dsk_half_out{NULL, dtype == DSK_DTYPE_BF16};
    if (hb)
        *hb = *ha;
    if (cb->half_slots == 0 || n == 0 || (dtype != DSK_DTYPE_BF16 && dtype != DSK_DTYPE_FP16))
        return;
    /* The outputs are about to change: no copy of them is current (the
     * table's forget did it already; this holds without it too). */
    dsk_cuda_half_written(cb, a, n * sizeof(float));
    if (b)
        dsk_cuda_half_written(cb, b, n * sizeof(float));
    int fresh;
    size_t at;   /* 0: no copy overlapping a or b is current any more */
    int ia = slot_for(cb, dtype, a, n, -1, &fresh, &at);
    ha->p = cb->half[ia].buf;
    cb->half_produced++;
    if (b && b != a) {
        hb->p = cb->half[slot_for(cb, dtype, b, n, ia, &fresh, &at)].buf;
        cb->half_produced++;
    }
}

void dsk_cuda_half_forget(dsk_cuda *cb)
{
    for (int i = 0; i < cb->half_slots; i++)
        cb->half[i].src = NULL;
}

void dsk_cuda_half_written(dsk_cuda *cb, const void *p, size_t bytes)
{
    /* As integers: the buffers are separate allocations. */
    uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    for (int i = 0; i < cb->half_slots; i++) {
        dsk_cuda_half_slot *s = &cb->half[i];
        uintptr_t slo = (uintptr_t)s->src, shi = slo + s->n * sizeof(float);
        if (s->src && slo < hi && lo < shi)
            s->src = NULL;
    }
}

int dsk_cuda_half_release(dsk_cuda *cb)
{
    int any = dsk_cuda_weights_release(cb) | (cb->gemm_half != NULL);
    for (int i = 0; i < DSK_CUDA_HALF_SLOTS; i++)
        any |= cb->half[i].buf != NULL;
    if (!any)
        return 0;
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));   /* queued products may read them */
    for (int i = 0; i < DSK_CUDA_HALF_SLOTS; i++) {
        if (cb->half[i].buf)
            CUDA_CHECK(cudaFree(cb->half[i].buf));
        cb->half[i] = dsk_cuda_half_slot{};
    }
    if (cb->gemm_half)
        CUDA_CHECK(cudaFree(cb->gemm_half));
    cb->gemm_half = NULL;
    cb->gemm_half_len = 0;
    return 1;
}

void dsk_cuda_half_free(dsk_cuda *cb)
{
    if (cb->verbose && cb->half_hits + cb->half_misses)
        fprintf(stderr, "cuda: 16-bit gemm operands: %llu of %llu reused (%llu copies written by the ops that made "
                "their sources)\n", cb->half_hits, cb->half_hits + cb->half_misses, cb->half_produced);
    for (int i = 0; i < DSK_CUDA_HALF_SLOTS; i++)
        if (cb->half[i].buf)
            CUDA_CHECK(cudaFree(cb->half[i].buf));
    if (cb->gemm_half)
        CUDA_CHECK(cudaFree(cb->gemm_half));
}

extern "C" void dsk_cuda_half_stats(dsk_backend *be, unsigned long long *hits, unsigned long long *misses)
{
    const dsk_cuda *cb = (const dsk_cuda *)be;
    *hits = cb->half_hits;
    *misses = cb->half_misses;
}
