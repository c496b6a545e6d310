/* The cuda backend (issue 8): every op of lib/ops/backend.h in fp32 on
 * one NVIDIA GPU, matrix products through cuBLAS.  A C header: the
 * implementation is C++/CUDA (the .cu files beside it) behind extern "C".
 *
 * Only built when the Makefile finds nvcc; lib/ops/backend_open.c then
 * defines DSK_HAVE_CUDA and dsk_backend_new("cuda") lands here.
 *
 * Execution: every op is queued on one CUDA stream and returns at once;
 * download(), sumsq() and moe_dispatch() (the ops that hand values to
 * the host) wait for the stream, so callers see the synchronous
 * behaviour backend.h promises.  A failing CUDA or cuBLAS call ends the
 * process with a message naming the call (dsk_die: EX_OSERR when device
 * memory runs out, EX_SOFTWARE otherwise).  DSK_CUDA_SYNC=1 in the
 * environment waits after every op, so an asynchronous fault is reported
 * by the op that caused it; DSK_CUDA_TF32=1 lets cuBLAS use TF32 tensor
 * cores for the fp32 products (faster, ~1e-3 relative error).
 *
 * Precision: fp32 throughout (bf16/fp16 with loss scaling is a later
 * pass).  sumsq is deterministic (fixed chunks, fixed reduction trees);
 * so are the other reductions (no atomics).  register_int4 is NULL:
 * decoding reads the fp32 weights.  cuBLAS is loaded with dlopen when
 * the first backend is made (cublas_load.cu), the CUDA runtime is linked
 * statically: a binary built with CUDA runs anywhere, and only a run
 * that asks for "cuda" needs the driver and libcublas. */
#ifndef DSK_CUDA_BACKEND_H
#define DSK_CUDA_BACKEND_H

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

#ifdef __cplusplus
}
#endif

#endif
