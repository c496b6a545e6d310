/* What the .cu files of cuda/ share: the backend's state, error checks,
 * launch helpers and block reductions.  C++ (nvcc) only. */
#ifndef DSK_CUDA_INTERNAL_CUH
#define DSK_CUDA_INTERNAL_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* lib/core/err.h is C11 (_Noreturn): spell it the C++ way for its declarations. */
extern "C" {
#define _Noreturn [[noreturn]]
#include "cuda_backend.h"
#undef _Noreturn
#include "ops/cpu_kernels.h"
}

/* The cuBLAS entry points (cublas_load.cu loads the library on first use). */
typedef struct dsk_cublas_api {
    int loaded;
    decltype(&cublasCreate) Create;
    decltype(&cublasDestroy) Destroy;
    decltype(&cublasSetStream) SetStream;
    decltype(&cublasSetMathMode) SetMathMode;
    decltype(&cublasSgemm) Sgemm;
    /* The C entry point (C++ also sees an inline overload taking a
     * cudaDataType compute type, which decltype cannot pick). */
    cublasStatus_t (*GemmEx)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void *,
                             const void *, cudaDataType, int, const void *, cudaDataType, int, const void *, void *,
                             cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
    decltype(&cublasGetStatusString) GetStatusString;
    /* NULL before cuBLAS 12.5: gemm_grouped then loops over gemm. */
    decltype(&cublasGemmGroupedBatchedEx) GemmGroupedBatchedEx;
} dsk_cublas_api;
extern dsk_cublas_api dsk_cublas;
/* 1 when loaded; else 0 and the reason in why. */
int dsk_cublas_load(char *why, size_t why_len);

/* The cuBLASLt entry points gemm_lt.cu uses (cublas_load.cu loads them). */
typedef struct dsk_cublaslt_api {
    int loaded;
    decltype(&cublasLtCreate) Create;
    decltype(&cublasLtDestroy) Destroy;
    decltype(&cublasLtMatmulDescCreate) MatmulDescCreate;
    decltype(&cublasLtMatmulDescSetAttribute) MatmulDescSetAttribute;
    decltype(&cublasLtMatmulDescDestroy) MatmulDescDestroy;
    decltype(&cublasLtMatrixLayoutCreate) MatrixLayoutCreate;
    decltype(&cublasLtMatrixLayoutDestroy) MatrixLayoutDestroy;
    decltype(&cublasLtMatmulPreferenceCreate) MatmulPreferenceCreate;
    decltype(&cublasLtMatmulPreferenceSetAttribute) MatmulPreferenceSetAttribute;
    decltype(&cublasLtMatmulPreferenceDestroy) MatmulPreferenceDestroy;
    decltype(&cublasLtMatmulAlgoGetHeuristic) MatmulAlgoGetHeuristic;
    decltype(&cublasLtMatmul) Matmul;
} dsk_cublaslt_api;
extern dsk_cublaslt_api dsk_cublaslt;
/* 1 when loaded; else 0 and the reason in why. */
int dsk_cublaslt_load(char *why, size_t why_len);

/* dlopen(soname), then the toolkit's library directory (DSK_CUDA_LIBDIR);
 * NULL and "cannot load SONAME: ..." in why when neither has it
 * (dlopen_lib.cu). */
void *dsk_cuda_dlopen(const char *soname, char *why, size_t why_len);

/* Loads libcudnn (9.16 or later) at the first call (its entry points:
 * cudnn_api.cuh): 1, or 0 and the reason in why (also when built without
 * cuDNN's headers, DSK_NO_CUDNN). */
int dsk_cudnn_load(char *why, size_t why_len);

typedef struct dsk_cuda_lt dsk_cuda_lt;   /* gemm_lt.cu's state */
typedef struct dsk_cuda_prof dsk_cuda_prof;   /* op_profile.cu's state */
typedef struct dsk_cuda_q4 dsk_cuda_q4;   /* kernels_int4.cu: a registered int4 layer */
typedef struct dsk_cuda_dnn dsk_cuda_dnn;   /* attention_cudnn.cu's state */

/* One 16-bit copy of a gemm operand (gemm_operands.cu). */
#define DSK_CUDA_HALF_SLOTS 8
typedef struct dsk_cuda_half_slot {
    const float *src;           /* the float32 operand it copies; NULL: none (not current) */
    size_t n;                   /* its length in floats */
    int dtype;                  /* DSK_DTYPE_BF16 or _FP16 */
    void *buf;                  /* n 16-bit values; cap bytes, kept when the slot is reused */
    size_t cap;
    unsigned long long used;    /* half_clock when last used */
} dsk_cuda_half_slot;

/* A registered weights buffer and its 16-bit copy (weights_copy.cu). */
#define DSK_CUDA_WEIGHT_COPIES 4
#define DSK_CUDA_SIDE_STREAMS 8
typedef struct dsk_cuda_wcopy {
    const float *w;   /* the floats (register_weights); NULL: an unused entry */
    size_t n;
    void *half;       /* n 16-bit values once first needed, else NULL */
    int dtype;        /* DSK_DTYPE_BF16 / _FP16: half is current in that type; -1: not current */
} dsk_cuda_wcopy;

typedef struct dsk_cuda {
    dsk_backend be;          /* first: a dsk_backend * is a dsk_cuda * */
    int device, sm_count;
    int smem_optin;          /* the most dynamic shared memory a block may opt in to, in bytes */
    cudaStream_t stream;
    cublasHandle_t blas;
    int sync_each;           /* DSK_CUDA_SYNC=1: wait after every op */
    void *scratch;           /* device scratch, valid until the next dsk_cuda_scratch() */
    size_t scratch_len;
    void *gemm_half;         /* gemm_dtype bf16/fp16 without slots: both operands, converted per product */
    size_t gemm_half_len;
    dsk_cuda_half_slot half[DSK_CUDA_HALF_SLOTS];   /* with slots: copies kept while current */
    int half_slots;          /* slots in use, DSK_CUDA_HALF_CACHE (default all; 0: one_buffer) */
    unsigned long long half_clock, half_hits, half_misses, half_produced;
    dsk_cuda_lt *lt;         /* NULL: every product through cuBLAS (DSK_CUDA_GEMM=cublas, or no cuBLASLt) */
    int tf32;                /* DSK_CUDA_TF32=1: fp32 products may use TF32 tensor cores */
    int attn_kernels;        /* DSK_CUDA_ATTN: a dsk_cuda_attn (the attention's kernels) */
    void *attn_bf16;         /* the pipelined attention's bf16 copies of q, k, v (and dO) */
    size_t attn_bf16_len;    /* in bytes */
    dsk_cuda_dnn *dnn;       /* DSK_CUDA_ATTN=cudnn: cuDNN's handle and plans, made at first use; else NULL */
    int verbose;             /* DSK_CUDA_VERBOSE=1: say on stderr (once) where cuBLAS stands in */
    int grouped_loop;        /* 1: gemm_grouped loops over gemm (no cublasGemmGroupedBatchedEx, or it refused) */
    int grouped_streams;     /* DSK_CUDA_GROUPED_STREAMS: streams gemm_grouped's 16-bit products spread over */
    cudaStream_t side[DSK_CUDA_SIDE_STREAMS];        /* those streams, made at first use (gemm_grouped.cu) */
    cudaEvent_t side_done[DSK_CUDA_SIDE_STREAMS];    /* each side stream's end of a call */
    cudaEvent_t side_fork;                           /* the call's start on the op's stream */
    long side_calls;                                 /* gemm_grouped calls run on them */
    void **grouped_ptrs;     /* device: gemm_grouped's A, B and C pointer arrays */
    size_t grouped_ptrs_len; /* in pointers */
    void *grouped_host;      /* gemm_grouped's host arrays (shapes, leading dimensions, scalars) */
    size_t grouped_host_len;
    double *host_sum;        /* pinned: sumsq's result */
    int32_t *host_i32;       /* moe_dispatch's host copies */
    size_t host_i32_len;
    dsk_cuda_prof *prof;     /* DSK_CUDA_PROFILE=1: the ops' times (op_profile.cu); NULL: off */
    dsk_cuda_wcopy wcopy[DSK_CUDA_WEIGHT_COPIES];   /* registered weights (weights_copy.cu) */
    dsk_cuda_q4 *q4;         /* register_int4's layers, sorted by W */
    int n_q4, cap_q4;
    char name[64];
} dsk_cuda;

/* gemm's operands in bf16 / fp16 (gemm_operands.cu): *Ah and *Bh are A
 * and B rounded, reused from an earlier product when still current. */
void dsk_cuda_half_operands(dsk_cuda *cb, int dtype, const float *A, size_t na, const float *B, size_t nb,
                            const void **Ah, const void **Bh);
/* x rounded to bf16 / fp16 to nearest even, as half.h's dsk_f32_to_bf16 /
 * dsk_f32_to_f16 (the CPU backend's reference). */
template <typename H> __device__ __forceinline__ H dsk_to_half(float x);
template <> __device__ __forceinline__ __nv_bfloat16 dsk_to_half<__nv_bfloat16>(float x)
{
    return __float2bfloat16_rn(x);
}
template <> __device__ __forceinline__ __half dsk_to_half<__half>(float x) { return __float2half_rn(x); }
/* Where a kernel also writes an output's 16-bit copy as it writes the
 * float (dsk_cuda_half_produce): p NULL for none, else bf16 or fp16
 * values; put(i, x) stores x rounded at i. */
struct dsk_half_out {
    void *p;
    int bf16;
    __device__ __forceinline__ void put(size_t i, float x) const
    {
        if (!p)
            return;
        if (bf16)
            ((__nv_bfloat16 *)p)[i] = dsk_to_half<__nv_bfloat16>(x);
        else
            ((__half *)p)[i] = dsk_to_half<__half>(x);
    }
    /* put for i .. i + 3 in one 8-byte store (i a multiple of 4, p 8-byte
     * aligned: dsk_vec4_ok): the same values. */
    __device__ __forceinline__ void put4(size_t i, float4 x) const
    {
        if (!p)
            return;
        if (bf16)
            put4_as<__nv_bfloat16>(i, x);
        else
            put4_as<__half>(i, x);
    }
    template <typename H> __device__ __forceinline__ void put4_as(size_t i, float4 x) const
    {
        struct alignas(8) four {
            H v[4];
        } h;
        h.v[0] = dsk_to_half<H>(x.x), h.v[1] = dsk_to_half<H>(x.y);
        h.v[2] = dsk_to_half<H>(x.z), h.v[3] = dsk_to_half<H>(x.w);
        *(four *)((H *)p + i) = h;
    }
};
/* Whether an element-wise kernel may go four floats at a time: n a
 * multiple of 4, the float arrays 16-byte aligned and the 16-bit copy (if
 * any) 8-byte aligned.  Its results are the same bits either way. */
static inline int dsk_vec4_ok(size_t n, const void *const *f, int nf, dsk_half_out h0, dsk_half_out h1)
{
    if (n % 4)
        return 0;
    for (int i = 0; i < nf; i++)
        if ((uintptr_t)f[i] % 16)
            return 0;
    return (uintptr_t)h0.p % 8 == 0 && (uintptr_t)h1.p % 8 == 0;
}
/* Copies made by the op that writes their source, for the products that
 * read it next (gemm_operands.cu lists the ops): *ha (and *hb, when b is
 * not NULL) say where its kernel writes outputs a (and b), n floats each,
 * rounded to be->gemm_dtype, current from then on; p NULL when the
 * products are fp32 or no copies are kept (DSK_CUDA_HALF_CACHE=0).  Call
 * it after any allocation of the op's (which may give the copies'
 * buffers back) and before its kernel. */
void dsk_cuda_half_produce(dsk_cuda *cb, size_t n, const float *a, dsk_half_out *ha, const float *b,
                           dsk_half_out *hb);
/* a[0..na) and b[0..nb) rounded to bf16 (nearest even) into out_a and
 * out_b, in one launch (gemm_operands.cu). */
void dsk_cuda_round_bf16(dsk_cuda *cb, void *out_a, const float *a, size_t na, void *out_b, const float *b,
                         size_t nb);
/* Products about to read parts of src[0..n) (gemm_grouped's experts'
 * blocks of rows, one after another): its copy in be->gemm_dtype made now
 * in one conversion, unless a current one holds it or it lies in
 * registered weights; nothing when products are fp32 or no copies are
 * kept. */
void dsk_cuda_half_prepare(dsk_cuda *cb, const float *src, size_t n);
/* A current copy of src[0..n) in dtype, as gemm would read it (a slot's,
 * or registered weights'), into *h: 1; 0, with nothing converted, when
 * there is none. */
int dsk_cuda_half_current(dsk_cuda *cb, int dtype, const float *src, size_t n, const void **h);
/* Every copy is stale: something may have written any device memory. */
void dsk_cuda_half_forget(dsk_cuda *cb);
/* The copies of anything in [p, p + bytes) are stale. */
void dsk_cuda_half_written(dsk_cuda *cb, const void *p, size_t bytes);
/* Out of device memory: the copies' buffers back (after waiting for the
 * stream); 1 when there were any, so that the allocation is worth trying
 * again. */
int dsk_cuda_half_release(dsk_cuda *cb);

/* ---- registered weights' 16-bit copies (weights_copy.cu) ---- */
void dsk_cuda_register_weights(dsk_backend *be, const float *w, size_t n);
void dsk_cuda_weights_written(dsk_backend *be, const float *w, size_t n);
/* 1 when p[0..n) lies in registered weights and dtype is 16-bit: a
 * product's operand that dsk_cuda_weights_half serves. */
int dsk_cuda_weights_hold(dsk_cuda *cb, int dtype, const float *p, size_t n);
/* The copy of p[0..n) in dtype when p lies in registered weights (made
 * current first if it is not: *fresh 1), else NULL (also when the copy
 * did not fit in device memory: the buffer is then forgotten). */
const void *dsk_cuda_weights_half(dsk_cuda *cb, int dtype, const float *p, size_t n, int *fresh);
/* The same when the copy is current in dtype, else NULL (nothing made). */
const void *dsk_cuda_weights_current(dsk_cuda *cb, int dtype, const float *p, size_t n);
/* Where a kernel that writes p[0..n) writes its copy too: a current copy
 * of registered weights in the products' type, else none. */
dsk_half_out dsk_cuda_weights_out(dsk_cuda *cb, const float *p, size_t n);
/* bytes at p were written (an upload): the current copies of registered
 * weights there are converted again. */
void dsk_cuda_weights_refresh(dsk_cuda *cb, const void *p, size_t bytes);
/* bytes at p were written by an op that keeps no copy: copies of
 * registered weights there are no longer current. */
void dsk_cuda_weights_stale(dsk_cuda *cb, const void *p, size_t bytes);
/* p was freed: a registered buffer at p is forgotten with its copy. */
void dsk_cuda_weights_freed(dsk_cuda *cb, const void *p);
/* Gives the copies' memory back (they are made again when next needed);
 * 1 when there was any. */
int dsk_cuda_weights_release(dsk_cuda *cb);
/* At the backend's end. */
void dsk_cuda_weights_free(dsk_cuda *cb);
/* The buffers back (cuda_destroy); with verbose, how many were reused. */
void dsk_cuda_half_free(dsk_cuda *cb);

/* The forward and backward through cuDNN (DSK_CUDA_ATTN=cudnn,
 * attention_cudnn.cu), lse the layer's part's: 1 when cuDNN ran it, 0
 * (nothing done) when it does not take the shape or refused its plan. */
int dsk_cuda_attention_cudnn_fwd(dsk_cuda *cb, float *out, float *lse, const float *q, const float *k,
                                 const float *v, const int32_t *pos, const dsk_attn_shape *s);
int dsk_cuda_attention_cudnn_bwd(dsk_cuda *cb, float *dq, float *dk, float *dv, const float *dout, const float *out,
                                 const float *q, const float *k, const float *v, const float *lse,
                                 const int32_t *pos, const dsk_attn_shape *s);

/* cuDNN's attention state (attention_cudnn.cu): freed at the backend's
 * end; the calls it has run. */
void dsk_cuda_dnn_destroy(dsk_cuda *cb);
long dsk_cuda_dnn_runs(const dsk_cuda *cb);

/* The profile (op_profile.cu).  begin opens a bracket named `name` (an op
 * of the table, or inside an open one a section of it) counting `flops`
 * (0: not counted) and returns its mark for end, which closes it; both do
 * nothing when cb->prof is NULL.  Brackets nest (4 deep at most) and
 * close in order. */
dsk_cuda_prof *dsk_cuda_prof_new(void);
void dsk_cuda_prof_free(dsk_cuda_prof *p);
int dsk_cuda_prof_begin(dsk_cuda *cb, const char *name, double flops);
void dsk_cuda_prof_end(dsk_cuda *cb, int mark);
/* A bracket over a C++ scope. */
struct dsk_cuda_prof_scope {
    dsk_cuda *cb;
    int mark;
    dsk_cuda_prof_scope(dsk_cuda *c, const char *name, double flops = 0)
        : cb(c), mark(c->prof ? dsk_cuda_prof_begin(c, name, flops) : -1)
    {
    }
    ~dsk_cuda_prof_scope()
    {
        if (cb->prof)
            dsk_cuda_prof_end(cb, mark);
    }
    dsk_cuda_prof_scope(const dsk_cuda_prof_scope &) = delete;
    dsk_cuda_prof_scope &operator=(const dsk_cuda_prof_scope &) = delete;
};

/* Every op starts here.  The CUDA runtime's current device is per host
 * thread and starts at 0: a backend on another device makes it current
 * for whichever thread calls the op (cheap: no context switch when it
 * already is). */
static inline dsk_cuda *dsk_cuda_of(dsk_backend *be)
{
    dsk_cuda *cb = (dsk_cuda *)be;
    if (cb->device != 0)
        (void)cudaSetDevice(cb->device);
    return cb;
}

/* End the process: "cuda: WHAT failed: MSG (FILE:LINE)". */
[[noreturn]] void dsk_cuda_fail(int code, const char *file, int line, const char *what, const char *msg);
/* After a kernel launch: the launch error, and with sync_each the kernel's. */
void dsk_cuda_launched(dsk_cuda *cb, const char *what, const char *file, int line);
/* cudaMalloc, and when the device is out of memory, once more after
 * gemm's 16-bit operand copies have given theirs back
 * (dsk_cuda_half_release); the error of the last try. */
cudaError_t dsk_cuda_malloc(dsk_cuda *cb, void **p, size_t bytes);
/* Device scratch of at least `bytes`, valid until the next call (one
 * stream: an op may reuse what the previous op used). */
void *dsk_cuda_scratch(dsk_cuda *cb, size_t bytes);

#define CUDA_CHECK(call)                                                                             \
    do {                                                                                             \
        cudaError_t e_ = (call);                                                                     \
        if (e_ != cudaSuccess)                                                                       \
            dsk_cuda_fail(EX_SOFTWARE, __FILE__, __LINE__, #call, cudaGetErrorString(e_));           \
    } while (0)
#define CUBLAS_CHECK(call)                                                                           \
    do {                                                                                             \
        cublasStatus_t s_ = (call);                                                                  \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                             \
            dsk_cuda_fail(EX_SOFTWARE, __FILE__, __LINE__, #call, dsk_cublas.GetStatusString(s_));        \
    } while (0)
#define LAUNCHED(cb, what) dsk_cuda_launched((cb), (what), __FILE__, __LINE__)

/* Blocks for a grid-stride loop over n items (at most a few waves). */
static inline unsigned dsk_cuda_blocks(const dsk_cuda *cb, size_t n, int threads)
{
    size_t b = (n + (size_t)threads - 1) / (size_t)threads, cap = (size_t)cb->sm_count * 32;
    if (b > cap)
        b = cap;
    return b ? (unsigned)b : 1u;
}

/* ---- reductions in a fixed order (the same bits on every run) ---- */

template <typename T> __device__ __forceinline__ T warp_sum(T v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over the block (blockDim.x a multiple of 32, at most 1024); every
 * thread gets the result.  sh: 32 elements of shared memory. */
template <typename T> __device__ __forceinline__ T block_sum(T v, T *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();             /* sh may still be read by a previous reduction */
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (T)0;
    return warp_sum(v);
}
/* The inclusive prefix sum of v over the block's threads in thread order
 * (the same on every run), and the block's sum in *total.  sh: blockDim.x
 * ints of shared memory, free again when it returns; every thread calls it. */
__device__ __forceinline__ int block_prefix_sum(int v, int *sh, int *total)
{
    const int tid = threadIdx.x;
    sh[tid] = v;
    __syncthreads();
    for (int off = 1; off < (int)blockDim.x; off <<= 1) {
        const int u = tid >= off ? sh[tid - off] : 0;
        __syncthreads();
        sh[tid] += u;
        __syncthreads();
    }
    const int sum = sh[tid];
    *total = sh[blockDim.x - 1];
    __syncthreads();
    return sum;
}
__device__ __forceinline__ float block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0)
        sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}


/* ---- the ops (signatures as in backend.h), one file per concern ---- */

/* cuda_backend.cu: gemm (through cuBLASLt, or cuBLAS) */
void dsk_cuda_gemm(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A, const float *B,
                   float beta, float *C);
void dsk_cuda_gemm_add(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       const float *B, const float *R, float *C);
/* gemm for one of gemm_grouped's products (gemm_lt.cu's ragged plans). */
void dsk_cuda_gemm_ragged(dsk_backend *be, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                          const float *B, float beta, float *C);
/* gemm_lt.cu: cuBLASLt for cb (NULL, and with cb->verbose why on
 * stderr, when it cannot be had); its end. */
dsk_cuda_lt *dsk_cuda_lt_new(dsk_cuda *cb);
void dsk_cuda_lt_destroy(dsk_cuda_lt *lt);
/* Row-major C[M,N] = alpha op(A) op(B) + beta Cin through cuBLASLt (Cin
 * is C, or an addend of the same shape apart from it), A and B of type t,
 * C float32, queued on cb's stream (side -1) or on side stream `side`
 * with that stream's workspace (dsk_cuda_lt_side_work first).  0
 * (nothing queued) when cuBLASLt has no algorithm for the shape: the
 * caller uses cuBLAS.  ragged: one of many products whose shapes change
 * from call to call (gemm_grouped's experts), planned by its shape
 * rounded up. */
int dsk_cuda_lt_gemm(dsk_cuda *cb, int side, int ta, int tb, int M, int N, int K, float alpha, const void *A,
                     const void *B, cudaDataType t, float beta, const float *Cin, float *C, int ragged);
/* Workspaces for side streams 0 .. n - 1 (a product's split-K partial
 * sums must not share one with a product running beside it): 1 when they
 * are there, 0 when the memory is not (then nothing runs on side streams). */
int dsk_cuda_lt_side_work(dsk_cuda *cb, int n);
/* kernels_int4.cu: register_int4; gemm's int4 path (1 when it did the
 * product: W registered, A·Wᵀ with at most 8 rows of A, alpha 1; else 0
 * and nothing queued); the layers' end (cuda_destroy). */
void dsk_cuda_register_int4(dsk_backend *be, const float *W, const void *int4);
int dsk_cuda_int4_gemm(dsk_cuda *cb, int ta, int tb, int M, int N, int K, float alpha, const float *A,
                       const float *B, float beta, float *C);
void dsk_cuda_int4_destroy(dsk_cuda *cb);
/* gemm_grouped.cu */
void dsk_cuda_gemm_grouped(dsk_backend *be, int ta, int tb, int count, const int *M, const int *N, const int *K,
                           float alpha, const float *const *A, const float *const *B, float beta, float *const *C);

/* kernels_basic.cu */
void dsk_cuda_add(dsk_backend *be, float *y, const float *x, size_t n);
void dsk_cuda_scale(dsk_backend *be, float *x, size_t n, float s);
double dsk_cuda_sumsq(dsk_backend *be, const float *x, size_t n);
void dsk_cuda_embedding_fwd(dsk_backend *be, float *out, const float *table, const int32_t *tokens, int n, int C);
void dsk_cuda_embedding_bwd(dsk_backend *be, float *dtable, const float *dout, const int32_t *tokens, int n, int C);
void dsk_cuda_rope(dsk_backend *be, float *x, const int32_t *pos, const float *cos_sin, int n, int heads, int hd,
                   int inverse);
void dsk_cuda_swiglu_fwd(dsk_backend *be, float *out, const float *g, const float *u, size_t n);
void dsk_cuda_swiglu_bwd(dsk_backend *be, float *dg, float *du, const float *dout, const float *g, const float *u,
                         size_t n);
/* kernels_norm.cu */
void dsk_cuda_rmsnorm_fwd(dsk_backend *be, float *out, float *rstd, const float *x, const float *w, int n, int C,
                          float eps);
void dsk_cuda_rmsnorm_bwd(dsk_backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                          const float *rstd, int n, int C);
/* kernels_attention.cu (and kernels_attention_tc.cu, attention_tiles.cuh) */
void dsk_cuda_attention_fwd(dsk_backend *be, float *out, float *lse_g, float *lse_l, float *out_g, float *out_l,
                            const float *q, const float *k, const float *v, const int32_t *pos, const float *alpha,
                            const dsk_attn_shape *s);
void dsk_cuda_attention_bwd(dsk_backend *be, float *dq, float *dk, float *dv, float *dalpha, const float *dout,
                            const float *out, const float *q, const float *k, const float *v, const float *lse_g,
                            const float *lse_l, const float *out_g, const float *out_l, const int32_t *pos,
                            const float *alpha, const dsk_attn_shape *s);
void dsk_cuda_attention_decode(dsk_backend *be, float *out, const float *q, const float *k_cache,
                               const float *v_cache, size_t seq_stride, const int32_t *seq, const int32_t *pos,
                               int n, const float *alpha, const dsk_attn_shape *s);
/* kernels_loss.cu */
void dsk_cuda_softmax_xent(dsk_backend *be, float *loss, float *logits, const int32_t *targets, const float *weight,
                           int n, int V, float grad_scale);
/* kernels_moe.cu */
void dsk_cuda_moe_route(dsk_backend *be, float *probs, int32_t *sel, float *gate, const float *logits,
                        const float *bias, int n, int E, int k, int router);
int dsk_cuda_moe_dispatch(dsk_backend *be, int32_t *slot_row, int32_t *row_token, int *offsets,
                          long *select_counts, const int32_t *sel, int n, int k, int E, int capacity);
void dsk_cuda_moe_gather(dsk_backend *be, float *xp, const float *x, const int32_t *row_token, int rows, int d);
void dsk_cuda_moe_combine(dsk_backend *be, float *out, const float *yp, const int32_t *slot_row, const float *gate,
                          int n, int k, int d);
void dsk_cuda_moe_combine_bwd(dsk_backend *be, float *dyp, float *dgate, const float *dout, const float *yp,
                              const int32_t *slot_row, const float *gate, int n, int k, int d);
void dsk_cuda_moe_scatter_add(dsk_backend *be, float *dx, const float *dxp, const int32_t *slot_row, int n, int k,
                              int d);
void dsk_cuda_moe_balance_stats(dsk_backend *be, double *q_sum, long *sel_count, double *sums, const float *probs,
                                const int32_t *sel, const float *logits, int rows_per, int n, int E, int k);
void dsk_cuda_moe_route_bwd(dsk_backend *be, float *dlogits, const float *dgate, const float *probs,
                            const int32_t *sel, const float *gate, const float *logits, const float *aux_w,
                            int rows_per, float z_coef, int n, int E, int k, int router);
/* kernels_optim.cu */
void dsk_cuda_adamw(dsk_backend *be, float *param, const float *grad, float grad_scale, float *m, float *v,
                    size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, float c1, float c2);

#endif
