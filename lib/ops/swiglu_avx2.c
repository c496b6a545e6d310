#include "ops/swiglu_avx2.h"

#include "core/cpu.h"
#include "ops/fast_exp.h"

/* Threads pay for their wake-up past this much work (as the portable
 * kernels' PAR_IF(n * 8)). */
#define PAR_MIN_ELEMENTS 4096

#if defined(__x86_64__)
#define AVX2 __attribute__((target("avx2")))

/* The parallel loops are over chunks of CHUNK elements, each a call to
 * the vector code (clang's OpenMP regions do not take their function's
 * target features). */
enum { CHUNK = 1024 };

AVX2 static void fwd_chunk(float *out, const float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);   /* -g: the sign bit flipped */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i);
        __m256 e = dsk_fast_expf_avx2(_mm256_xor_ps(gv, neg));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++)
        out[i] = g[i] / (1 + dsk_fast_expf(-g[i])) * u[i];
}

AVX2 static void bwd_chunk(float *dg, float *du, const float *dout, const float *g, const float *u, size_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), neg = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gv = _mm256_loadu_ps(g + i), uv = _mm256_loadu_ps(u + i), dv = _mm256_loadu_ps(dout + i);
        __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, dsk_fast_expf_avx2(_mm256_xor_ps(gv, neg))));
        _mm256_storeu_ps(du + i, _mm256_mul_ps(dv, _mm256_mul_ps(gv, sig)));
        /* dout * u * sig * (1 + g * (1 - sig)), left to right */
        __m256 tail = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, sig)));
        _mm256_storeu_ps(dg + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(dv, uv), sig), tail));
    }
    for (; i < n; i++) {
        float sig = 1 / (1 + dsk_fast_expf(-g[i]));
        du[i] = dout[i] * (g[i] * sig);
        dg[i] = dout[i] * u[i] * sig * (1 + g[i] * (1 - sig));
    }
}

static void fwd(float *out, const float *g, const float *u, size_t n)
{
    size_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_ELEMENTS)
    for (size_t c = 0; c < chunks; c++) {
        size_t at = c * CHUNK;
        fwd_chunk(out + at, g + at, u + at, n - at < CHUNK ? n - at : CHUNK);
    }
}

static void bwd(float *dg, float *du, const float *dout, const float *g, const float *u, size_t n)
{
    size_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN_ELEMENTS)
    for (size_t c = 0; c < chunks; c++) {
        size_t at = c * CHUNK;
        bwd_chunk(dg + at, du + at, dout + at, g + at, u + at, n - at < CHUNK ? n - at : CHUNK);
    }
}
#endif

int dsk_swiglu_fwd_avx2(float *out, const float *g, const float *u, size_t n)
{
#if defined(__x86_64__)
    if (dsk_cpu_avx2_fma()) {
        fwd(out, g, u, n);
        return 0;
    }
#endif
    (void)out, (void)g, (void)u, (void)n;
    return -1;
}

int dsk_swiglu_bwd_avx2(float *dg, float *du, const float *dout, const float *g, const float *u, size_t n)
{
#if defined(__x86_64__)
    if (dsk_cpu_avx2_fma()) {
        bwd(dg, du, dout, g, u, n);
        return 0;
    }
#endif
    (void)dg, (void)du, (void)dout, (void)g, (void)u, (void)n;
    return -1;
}
