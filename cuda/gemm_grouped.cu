/* gemm_grouped: a MoE layer's expert products in one call.
 *
 * fp32: one cublasGemmGroupedBatchedEx (cuBLAS 12.5+), every product a
 * group of its own (its M, N, K, leading dimensions and scalars), the
 * row-major swap of cuda_backend.cu's gemm applied per group.  TF32 as
 * gemm: the handle's math mode (DSK_CUDA_TF32=1) decides.
 *
 * bf16 / fp16: a loop over gemm (the cuBLASLt plans, ragged: planned
 * by their shapes rounded up, gemm_lt.cu; an operand whose groups cover
 * one span of memory rounded to 16 bits once, not per group), by
 * choice: the
 * grouped call takes 16-bit operands only with a 16-bit output, and
 * ours is float32; each group's operands are converted by gemm anyway.
 * The loop is also the way when cuBLAS has no grouped call (before 12.5)
 * or refuses it, and for a single product.  With
 * DSK_CUDA_GROUPED_STREAMS > 1 the loop's products go to side streams
 * (grouped_on_side_streams).
 *
 * The A, B and C pointer arrays must be in device memory.  They travel
 * as the by-value argument of a one-block kernel that stores them there:
 * CUDA copies a launch's arguments when it is queued, so there is no
 * host buffer to keep alive until the stream reaches the copy, no pinned
 * staging and no wait; and the device array is only overwritten by the
 * next call's kernel, which the stream runs after this call's product.
 * (cudaMemcpyAsync from pageable memory may wait for the stream, and
 * from pinned memory would need the buffer kept until the copy ran.)
 * The shapes, leading dimensions and scalars are host arrays, which
 * cuBLAS reads during the call. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.cuh"

/* Pointers per launch: 3840 bytes, with the other two arguments inside
 * the 4 KiB of kernel arguments every device takes (a layer of 160
 * experts in one launch). */
#define PTRS_PER_LAUNCH 480

struct ptr_chunk {
    const void *p[PTRS_PER_LAUNCH];
};
static_assert(sizeof(ptr_chunk) + sizeof(void *) + sizeof(int) <= 4096, "kernel arguments past 4 KiB");

__global__ void k_put_ptrs(const void **__restrict__ dst, ptr_chunk c, int n)
{
    int i = threadIdx.x;
    if (i < n)
        dst[i] = c.p[i];
}

/* From now on gemm_grouped loops over gemm; says why once (DSK_CUDA_VERBOSE=1). */
static void to_loop(dsk_cuda *cb, const char *why)
{
    cb->grouped_loop = 1;
    if (cb->verbose)
        fprintf(stderr, "cuda: gemm_grouped: %s: a loop over gemm does fp32 products too\n", why);
}

/* The device pointer array, room for n pointers (the old one may still
 * be read by a queued product). */
static void **grouped_ptrs(dsk_cuda *cb, size_t n)
{
    if (n > cb->grouped_ptrs_len) {
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
        if (cb->grouped_ptrs)
            CUDA_CHECK(cudaFree(cb->grouped_ptrs));
        cb->grouped_ptrs = NULL;
        size_t len = n < 1024 ? 1024 : n + n / 2;
        if (cudaMalloc((void **)&cb->grouped_ptrs, len * sizeof(void *)) != cudaSuccess) {
            (void)cudaGetLastError();
            cb->grouped_ptrs_len = 0;
            dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes for gemm_grouped on device %d",
                    len * sizeof(void *), cb->device);
        }
        cb->grouped_ptrs_len = len;
    }
    return cb->grouped_ptrs;
}

/* The host arrays of n groups, carved from one buffer kept between calls. */
typedef struct host_arrays {
    const void **ptrs;               /* A (cuBLAS's: our B), B (our A), C: n each */
    cublasOperation_t *op_a, *op_b;
    int *m, *n, *k, *lda, *ldb, *ldc, *size;
    float *alpha, *beta;
} host_arrays;

static host_arrays grouped_host(dsk_cuda *cb, size_t n)
{
    size_t per = 3 * sizeof(void *) + 2 * sizeof(cublasOperation_t) + 7 * sizeof(int) + 2 * sizeof(float);
    if (n * per > cb->grouped_host_len) {
        free(cb->grouped_host);
        cb->grouped_host_len = (n < 256 ? 256 : n + n / 2) * per;
        cb->grouped_host = dsk_xmalloc(cb->grouped_host_len);
    }
    host_arrays h;
    char *p = (char *)cb->grouped_host;   /* pointers first: every part stays aligned */
    h.ptrs = (const void **)p, p += 3 * n * sizeof(void *);
    h.op_a = (cublasOperation_t *)p, p += n * sizeof(cublasOperation_t);
    h.op_b = (cublasOperation_t *)p, p += n * sizeof(cublasOperation_t);
    int *ip = (int *)p;
    h.m = ip, h.n = ip + n, h.k = ip + 2 * n, h.lda = ip + 3 * n, h.ldb = ip + 4 * n, h.ldc = ip + 5 * n;
    h.size = ip + 6 * n;
    h.alpha = (float *)(ip + 7 * n);
    h.beta = h.alpha + n;
    return h;
}

/* Group g has a product to do (else its C is left as it is). */
static inline int nonempty(const int *M, const int *N, const int *K, int g) { return M[g] > 0 && N[g] > 0 && K[g] > 0; }

/* When the nonempty groups' A (is_b 0: M x K each) or B (K x N) cover
 * one span of memory without gaps (the experts' blocks of rows one after
 * another, or each twice: gate's and up's products on the same rows),
 * that span's 16-bit copy, made at once (dsk_cuda_half_prepare); each
 * product then reads its block of it.  Blocks that leave a gap, or lie
 * in different buffers, are left to their products. */
static void prepare_span(dsk_cuda *cb, int count, const int *M, const int *N, const int *K, const float *const *X,
                         int is_b)
{
    typedef struct {
        const float *lo, *hi;
    } block;
    block *b = (block *)dsk_xmalloc((size_t)count * sizeof *b);
    int n = 0;
    for (int g = 0; g < count; g++)
        if (nonempty(M, N, K, g)) {
            /* In start order (insertion: a few dozen groups). */
            block x = {X[g], X[g] + (size_t)K[g] * (is_b ? N[g] : M[g])};
            int i = n++;
            for (; i > 0 && b[i - 1].lo > x.lo; i--)
                b[i] = b[i - 1];
            b[i] = x;
        }
    const float *end = n ? b[0].hi : NULL;
    int covered = n > 0;
    for (int i = 1; i < n && covered; i++) {
        covered = b[i].lo <= end;
        end = b[i].hi > end ? b[i].hi : end;
    }
    if (covered)
        dsk_cuda_half_prepare(cb, b[0].lo, (size_t)(end - b[0].lo));
    free(b);
}

/* DSK_CUDA_GROUPED_STREAMS=S > 1: the 16-bit products spread over S side
 * streams, forked from the op's stream and joined back to it, so that
 * the experts' products (each a wave or two of tiles at moe-1.3b's
 * shapes) run side by side instead of one after another.  Only when every
 * operand's copy is already current (after prepare_span): a
 * conversion on a side stream could overwrite a slot another stream's
 * product still reads.  Each product is the one the loop would run (the
 * same plan and algorithm, its own workspace), so the same bits; off with
 * the profile (its events time one stream).  0: nothing queued, the loop
 * does the call. */
static int grouped_on_side_streams(dsk_cuda *cb, int ta, int tb, int count, const int *M, const int *N, const int *K,
                                   float alpha, const float *const *A, const float *const *B, float beta,
                                   float *const *C)
{
    const int streams = cb->grouped_streams, dtype = cb->be.gemm_dtype;
    if (streams < 2 || cb->prof || !cb->lt || cb->half_slots == 0 ||
        (dtype != DSK_DTYPE_BF16 && dtype != DSK_DTYPE_FP16) || !dsk_cuda_lt_side_work(cb, streams))
        return 0;
    /* The outputs' copies go stale first (as gemm does per product), then
     * every operand must have a current copy. */
    for (int g = 0; g < count; g++)
        if (nonempty(M, N, K, g))
            dsk_cuda_half_written(cb, C[g], (size_t)M[g] * N[g] * sizeof(float));
    /* The host arrays kept between calls: their pointers for the copies,
     * their sizes for the refusals. */
    const host_arrays room = grouped_host(cb, (size_t)count);
    const void **h = room.ptrs;
    int *refused = room.size;
    for (int g = 0; g < count; g++)
        if (nonempty(M, N, K, g) &&
            (!dsk_cuda_half_current(cb, dtype, A[g], (size_t)M[g] * K[g], &h[2 * g]) ||
             !dsk_cuda_half_current(cb, dtype, B[g], (size_t)K[g] * N[g], &h[2 * g + 1])))
            return 0;
    if (!cb->side[0]) {
        CUDA_CHECK(cudaEventCreateWithFlags(&cb->side_fork, cudaEventDisableTiming));
        for (int i = 0; i < DSK_CUDA_SIDE_STREAMS; i++) {
            CUDA_CHECK(cudaStreamCreateWithFlags(&cb->side[i], cudaStreamNonBlocking));
            CUDA_CHECK(cudaEventCreateWithFlags(&cb->side_done[i], cudaEventDisableTiming));
        }
    }
    CUDA_CHECK(cudaEventRecord(cb->side_fork, cb->stream));
    for (int i = 0; i < streams; i++)
        CUDA_CHECK(cudaStreamWaitEvent(cb->side[i], cb->side_fork, 0));
    const cudaDataType t = dtype == DSK_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    int next = 0;
    for (int g = 0; g < count; g++) {
        refused[g] = 0;
        if (!nonempty(M, N, K, g))
            continue;
        refused[g] = !dsk_cuda_lt_gemm(cb, next, ta, tb, M[g], N[g], K[g], alpha, h[2 * g], h[2 * g + 1], t, beta,
                                       C[g], C[g], 1);
        next = (next + 1) % streams;
        cb->half_hits += 2;
    }
    for (int i = 0; i < streams; i++) {
        CUDA_CHECK(cudaEventRecord(cb->side_done[i], cb->side[i]));
        CUDA_CHECK(cudaStreamWaitEvent(cb->stream, cb->side_done[i], 0));
    }
    /* A shape cuBLASLt has no algorithm for: gemm on the op's stream (cuBLAS). */
    for (int g = 0; g < count; g++)
        if (refused[g])
            dsk_cuda_gemm_ragged(&cb->be, ta, tb, M[g], N[g], K[g], alpha, A[g], B[g], beta, C[g]);
    cb->side_calls++;
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    return 1;
}

extern "C" long dsk_cuda_grouped_side_calls(dsk_backend *be)
{
    return be && !strcmp(be->name, "cuda") ? ((dsk_cuda *)be)->side_calls : -1;
}

void dsk_cuda_gemm_grouped(dsk_backend *be, int ta, int tb, int count, const int *M, const int *N, const int *K,
                           float alpha, const float *const *A, const float *const *B, float beta, float *const *C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    int live = 0;
    for (int g = 0; g < count; g++)
        live += nonempty(M, N, K, g);
    if (!cb->grouped_loop && !dsk_cublas.GemmGroupedBatchedEx)
        to_loop(cb, "this cuBLAS (before 12.5) has no cublasGemmGroupedBatchedEx");
    /* TF32 kernels of the grouped call want 16-byte aligned matrices. */
    int aligned = 1;
    for (int g = 0; cb->tf32 && g < count; g++)
        if (nonempty(M, N, K, g))
            aligned &= ((uintptr_t)A[g] | (uintptr_t)B[g] | (uintptr_t)C[g]) % 16 == 0;
    if (live < 2 || be->gemm_dtype != DSK_DTYPE_FP32 || cb->grouped_loop || !aligned) {
        /* An operand whose groups lie one after another in one buffer (the
         * experts' blocks of rows) is rounded to 16 bits in one pass: each
         * product then reads its block of that copy. */
        if (live >= 2 && !cb->n_q4) {   /* (int4 layers: decoding, whose products read no copies) */
            prepare_span(cb, count, M, N, K, A, 0);
            prepare_span(cb, count, M, N, K, B, 1);
            if (grouped_on_side_streams(cb, ta, tb, count, M, N, K, alpha, A, B, beta, C))
                return;
        }
        /* Empty groups leave C as it is (gemm would scale it by beta when K is 0). */
        for (int g = 0; g < count; g++)
            if (nonempty(M, N, K, g))
                dsk_cuda_gemm_ragged(be, ta, tb, M[g], N[g], K[g], alpha, A[g], B[g], beta, C[g]);
        return;
    }

    size_t n = (size_t)live;
    for (int g = 0; g < count; g++)   /* the outputs' 16-bit copies are stale (gemm's loop does it itself) */
        if (nonempty(M, N, K, g))
            dsk_cuda_half_written(cb, C[g], (size_t)M[g] * N[g] * sizeof(float));
    host_arrays h = grouped_host(cb, n);
    int i = 0;
    for (int g = 0; g < count; g++) {
        if (!nonempty(M, N, K, g))
            continue;
        /* Column-major Cᵀ (N x M) = op(B)ᵀ op(A)ᵀ, as gemm. */
        h.ptrs[i] = B[g];
        h.ptrs[n + i] = A[g];
        h.ptrs[2 * n + i] = C[g];
        h.op_a[i] = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        h.op_b[i] = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        h.m[i] = N[g];
        h.n[i] = M[g];
        h.k[i] = K[g];
        h.lda[i] = tb ? K[g] : N[g];
        h.ldb[i] = ta ? M[g] : K[g];
        h.ldc[i] = N[g];
        h.size[i] = 1;
        h.alpha[i] = alpha;
        h.beta[i] = beta;
        i++;
    }
    void **dev = grouped_ptrs(cb, 3 * n);
    for (size_t at = 0; at < 3 * n; at += PTRS_PER_LAUNCH) {
        ptr_chunk c;
        int m = (int)(3 * n - at < PTRS_PER_LAUNCH ? 3 * n - at : PTRS_PER_LAUNCH);
        for (int j = 0; j < m; j++)
            c.p[j] = h.ptrs[at + (size_t)j];
        k_put_ptrs<<<1, PTRS_PER_LAUNCH, 0, cb->stream>>>((const void **)dev + at, c, m);
        LAUNCHED(cb, "gemm_grouped: pointer arrays");
    }
    cublasStatus_t s = dsk_cublas.GemmGroupedBatchedEx(
        cb->blas, h.op_a, h.op_b, h.m, h.n, h.k, h.alpha, (const void *const *)dev, CUDA_R_32F, h.lda,
        (const void *const *)(dev + n), CUDA_R_32F, h.ldb, h.beta, (void *const *)(dev + 2 * n), CUDA_R_32F, h.ldc,
        live, h.size, CUBLAS_COMPUTE_32F);
    if (s == CUBLAS_STATUS_NOT_SUPPORTED || s == CUBLAS_STATUS_INVALID_VALUE || s == CUBLAS_STATUS_ARCH_MISMATCH) {
        /* Refused before any product was queued: the loop, now and from now on. */
        char why[160];
        snprintf(why, sizeof why, "cublasGemmGroupedBatchedEx refused (%s)", dsk_cublas.GetStatusString(s));
        to_loop(cb, why);
        dsk_cuda_gemm_grouped(be, ta, tb, count, M, N, K, alpha, A, B, beta, C);
        return;
    }
    CUBLAS_CHECK(s);
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}
