#ifndef DSK_OPS_FAST_EXP_H
#define DSK_OPS_FAST_EXP_H

#include <stdint.h>
#include <string.h>

/* exp for the softmaxes and SiLU, written so the compiler vectorizes the
 * loops that call it (libm's expf is a call per element): range reduction
 * to r in [-ln2/2, ln2/2], the Cephes degree-6 polynomial for e^r, and
 * 2^n put into the exponent bits.  Relative error about 2e-7 on the
 * clamped range; NaN stays NaN, which the training loop's guard needs. */
static inline float dsk_fast_expf(float in)
{
    /* NaN is computed as 0 (float-to-int of NaN is undefined) and returned as itself. */
    float x = in < -87.3f ? -87.3f : in > 88.3f ? 88.3f : in == in ? in : 0.0f;
    float t = x * 1.44269504088896341f;
    int n = (int)(t + (t >= 0 ? 0.5f : -0.5f));
    float fn = (float)n;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return in == in ? p * scale : in;
}

#if defined(__x86_64__) && !defined(__CUDACC__)
#include <immintrin.h>

/* dsk_fast_expf of 8 lanes, operation for operation (multiplies and adds
 * kept apart, as the C above is compiled in ISO mode), so the same bits.
 * For kernels with AVX2 that GCC does not vectorize the scalar one in. */
static inline __attribute__((target("avx2"), always_inline)) __m256 dsk_fast_expf_avx2(__m256 in)
{
    __m256 x = _mm256_min_ps(_mm256_max_ps(in, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 t = _mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f));
    __m256 half = _mm256_blendv_ps(_mm256_set1_ps(-0.5f), _mm256_set1_ps(0.5f),
                                   _mm256_cmp_ps(t, _mm256_setzero_ps(), _CMP_GE_OQ));
    __m256i n = _mm256_cvttps_epi32(_mm256_add_ps(t, half));
    __m256 fn = _mm256_cvtepi32_ps(n);
    __m256 r = _mm256_add_ps(_mm256_sub_ps(x, _mm256_mul_ps(fn, _mm256_set1_ps(0.693359375f))),
                             _mm256_mul_ps(fn, _mm256_set1_ps(2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0f));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23));
    /* NaN lanes (unordered with themselves) return themselves */
    return _mm256_blendv_ps(in, _mm256_mul_ps(p, scale), _mm256_cmp_ps(in, in, _CMP_ORD_Q));
}
#endif

#endif
