/* The four horizontal sums of four 8-lane vectors, for the x86 kernels
 * (gemv_rows.c, attn_decode.c).  Lane t of the result depends on its own
 * argument only, in a fixed order of pairwise adds. */
#ifndef DSK_OPS_HSUM_AVX2_H
#define DSK_OPS_HSUM_AVX2_H

#if defined(__x86_64__)
#include <immintrin.h>

static inline __attribute__((target("avx2"), always_inline)) __m128 dsk_hsum4_avx2(__m256 a, __m256 b, __m256 c,
                                                                                     __m256 d)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}
#endif

#endif
