/* The cuda backend (issue 8): every op of lib/ops/backend.h in fp32 on
 * one NVIDIA GPU, matrix products through cuBLASLt.  A C header: the
 * implementation is C++/CUDA (the .cu files beside it) behind extern "C".
 *
 * Only built when the Makefile finds nvcc; lib/ops/backend_open.c then
 * defines DSK_HAVE_CUDA and dsk_backend_new("cuda") lands here.
 *
 * Execution: every op is queued on one CUDA stream and returns at once;
 * download(), sumsq(), moe_dispatch() and moe_balance_stats() (the ops
 * that hand values to the host) wait for the stream, so callers see the synchronous
 * behaviour backend.h promises.  A failing CUDA or cuBLAS call ends the
 * process with a message naming the call (dsk_die: EX_OSERR when device
 * memory runs out, EX_SOFTWARE otherwise).
 *
 * Products: gemm goes through cuBLASLt (gemm_lt.cu), with a plan (the
 * descriptors and the heuristic's first algorithm) cached per shape and
 * a 32 MiB workspace; the same shape always runs the same algorithm and
 * split-K only reduces out of place, so results are deterministic.
 * Where cuBLASLt cannot be loaded, or has no algorithm for a shape,
 * cuBLAS does the product (cublasSgemm / cublasGemmEx, as before).
 * gemm_grouped (a MoE layer's experts) is one cublasGemmGroupedBatchedEx
 * in fp32 (cuBLAS 12.5+; a loop over gemm before that), a loop over gemm
 * in bf16 / fp16 (gemm_grouped.cu).
 *
 * The environment:
 *   DSK_CUDA_SYNC=1     wait after every op, so an asynchronous fault is
 *                       reported by the op that caused it;
 *   DSK_CUDA_TF32=1     let the fp32 products use TF32 tensor cores
 *                       (faster, ~1e-3 relative error);
 *   DSK_CUDA_GEMM=cublas  gemm through cuBLAS only, never cuBLASLt (the
 *                       default, "cublaslt", is the other value; any
 *                       other fails the backend's creation with EX_USAGE);
 *   DSK_CUDA_VERBOSE=1  say on stderr, once, where cuBLAS stands in for
 *                       cuBLASLt or a loop for the grouped call, and why;
 *   DSK_CUDA_ATTN=K     the flash attention's kernels when gemm_dtype
 *                       is bf16 / fp16: "auto" (the default) mma.sync's
 *                       (kernels_attention_mma.cu), forward and backward,
 *                       for a layer that is not hybrid, with heads of at
 *                       most 128, their tiles double-buffered by cp.async
 *                       from bf16 copies where heads are a multiple of 8,
 *                       and WMMA's (kernels_attention_tc.cu) for the rest;
 *                       "async" the same; "wide" those with two blocks
 *                       of 16 query rows a warp in the forward and dQ
 *                       (each K and V fragment read once for both) and
 *                       no mask arithmetic on tiles a warp sees whole:
 *                       the same bits, not yet measured on a GPU;
 *                       "stored" wide's, with the backward's dS kept
 *                       (bf16, up to 2 GiB) by the dK/dV kernel and dQ
 *                       = dS K read from it instead of computing S and
 *                       dP again (other bits: within bf16's error);
 *                       "cudnn" cuDNN's fused attention (attention_cudnn.cu)
 *                       for the layers it takes (bf16, global or local,
 *                       one document a row, heads a multiple of 8 up to
 *                       128), auto's for the rest; without libcudnn the
 *                       backend's creation fails with EX_UNAVAILABLE;
 *                       "mma" mma.sync's without the
 *                       pipelining (blocks of 4 warps); "mma8" those in
 *                       blocks of 8 warps (twice the rows or keys a block:
 *                       half the reads of the other side, a third of the
 *                       blocks an SM); "wmma" WMMA's everywhere;
 *                       "fp32" the fp32 kernels; any other value fails
 *                       the backend's creation with EX_USAGE.  With fp32
 *                       products the attention is fp32 whatever it says.
 *   DSK_CUDA_HALF_CACHE=N  slots for bf16 / fp16 copies of gemm's
 *                       operands, reused by the products that follow on
 *                       the same operand (gemm_operands.cu; RMSNorm,
 *                       SwiGLU, the attention, the inverse RoPE and the
 *                       loss write their outputs' copies as they write
 *                       them; the model's registered weights have a
 *                       copy of their own that adamw keeps current,
 *                       weights_copy.cu): 2 to 8 (default 8), or 0 to convert
 *                       every product's operands afresh and write no
 *                       copies (less device memory: each slot keeps a
 *                       buffer as large as the largest operand it held;
 *                       an allocation that fails frees them first);
 *                       anything else fails the backend's creation
 *                       with EX_USAGE.
 *   DSK_CUDA_PROFILE=1  time every op on the stream with CUDA events and
 *                       print a table on stderr when the backend ends:
 *                       each op's stream time, share, calls, time a call
 *                       and (for products) TFLOPS, with its parts under
 *                       it (gemm's operand copies and its products by
 *                       shape and type, the attention's kernels), and
 *                       the time the stream waited for the host between
 *                       ops (op_profile.cu); 0 or unset: off; anything
 *                       else fails the backend's creation with EX_USAGE.
 *   DSK_CUDA_GROUPED_STREAMS=S  gemm_grouped's bf16 / fp16 products (a
 *                       MoE layer's experts) spread over S side streams
 *                       (1 to 8; default 1, the op's own stream), each
 *                       product the same as on one stream, the same
 *                       bits; not with DSK_CUDA_PROFILE=1, and only
 *                       where every operand's 16-bit copy is current
 *                       (gemm_grouped.cu); anything else fails the
 *                       backend's creation with EX_USAGE.  Not yet
 *                       measured on a GPU.
 *
 * Precision: fp32 by default.  gemm_dtype bf16 / fp16 (dsk-train
 * --dtype) makes the products bf16 / fp16 with fp32 sums, and the flash
 * attention bf16 on tensor cores (kernels_attention_tc.cu: Q, K, V, dO,
 * P and dS rounded to bf16, softmax and sums in fp32); weights,
 * activations and optimizer state stay fp32 in memory.  sumsq is
 * deterministic (fixed chunks, fixed reduction trees); so are the other
 * reductions (no atomics).  register_int4 uploads a layer's 4-bit codes,
 * and decoding's products with it (at most 8 rows) read them instead of
 * the fp32 weights (kernels_int4.cu).  cuBLAS and cuBLASLt are loaded with
 * dlopen when the first backend is made (cublas_load.cu), the CUDA
 * runtime is linked statically: a binary built with CUDA runs anywhere,
 * and only a run that asks for "cuda" needs the driver and libcublas. */
#ifndef DSK_CUDA_BACKEND_H
#define DSK_CUDA_BACKEND_H

#include <stdio.h>

#include "core/err.h"
#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the CUDA runtime sees at least one device, else 0 (and, when
 * why is not NULL, the reason in why). */
int dsk_cuda_available(char *why, size_t why_len);

/* The backend on device `device` (an index as CUDA numbers them after
 * CUDA_VISIBLE_DEVICES).  NULL with err filled when there is none:
 * EX_UNAVAILABLE and "no CUDA device: ..." when no device can be used. */
dsk_backend *dsk_cuda_backend_new(int device, dsk_err *err);

/* How many of a cuda backend's bf16 / fp16 gemm operands were copies
 * reused (hits) and how many were converted (misses), since it was made
 * (tests/gpu/test_cuda_gemm_dtype.c checks the reuse with it). */
void dsk_cuda_half_stats(dsk_backend *be, unsigned long long *hits, unsigned long long *misses);

/* DSK_CUDA_PROFILE=1 (op_profile.cu), for programs that time a part of a
 * run.  Each returns at once (-1 from get) when be is not a cuda backend
 * or profiles nothing.  get: the calls, stream milliseconds and counted
 * flops of op `op` (a name in backend.h's table), or with `section` of
 * that part of it (as the printed table names it); zeros for a name never
 * timed.  reset: forget everything timed so far.  print: the table, as the
 * backend prints it when it ends. */
int dsk_cuda_profile_get(dsk_backend *be, const char *op, const char *section, unsigned long long *calls, double *ms,
                         double *flops);
void dsk_cuda_profile_reset(dsk_backend *be);
void dsk_cuda_profile_print(dsk_backend *be, FILE *f);

/* The attention's kernels (DSK_CUDA_ATTN), for programs that compare
 * them (tests/gpu/test_cuda_ops.c, attn_bench). */
typedef enum {
    DSK_CUDA_ATTN_AUTO,
    DSK_CUDA_ATTN_WMMA,
    DSK_CUDA_ATTN_FP32,
    DSK_CUDA_ATTN_MMA8,
    DSK_CUDA_ATTN_ASYNC,  /* mma.sync, tiles double-buffered by cp.async from bf16 copies */
    DSK_CUDA_ATTN_MMA,    /* mma.sync, 4 warps, tiles loaded by the warps themselves */
    DSK_CUDA_ATTN_WIDE,   /* ASYNC's with 32 query rows a warp and unmasked full tiles: the same bits */
    DSK_CUDA_ATTN_STORED, /* WIDE's, dS kept by the dK/dV kernel and dQ = dS K from it */
    DSK_CUDA_ATTN_CUDNN   /* cuDNN's fused attention where it applies (attention_cudnn.cu), else AUTO's */
} dsk_cuda_attn;
/* The kernels DSK_CUDA_ATTN's value `name` stands for ("auto", "async",
 * "wide", "stored", "cudnn", "mma", "mma8", "wmma", "fp32"; NULL or "" is
 * auto), or -1. */
int dsk_cuda_attn_parse(const char *name);
/* Makes be's later attention ops use `kernels`; -1 (nothing done) when
 * be is not a cuda backend, else 0. */
int dsk_cuda_set_attn(dsk_backend *be, dsk_cuda_attn kernels);
/* Whether libcudnn (9 or later) loads, for DSK_CUDA_ATTN=cudnn: 1, or 0
 * and the reason in why. */
int dsk_cuda_cudnn_available(char *why, size_t why_len);
/* How many attention calls (forward and backward) cuDNN has run on be;
 * -1 when be is not a cuda backend. */
long dsk_cuda_cudnn_runs(dsk_backend *be);

/* How many cuBLASLt plans (heuristic queries) be has made so far, for
 * tests/gpu/test_cuda_gemm_lt.c; -1 when be is not a cuda backend or
 * has no cuBLASLt. */
long dsk_cuda_lt_plans_made(dsk_backend *be);
/* How many gemm_grouped calls be has run on its side streams
 * (DSK_CUDA_GROUPED_STREAMS), for the tests; -1 when be is not cuda. */
long dsk_cuda_grouped_side_calls(dsk_backend *be);

#ifdef __cplusplus
}
#endif

#endif
