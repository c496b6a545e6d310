#include <stddef.h>

#include "core/cpu.h"
#include "ops/gemv_rows.h"
#include "ops/hsum_avx2.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* Threads pay for their wake-up past this many multiply-adds. */
#define PAR_MIN_MADDS 262144.0

void dsk_gemv_rows_f32_portable(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate)
{
#pragma omp parallel for schedule(static) if ((double)M * N * K >= PAR_MIN_MADDS)
    for (int n = 0; n < N; n++) {
        const float *w = W + (size_t)n * K;
        for (int m = 0; m < M; m++) {
            const float *x = X + (size_t)m * K;
            float s = 0;
            for (int k = 0; k < K; k++)
                s += x[k] * w[k];
            float *y = Y + (size_t)m * N + n;
            *y = accumulate ? *y + s : s;
        }
    }
}

#if defined(__x86_64__)
/* The weight rows past the last whole block of four, in the plain loop. */
static void last_rows(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate)
{
    int n0 = N / 4 * 4;
    for (int m = 0; m < M && n0 < N; m++)
        dsk_gemv_rows_f32_portable(X + (size_t)m * K, 1, W + (size_t)n0 * K, N - n0, K, Y + (size_t)m * N + n0,
                                   accumulate);
}

#define AVX2 __attribute__((target("avx2,fma")))

/* Rows n..n+3 of W against rows m and m+1 of X (m+1 only when two):
 * each weight vector loaded once for both.  K's tail past a multiple of
 * 8 is summed in scalars. */
AVX2 static void block4(const float *X, int m, int two, const float *W, int n, int N, int K, float *Y, int accumulate)
{
    const float *w0 = W + (size_t)n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
    const float *x0 = X + (size_t)m * K, *x1 = two ? x0 + K : x0;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 u = _mm256_loadu_ps(x0 + k), v = _mm256_loadu_ps(x1 + k);
        __m256 c0 = _mm256_loadu_ps(w0 + k), c1 = _mm256_loadu_ps(w1 + k);
        __m256 c2 = _mm256_loadu_ps(w2 + k), c3 = _mm256_loadu_ps(w3 + k);
        a0 = _mm256_fmadd_ps(c0, u, a0), a1 = _mm256_fmadd_ps(c1, u, a1);
        a2 = _mm256_fmadd_ps(c2, u, a2), a3 = _mm256_fmadd_ps(c3, u, a3);
        b0 = _mm256_fmadd_ps(c0, v, b0), b1 = _mm256_fmadd_ps(c1, v, b1);
        b2 = _mm256_fmadd_ps(c2, v, b2), b3 = _mm256_fmadd_ps(c3, v, b3);
    }
    float ra[4], rb[4];
    _mm_storeu_ps(ra, dsk_hsum4_avx2(a0, a1, a2, a3));
    _mm_storeu_ps(rb, dsk_hsum4_avx2(b0, b1, b2, b3));
    for (; k < K; k++)
        for (int j = 0; j < 4; j++) {
            ra[j] += x0[k] * w0[(size_t)j * K + k];
            rb[j] += x1[k] * w0[(size_t)j * K + k];
        }
    for (int r = 0; r < 1 + two; r++) {
        const float *res = r ? rb : ra;
        float *y = Y + (size_t)(m + r) * N + n;
        for (int j = 0; j < 4; j++)
            y[j] = accumulate ? y[j] + res[j] : res[j];
    }
}

/* The parallel loops are in functions without a target attribute, each
 * item a call to one with it: clang outlines an OpenMP region into a
 * function without its parent's target features, which then cannot take
 * the vector code inlined (its backend crashed on the AVX-512 kernel). */
static void gemv_rows_avx2(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate)
{
    int blocks = N / 4;
    /* Blocks of four weight rows split among threads; every output has
     * one owner and one order of summation at any thread count. */
#pragma omp parallel for schedule(static) if ((double)M * N * K >= PAR_MIN_MADDS)
    for (int b = 0; b < blocks; b++)
        for (int m = 0; m < M; m += 2)
            block4(X, m, m + 1 < M, W, 4 * b, N, K, Y, accumulate);
    last_rows(X, M, W, N, K, Y, accumulate);
}

/* AVX-512: four weight rows against R input rows at a time, 4R
 * accumulators of 16 lanes (R <= 6: 24 of the 32 registers), so each
 * weight vector loaded serves R products and each input vector four: the
 * loop is bound by the FMA units, not by loads.  K's tail is a masked
 * load, zeros past the end. */
#define AVX512 __attribute__((target("avx512f,avx2,fma")))

/* The four horizontal sums of a, b, c, d: each folded to 8 lanes, then
 * dsk_hsum4_avx2's pairwise adds.  Fourteen instructions for four sums, where one
 * _mm512_reduce_add_ps a sum is eight: at K = 256 the reductions had
 * cost half as much as the multiply-adds. */
AVX512 static inline __attribute__((always_inline)) __m128 hsum4_512(__m512 a, __m512 b, __m512 c, __m512 d)
{
#define FOLD(z) _mm256_add_ps(_mm512_castps512_ps256(z), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1)))
    return dsk_hsum4_avx2(FOLD(a), FOLD(b), FOLD(c), FOLD(d));
#undef FOLD
}

AVX512 static inline __attribute__((always_inline)) void
block4xr_512(const float *X, int m, const float *W, int n, int N, int K, float *Y, int accumulate, const int R)
{
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
            acc[j][r] = _mm512_setzero_ps();
    const float *w = W + (size_t)n * K, *x = X + (size_t)m * K;
    for (int k = 0; k < K; k += 16) {
        __mmask16 live = K - k >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (K - k)) - 1);
        __m512 wv[4], xv[6];
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            wv[j] = _mm512_maskz_loadu_ps(live, w + (size_t)j * K + k);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++)
            xv[r] = _mm512_maskz_loadu_ps(live, x + (size_t)r * K + k);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
#pragma GCC unroll 6
            for (int r = 0; r < R; r++)
                acc[j][r] = _mm512_fmadd_ps(wv[j], xv[r], acc[j][r]);
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        float *y = Y + (size_t)(m + r) * N + n;
        __m128 v = hsum4_512(acc[0][r], acc[1][r], acc[2][r], acc[3][r]);
        _mm_storeu_ps(y, accumulate ? _mm_add_ps(_mm_loadu_ps(y), v) : v);
    }
}

/* Weight rows 4b..4b+3 against every row of X. */
AVX512 static void block_512(const float *X, int M, const float *W, int b, int N, int K, float *Y, int accumulate)
{
    for (int m = 0; m < M; m += 6) {
        switch (M - m < 6 ? M - m : 6) {
        case 1: block4xr_512(X, m, W, 4 * b, N, K, Y, accumulate, 1); break;
        case 2: block4xr_512(X, m, W, 4 * b, N, K, Y, accumulate, 2); break;
        case 3: block4xr_512(X, m, W, 4 * b, N, K, Y, accumulate, 3); break;
        case 4: block4xr_512(X, m, W, 4 * b, N, K, Y, accumulate, 4); break;
        case 5: block4xr_512(X, m, W, 4 * b, N, K, Y, accumulate, 5); break;
        default: block4xr_512(X, m, W, 4 * b, N, K, Y, accumulate, 6); break;
        }
    }
}

static void gemv_rows_avx512(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate)
{
    int blocks = N / 4;
#pragma omp parallel for schedule(static) if ((double)M * N * K >= PAR_MIN_MADDS)
    for (int b = 0; b < blocks; b++)
        block_512(X, M, W, b, N, K, Y, accumulate);
    last_rows(X, M, W, N, K, Y, accumulate);
}

#endif

static int forced = -1;   /* dsk_gemv_rows_force: -1 the CPU's best */

int dsk_gemv_rows_force(int kernel)
{
    if (kernel < -1 || kernel > DSK_GEMV_AVX512)
        return -1;
#if defined(__x86_64__)
    if ((kernel == DSK_GEMV_AVX2 && !dsk_cpu_avx2_fma()) || (kernel == DSK_GEMV_AVX512 && !dsk_cpu_avx512f()))
        return -1;
#else
    if (kernel == DSK_GEMV_AVX2 || kernel == DSK_GEMV_AVX512)
        return -1;
#endif
    forced = kernel;
    return 0;
}

static int kernel_now(void)
{
    if (forced >= 0)
        return forced;
#if defined(__x86_64__)
    return dsk_cpu_avx512f() ? DSK_GEMV_AVX512 : dsk_cpu_avx2_fma() ? DSK_GEMV_AVX2 : DSK_GEMV_PORTABLE;
#else
    return DSK_GEMV_PORTABLE;
#endif
}

int dsk_gemv_rows_max(void)
{
    int k = kernel_now();
    return k == DSK_GEMV_AVX512 ? DSK_GEMV_MAX_ROWS_512 : k == DSK_GEMV_AVX2 ? DSK_GEMV_MAX_ROWS : 0;
}

void dsk_gemv_rows_f32(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate)
{
    switch (kernel_now()) {
#if defined(__x86_64__)
    case DSK_GEMV_AVX512: gemv_rows_avx512(X, M, W, N, K, Y, accumulate); return;
    case DSK_GEMV_AVX2: gemv_rows_avx2(X, M, W, N, K, Y, accumulate); return;
#endif
    default: dsk_gemv_rows_f32_portable(X, M, W, N, K, Y, accumulate);
    }
}
