/* 16-bit floating-point formats: bfloat16 (8 exponent bits, 7 mantissa
 * bits, float32's range) and IEEE binary16 "fp16" (5 and 10, largest
 * finite 65504), and the names of the precisions gemm can run in
 * (--dtype, DSK_DTYPE_* in ops/backend.h).
 *
 * Every conversion from float rounds to nearest, ties to even, as the
 * CUDA intrinsics __float2bfloat16_rn and __float2half_rn do, so the CPU
 * backend's rounded products are the reference for the GPU's:
 *   - fp16: a magnitude of 65520 (65504 plus half an ulp) or more becomes
 *     +-inf; below 2^-14 the result is subnormal (steps of 2^-24), and
 *     below 2^-25 it is +-0.
 *   - bf16: past the largest finite value (about 3.39e38) it becomes
 *     +-inf; float subnormals round like any other value.
 *   - NaN stays NaN (quiet, with its sign and the top payload bits).
 * The conversions back to float are exact. */
#ifndef DSK_OPS_HALF_H
#define DSK_OPS_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t dsk_f32_to_bf16(float f);
float dsk_bf16_to_f32(uint16_t h);
uint16_t dsk_f32_to_f16(float f);
float dsk_f16_to_f32(uint16_t h);

/* dst[i] = src[i] rounded through the type and back to float (dst may
 * be src), in parallel over OpenMP's threads.  DSK_DTYPE_FP32 copies. */
void dsk_round_bf16(float *dst, const float *src, size_t n);
void dsk_round_f16(float *dst, const float *src, size_t n);
void dsk_round_dtype(int dtype, float *dst, const float *src, size_t n);

/* "fp32", "bf16", "fp16" <-> DSK_DTYPE_*: parse returns -1 for any other
 * name; name returns "?" for an unknown value. */
int dsk_dtype_parse(const char *name);
const char *dsk_dtype_name(int dtype);

#endif
