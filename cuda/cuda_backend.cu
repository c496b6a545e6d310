/* The cuda backend's table, device memory, cuBLAS products and errors.
 * The ops themselves live in kernels_*.cu, one concern per file; every
 * op is fp32 (gemm also bf16 / fp16 on request, be->gemm_dtype, or
 * int4 codes for decoding, kernels_int4.cu; its cuBLASLt plans in
 * gemm_lt.cu, gemm_grouped in gemm_grouped.cu) and has
 * the CPU op (lib/ops/cpu_kernels_impl.h) as its reference, which
 * tests/gpu/test_cuda_ops.c and test_cuda_gemm_dtype.c check on a GPU
 * machine. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "cuda_internal.cuh"

void dsk_cuda_fail(int code, const char *file, int line, const char *what, const char *msg)
{
    dsk_die(code, "cuda: %s failed: %s (%s:%d)", what, msg, file, line);
}

void dsk_cuda_launched(dsk_cuda *cb, const char *what, const char *file, int line)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess && cb->sync_each)
        e = cudaStreamSynchronize(cb->stream);
    if (e != cudaSuccess)
        dsk_cuda_fail(EX_SOFTWARE, file, line, what, cudaGetErrorString(e));
}

cudaError_t dsk_cuda_malloc(dsk_cuda *cb, void **p, size_t bytes)
{
    cudaError_t e = cudaMalloc(p, bytes);
    if (e == cudaErrorMemoryAllocation && dsk_cuda_half_release(cb)) {
        (void)cudaGetLastError();
        e = cudaMalloc(p, bytes);
        if (cb->verbose)
            fprintf(stderr, "cuda: %zu bytes did not fit: the 16-bit copies gave their memory back (%s)\n", bytes,
                    e == cudaSuccess ? "then they did" : "they still did not");
    }
    return e;
}

void *dsk_cuda_scratch(dsk_cuda *cb, size_t bytes)
{
    if (bytes > cb->scratch_len) {
        /* The old block may still be read by queued work. */
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
        if (cb->scratch)
            CUDA_CHECK(cudaFree(cb->scratch));
        cb->scratch = NULL;
        size_t len = bytes + bytes / 2;
        if (cudaMalloc(&cb->scratch, len) != cudaSuccess) {
            (void)cudaGetLastError();
            len = bytes;
            if (dsk_cuda_malloc(cb, &cb->scratch, len) != cudaSuccess)
                dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes of scratch on device %d", bytes,
                        cb->device);
        }
        cb->scratch_len = len;
    }
    return cb->scratch;
}

/* ---- memory ---- */

static void *cuda_alloc(dsk_backend *be, size_t bytes)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    void *p = NULL;
    cudaError_t e = dsk_cuda_malloc(cb, &p, bytes ? bytes : 256);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        (void)cudaMemGetInfo(&free_b, &total_b);
        if (e == cudaErrorMemoryAllocation)
            dsk_die(EX_OSERR, "cuda: out of device memory allocating %zu bytes on device %d (%zu of %zu MiB free)",
                    bytes, cb->device, free_b >> 20, total_b >> 20);
        dsk_cuda_fail(EX_SOFTWARE, __FILE__, __LINE__, "cudaMalloc", cudaGetErrorString(e));
    }
    /* Zeroed, as the interface promises. */
    if (bytes)
        CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cb->stream));
    return p;
}

static void cuda_free(dsk_backend *be, void *p)
{
    if (!p)
        return;
    dsk_cuda *cb = dsk_cuda_of(be);
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    dsk_cuda_weights_freed(cb, p);
    CUDA_CHECK(cudaFree(p));
}

static void cuda_upload(dsk_backend *be, void *dev, const void *host, size_t bytes)
{
    if (!bytes)
        return;
    /* From pageable memory the call returns once the bytes are staged:
     * the caller may reuse host at once, and the copy stays in stream order. */
    dsk_cuda *cb = dsk_cuda_of(be);
    CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, cb->stream));
    dsk_cuda_weights_refresh(cb, dev, bytes);
}

static void cuda_download(dsk_backend *be, void *host, const void *dev, size_t bytes)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (bytes)
        CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, cb->stream));
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}

static void cuda_copy(dsk_backend *be, void *dst, const void *src, size_t bytes)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (!bytes || dst == src)
        return;
    const char *d = (const char *)dst, *s = (const char *)src;
    if (d < s + bytes && s < d + bytes) {
        /* Overlapping (memmove on the CPU): through scratch. */
        void *tmp = dsk_cuda_scratch(cb, bytes);
        CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, cb->stream));
        src = tmp;
    }
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cb->stream));
    dsk_cuda_weights_stale(cb, dst, bytes);
}

static void cuda_zero(dsk_backend *be, void *p, size_t bytes)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    if (bytes)
        CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cb->stream));
    dsk_cuda_weights_stale(cb, p, bytes);
}

/* ---- dense algebra ---- */

/* Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: cuBLAS
 * gets the operands swapped, each with its row-major leading dimension.
 * gemm_dtype bf16 / fp16: the operands in that type, tensor cores
 * accumulating and writing float32 (CUBLAS_COMPUTE_32F).  cuBLASLt
 * (gemm_lt.cu) does the product; cuBLAS when it cannot (no cuBLASLt,
 * DSK_CUDA_GEMM=cublas, or no algorithm for the shape).
 *
 * C = alpha op(A) op(B) + beta Cin: Cin is C but for gemm_add, whose
 * addend cuBLASLt reads in the product's epilogue (its C, our C its D);
 * every other path copies it into C first. */
static void gemm_into(dsk_cuda *cb, int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
                      float beta, const float *Cin, float *C, int ragged)
{
    dsk_backend *be = &cb->be;
    if (M <= 0 || N <= 0)
        return;
    size_t c_bytes = (size_t)M * N * sizeof *C;
    dsk_cuda_half_written(cb, C, c_bytes);
    if (Cin != C && (K <= 0 || !cb->lt || cb->n_q4)) {
        CUDA_CHECK(cudaMemcpyAsync(C, Cin, c_bytes, cudaMemcpyDeviceToDevice, cb->stream));
        Cin = C;
    }
    if (K <= 0) {
        if (beta == 0)
            CUDA_CHECK(cudaMemsetAsync(C, 0, c_bytes, cb->stream));
        else if (beta != 1)
            dsk_cuda_scale(be, C, (size_t)M * N, beta);
        return;
    }
    if (dsk_cuda_int4_gemm(cb, ta, tb, M, N, K, alpha, A, B, beta, C))
        return;   /* decoding with a registered int4 weight */
    const void *a = A, *b = B;
    cudaDataType t = CUDA_R_32F;
    int dtype = be->gemm_dtype;
    if (dtype == DSK_DTYPE_BF16 || dtype == DSK_DTYPE_FP16) {
        dsk_cuda_half_operands(cb, dtype, A, (size_t)M * K, B, (size_t)K * N, &a, &b);
        t = dtype == DSK_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    }
    /* DSK_CUDA_PROFILE: the product is a section named by its type and shape. */
    char shape[48] = "";
    if (cb->prof)
        snprintf(shape, sizeof shape, "%s %dx%dx%d %c%c", t == CUDA_R_16BF ? "bf16" : t == CUDA_R_16F ? "fp16" : "fp32",
                 M, N, K, ta ? 'T' : 'N', tb ? 'T' : 'N');
    dsk_cuda_prof_scope timed(cb, shape, 2.0 * M * N * K);
    if (cb->lt && dsk_cuda_lt_gemm(cb, -1, ta, tb, M, N, K, alpha, a, b, t, beta, Cin, C, ragged))
        return;
    if (Cin != C)
        CUDA_CHECK(cudaMemcpyAsync(C, Cin, c_bytes, cudaMemcpyDeviceToDevice, cb->stream));
    cublasOperation_t op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N, op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (t != CUDA_R_32F)
        CUBLAS_CHECK(dsk_cublas.GemmEx(cb->blas, op_b, op_a, N, M, K, &alpha, b, t, tb ? K : N, a, t, ta ? M : K, &beta,
                                       C, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(dsk_cublas.Sgemm(cb->blas, op_b, op_a, N, M, K, &alpha, B, tb ? K : N, A, ta ? M : K, &beta, C,
                                      N));
}

void dsk_cuda_gemm(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
                   float beta, float *C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    gemm_into(cb, ta, tb, M, N, K, alpha, A, B, beta, C, C, 0);
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}

void dsk_cuda_gemm_ragged(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                          const float *B, float beta, float *C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    gemm_into(cb, ta, tb, M, N, K, alpha, A, B, beta, C, C, 1);
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}

void dsk_cuda_gemm_add(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       const float *B, const float *R, float *C)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    const char *r = (const char *)R, *c = (const char *)C;
    size_t bytes = (size_t)(M > 0 ? M : 0) * (size_t)(N > 0 ? N : 0) * sizeof *C;
    if (R != C && r < c + bytes && c < r + bytes)
        dsk_die(EX_SOFTWARE, "cuda: gemm_add: the addend overlaps the output without being it");
    gemm_into(cb, ta, tb, M, N, K, alpha, A, B, 1.0f, R, C, 0);
    if (cb->sync_each)
        CUDA_CHECK(cudaStreamSynchronize(cb->stream));
}

/* ---- the table ---- */

/* An op of the table.  One that may write device memory makes gemm's
 * 16-bit operand copies stale (gemm_operands.cu): every op but gemm,
 * gemm_add, gemm_grouped, rope and softmax_xent (which forget the copies
 * of their own outputs), sumsq and download (which write none) forgets
 * them all first (Forget).  With DSK_CUDA_PROFILE=1 it is timed under its name
 * (op_profile.cu); name NULL (alloc, free: no stream work) is not.  The
 * names are set where the table is filled (OP below). */
template <auto F> struct table_op;
template <typename R, typename... Args, R (*F)(dsk_backend *, Args...)> struct table_op<F> {
    static inline const char *name = nullptr;
    template <bool Forget> static R call(dsk_backend *be, Args... args)
    {
        dsk_cuda *cb = dsk_cuda_of(be);   /* the device current first: the events are made on it */
        if (Forget)
            dsk_cuda_half_forget(cb);
        if (!cb->prof || !name)
            return F(be, args...);
        dsk_cuda_prof_scope timed(cb, name);
        return F(be, args...);
    }
};
/* be->FIELD = FN, forgetting the copies when FORGET, timed as "FIELD". */
#define OP(field, fn, forget) (table_op<fn>::name = #field, be->field = table_op<fn>::call<forget>)

static void cuda_destroy(dsk_backend *be)
{
    dsk_cuda *cb = dsk_cuda_of(be);
    CUDA_CHECK(cudaStreamSynchronize(cb->stream));
    if (cb->prof) {
        dsk_cuda_profile_print(be, stderr);
        dsk_cuda_prof_free(cb->prof);
    }
    if (cb->scratch)
        CUDA_CHECK(cudaFree(cb->scratch));
    dsk_cuda_half_free(cb);
    dsk_cuda_weights_free(cb);
    dsk_cuda_lt_destroy(cb->lt);
    if (cb->grouped_ptrs)
        CUDA_CHECK(cudaFree(cb->grouped_ptrs));
    if (cb->attn_bf16)
        CUDA_CHECK(cudaFree(cb->attn_bf16));
    dsk_cuda_dnn_destroy(cb);
    free(cb->grouped_host);
    if (cb->host_sum)
        CUDA_CHECK(cudaFreeHost(cb->host_sum));
    free(cb->host_i32);
    dsk_cuda_int4_destroy(cb);
    CUBLAS_CHECK(dsk_cublas.Destroy(cb->blas));
    if (cb->side[0]) {
        for (int i = 0; i < DSK_CUDA_SIDE_STREAMS; i++) {
            CUDA_CHECK(cudaStreamDestroy(cb->side[i]));
            CUDA_CHECK(cudaEventDestroy(cb->side_done[i]));
        }
        CUDA_CHECK(cudaEventDestroy(cb->side_fork));
    }
    CUDA_CHECK(cudaStreamDestroy(cb->stream));
    free(cb);
}

static const char *no_device_reason(cudaError_t e, char *buf, size_t len)
{
    if (e == cudaErrorInsufficientDriver) {
        int rt = 0;
        (void)cudaRuntimeGetVersion(&rt);
        snprintf(buf, len, "no usable NVIDIA driver (libcuda.so.1 missing, or older than CUDA runtime %d.%d)",
                 rt / 1000, rt % 1000 / 10);
    } else if (e == cudaErrorNoDevice) {
        snprintf(buf, len, "the driver reports no CUDA-capable device (CUDA_VISIBLE_DEVICES=%s)",
                 getenv("CUDA_VISIBLE_DEVICES") ? getenv("CUDA_VISIBLE_DEVICES") : "unset");
    } else {
        snprintf(buf, len, "%s", cudaGetErrorString(e));
    }
    return buf;
}

extern "C" int dsk_cuda_available(char *why, size_t why_len)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    char buf[256];
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        if (why)
            snprintf(why, why_len, "%s", no_device_reason(e, buf, sizeof buf));
        return 0;
    }
    if (n < 1) {
        if (why)
            snprintf(why, why_len, "%s", no_device_reason(cudaErrorNoDevice, buf, sizeof buf));
        return 0;
    }
    return 1;
}

/* Environment variable `name` as a whole decimal number into *v (unset
 * or empty: dflt); 0 when it is anything else.  The caller checks the
 * range and says what it expected. */
static int env_long(const char *name, long dflt, long *v)
{
    const char *s = getenv(name);
    *v = dflt;
    if (!s || !*s)
        return 1;
    char *end;
    errno = 0;
    *v = strtol(s, &end, 10);
    return !*end && errno == 0;
}

extern "C" int dsk_cuda_attn_parse(const char *name)
{
    if (!name || !*name || !strcmp(name, "auto"))
        return DSK_CUDA_ATTN_AUTO;
    if (!strcmp(name, "wmma"))
        return DSK_CUDA_ATTN_WMMA;
    if (!strcmp(name, "fp32"))
        return DSK_CUDA_ATTN_FP32;
    if (!strcmp(name, "mma8"))
        return DSK_CUDA_ATTN_MMA8;
    if (!strcmp(name, "async"))
        return DSK_CUDA_ATTN_ASYNC;
    if (!strcmp(name, "mma"))
        return DSK_CUDA_ATTN_MMA;
    if (!strcmp(name, "wide"))
        return DSK_CUDA_ATTN_WIDE;
    if (!strcmp(name, "stored"))
        return DSK_CUDA_ATTN_STORED;
    if (!strcmp(name, "cudnn"))
        return DSK_CUDA_ATTN_CUDNN;
    return -1;
}

extern "C" int dsk_cuda_set_attn(dsk_backend *be, dsk_cuda_attn kernels)
{
    if (!be || strcmp(be->name, "cuda"))
        return -1;
    ((dsk_cuda *)be)->attn_kernels = kernels;
    return 0;
}

extern "C" int dsk_cuda_cudnn_available(char *why, size_t why_len) { return dsk_cudnn_load(why, why_len); }

extern "C" long dsk_cuda_cudnn_runs(dsk_backend *be)
{
    if (!be || strcmp(be->name, "cuda"))
        return -1;
    return dsk_cuda_dnn_runs((dsk_cuda *)be);
}

extern "C" dsk_backend *dsk_cuda_backend_new(int device, dsk_err *err)
{
    char why[256];
    int n = 0;
    if (!dsk_cuda_available(why, sizeof why)) {
        dsk_fail(err, EX_UNAVAILABLE, "no CUDA device: %s", why);
        return NULL;
    }
    (void)cudaGetDeviceCount(&n);
    if (device < 0 || device >= n) {
        dsk_fail(err, EX_UNAVAILABLE, "no CUDA device: device %d asked for, %d present", device, n);
        return NULL;
    }
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess)
        e = cudaFree(0);   /* creates the context now, so a broken device fails here */
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        dsk_fail(err, EX_UNAVAILABLE, "no CUDA device: device %d: %s", device, cudaGetErrorString(e));
        return NULL;
    }
    if (!dsk_cublas_load(why, sizeof why)) {
        dsk_fail(err, EX_UNAVAILABLE, "cuda: %s", why);
        return NULL;
    }
    const char *attn = getenv("DSK_CUDA_ATTN");
    int attn_kernels = dsk_cuda_attn_parse(attn);
    if (attn_kernels < 0) {
        dsk_fail(err, EX_USAGE,
                 "cuda: DSK_CUDA_ATTN=%s: expected auto (the default), async, wide, stored, cudnn, mma, mma8, wmma or "
                 "fp32",
                 attn);
        return NULL;
    }
    if (attn_kernels == DSK_CUDA_ATTN_CUDNN && !dsk_cudnn_load(why, sizeof why)) {
        dsk_fail(err, EX_UNAVAILABLE, "cuda: DSK_CUDA_ATTN=cudnn: %s", why);
        return NULL;
    }
    const char *gemm = getenv("DSK_CUDA_GEMM");
    int use_lt = !gemm || !*gemm || !strcmp(gemm, "cublaslt");
    if (!use_lt && strcmp(gemm, "cublas")) {
        dsk_fail(err, EX_USAGE, "cuda: DSK_CUDA_GEMM=%s: expected cublaslt (the default) or cublas", gemm);
        return NULL;
    }
    long half_slots, grouped_streams;
    if (!env_long("DSK_CUDA_HALF_CACHE", DSK_CUDA_HALF_SLOTS, &half_slots) ||
        (half_slots != 0 && (half_slots < 2 || half_slots > DSK_CUDA_HALF_SLOTS))) {
        dsk_fail(err, EX_USAGE, "cuda: DSK_CUDA_HALF_CACHE=%s: expected 0 (off) or 2 to %d slots",
                 getenv("DSK_CUDA_HALF_CACHE"), DSK_CUDA_HALF_SLOTS);
        return NULL;
    }
    if (!env_long("DSK_CUDA_GROUPED_STREAMS", 1, &grouped_streams) || grouped_streams < 1 ||
        grouped_streams > DSK_CUDA_SIDE_STREAMS) {
        dsk_fail(err, EX_USAGE, "cuda: DSK_CUDA_GROUPED_STREAMS=%s: expected 1 (the default) to %d streams",
                 getenv("DSK_CUDA_GROUPED_STREAMS"), DSK_CUDA_SIDE_STREAMS);
        return NULL;
    }
    const char *profile = getenv("DSK_CUDA_PROFILE");
    if (profile && *profile && strcmp(profile, "0") && strcmp(profile, "1")) {
        dsk_fail(err, EX_USAGE, "cuda: DSK_CUDA_PROFILE=%s: expected 1 (on) or 0 (off, the default)", profile);
        return NULL;
    }
    dsk_cuda *cb = (dsk_cuda *)dsk_xcalloc(1, sizeof *cb);
    cb->device = device;
    cb->half_slots = (int)half_slots;
    cb->grouped_streams = (int)grouped_streams;
    cb->attn_kernels = attn_kernels;
    CUDA_CHECK(cudaDeviceGetAttribute(&cb->sm_count, cudaDevAttrMultiProcessorCount, device));
    CUDA_CHECK(cudaDeviceGetAttribute(&cb->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    CUDA_CHECK(cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking));
    cublasStatus_t bs = dsk_cublas.Create(&cb->blas);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        dsk_fail(err, EX_UNAVAILABLE, "cuda: cublasCreate on device %d: %s", device,
                 dsk_cublas.GetStatusString(bs));
        CUDA_CHECK(cudaStreamDestroy(cb->stream));
        free(cb);
        return NULL;
    }
    CUBLAS_CHECK(dsk_cublas.SetStream(cb->blas, cb->stream));
    /* fp32 products stay fp32 unless asked: TF32 tensor cores round the
     * inputs to 10 mantissa bits, which the CPU comparison would notice. */
    const char *tf32 = getenv("DSK_CUDA_TF32");
    cb->tf32 = tf32 && *tf32 == '1';
    CUBLAS_CHECK(dsk_cublas.SetMathMode(cb->blas, cb->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const char *sync = getenv("DSK_CUDA_SYNC");
    cb->sync_each = sync && *sync == '1';
    const char *verbose = getenv("DSK_CUDA_VERBOSE");
    cb->verbose = verbose && *verbose == '1';
    /* After tf32 and verbose, which the plans and messages read. */
    cb->lt = use_lt ? dsk_cuda_lt_new(cb) : NULL;
    cb->prof = profile && !strcmp(profile, "1") ? dsk_cuda_prof_new() : NULL;
    CUDA_CHECK(cudaMallocHost((void **)&cb->host_sum, sizeof *cb->host_sum));

    dsk_backend *be = &cb->be;
    snprintf(cb->name, sizeof cb->name, "cuda");
    be->name = cb->name;
    be->threads = 1;
    /* At 1.3b's 16384 rows of a 50K vocabulary, 4 chunks of 4096 rows
     * where the cpu's 128 MiB makes 26 of 640 (dsk_model_logit_rows). */
    be->logits_budget = DSK_LOGITS_BUDGET_GPU;
    be->impl = cb;
    be->alloc = table_op<cuda_alloc>::call<true>;   /* no stream work to time */
    be->free = table_op<cuda_free>::call<true>;
    OP(upload, cuda_upload, true);
    OP(download, cuda_download, false);
    OP(copy, cuda_copy, true);
    OP(zero, cuda_zero, true);
    OP(gemm, dsk_cuda_gemm, false);
    OP(gemm_add, dsk_cuda_gemm_add, false);
    OP(gemm_grouped, dsk_cuda_gemm_grouped, false);   /* forgets the copies of its outputs only */
    OP(register_int4, dsk_cuda_register_int4, true);
    OP(add, dsk_cuda_add, true);
    OP(scale, dsk_cuda_scale, true);
    OP(sumsq, dsk_cuda_sumsq, false);
    OP(embedding_fwd, dsk_cuda_embedding_fwd, true);
    OP(embedding_bwd, dsk_cuda_embedding_bwd, true);
    OP(rmsnorm_fwd, dsk_cuda_rmsnorm_fwd, true);
    OP(rmsnorm_bwd, dsk_cuda_rmsnorm_bwd, true);
    OP(rope, dsk_cuda_rope, false);   /* forgets the copies of x only (kernels_basic.cu) */
    OP(attention_fwd, dsk_cuda_attention_fwd, true);
    OP(attention_bwd, dsk_cuda_attention_bwd, true);
    OP(attention_decode, dsk_cuda_attention_decode, true);
    OP(swiglu_fwd, dsk_cuda_swiglu_fwd, true);
    OP(swiglu_bwd, dsk_cuda_swiglu_bwd, true);
    OP(softmax_xent, dsk_cuda_softmax_xent, false);   /* forgets the copies of loss and logits only */
    OP(moe_route, dsk_cuda_moe_route, true);
    OP(moe_dispatch, dsk_cuda_moe_dispatch, true);
    OP(moe_gather, dsk_cuda_moe_gather, true);
    OP(moe_combine, dsk_cuda_moe_combine, true);
    OP(moe_combine_bwd, dsk_cuda_moe_combine_bwd, true);
    OP(moe_scatter_add, dsk_cuda_moe_scatter_add, true);
    OP(moe_balance_stats, dsk_cuda_moe_balance_stats, false);   /* writes host arrays only */
    OP(moe_route_bwd, dsk_cuda_moe_route_bwd, true);
    OP(adamw, dsk_cuda_adamw, true);
    OP(register_weights, dsk_cuda_register_weights, false);
    OP(weights_written, dsk_cuda_weights_written, false);   /* its floats' slots: the writer's collective forgot them */
    be->destroy = cuda_destroy;
    return be;
}
