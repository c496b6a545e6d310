/* Attention for the rows of a decoding step with AVX2 and FMA: each row's
 * query heads against its sequence's cached keys and values (the cpu
 * backend's attention_decode, whose arguments these are: backend.h).
 *
 * The portable kernel (cpu_kernels_impl.h) compiles to SSE for the
 * baseline x86-64 and calls a scalar exp per key; this one sums four keys
 * at a time in AVX2 registers, takes the exps eight at a time
 * (dsk_fast_expf_avx2), keeps each head's output in registers and reads
 * a row's cache front to back.  A row's result depends on its own query,
 * position and cache only: the same bits whatever else the step holds,
 * and at any thread count. */
#ifndef DSK_OPS_ATTN_DECODE_H
#define DSK_OPS_ATTN_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "ops/backend.h"

/* 0 when done; -1 when this kernel does not apply (no AVX2 and FMA, a
 * head size not a multiple of 8 or above 256, more than 64 query heads),
 * and the caller runs the portable kernel. */
int dsk_attn_decode_avx2(float *out, const float *q, const float *k_cache, const float *v_cache, size_t seq_stride,
                         const int32_t *seq, const int32_t *pos, int n, const float *alpha, const dsk_attn_shape *s);

#endif
