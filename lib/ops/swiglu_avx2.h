/* SwiGLU, out = silu(g) * u, and its backward with AVX2: the portable
 * kernels' arithmetic (cpu_kernels_impl.h) eight lanes at a time, with
 * dsk_fast_expf_avx2, so the same bits; GCC makes only SSE code of the
 * portable loops for the baseline x86-64. */
#ifndef DSK_OPS_SWIGLU_AVX2_H
#define DSK_OPS_SWIGLU_AVX2_H

#include <stddef.h>

/* 0 when done, -1 without AVX2 (the caller runs the portable kernel). */
int dsk_swiglu_fwd_avx2(float *out, const float *g, const float *u, size_t n);
int dsk_swiglu_bwd_avx2(float *dg, float *du, const float *dout, const float *g, const float *u, size_t n);

#endif
