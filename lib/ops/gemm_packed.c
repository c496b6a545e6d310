#include "ops/gemm_packed.h"

#include <stdlib.h>
#include <string.h>

#include "core/cpu.h"
#include "core/err.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { PANEL = 32, MAX_R = 12 };

/* Threads pay for their wake-up past this many multiply-adds (as gemv_rows.c). */
#define PAR_MIN_MADDS 262144.0

int dsk_packed_available(void) { return dsk_cpu_avx2_fma(); }

size_t dsk_packed_bytes(int N, int K) { return (size_t)(N + PANEL - 1) / PANEL * K * PANEL * sizeof(float); }

int dsk_packed_make(dsk_packed_weight *p, const float *W, int N, int K)
{
    memset(p, 0, sizeof *p);
    if (!dsk_packed_available() || N < 1 || K < 1)
        return 0;
    size_t bytes = dsk_packed_bytes(N, K);
    p->panels = aligned_alloc(64, bytes);
    if (!p->panels)
        return 0;   /* the products keep to W */
    p->N = N, p->K = K;
    int np = (N + PANEL - 1) / PANEL;
#pragma omp parallel for schedule(static) if ((double)N * K >= PAR_MIN_MADDS)
    for (int q = 0; q < np; q++) {
        float *P = p->panels + (size_t)q * K * PANEL;
        for (int j = 0; j < PANEL; j++) {
            int n = q * PANEL + j;
            for (int k = 0; k < K; k++)
                P[(size_t)k * PANEL + j] = n < N ? W[(size_t)n * K + k] : 0.0f;
        }
    }
    return 1;
}

void dsk_packed_free(dsk_packed_weight *p)
{
    free(p->panels);
    memset(p, 0, sizeof *p);
}

#if defined(__x86_64__)
#define AVX512 __attribute__((target("avx512f")))

/* AVX-512: R rows of X against one panel: 2R accumulators of 16 lanes, each the
 * sum over k in order.  nvalid of the panel's 32 outputs are real. */
static inline AVX512 __attribute__((always_inline)) void panel_rows(const float *P, int K, const float *X, float *Y,
                                                                    int N, int nvalid, int accumulate, const int R)
{
    __m512 acc[MAX_R][2];
#pragma GCC unroll 12
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        __m512 w0 = _mm512_load_ps(P + (size_t)k * PANEL), w1 = _mm512_load_ps(P + (size_t)k * PANEL + 16);
#pragma GCC unroll 12
        for (int r = 0; r < R; r++) {
            __m512 x = _mm512_set1_ps(X[(size_t)r * K + k]);
            acc[r][0] = _mm512_fmadd_ps(w0, x, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(w1, x, acc[r][1]);
        }
    }
    __mmask16 m0 = nvalid >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nvalid) - 1);
    __mmask16 m1 = nvalid >= 32 ? (__mmask16)0xffff : nvalid <= 16 ? 0 : (__mmask16)((1u << (nvalid - 16)) - 1);
#pragma GCC unroll 12
    for (int r = 0; r < R; r++) {
        float *y = Y + (size_t)r * N;
        __m512 v0 = acc[r][0], v1 = acc[r][1];
        if (accumulate) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, y), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, y + 16), v1);
        }
        _mm512_mask_storeu_ps(y, m0, v0);
        _mm512_mask_storeu_ps(y + 16, m1, v1);
    }
}

/* One panel P against R rows x (gemm_items's item). */
AVX512 static void item_avx512(const float *P, int K, const float *x, float *y, int N, int nvalid, int accumulate, int R)
{
    switch (R) {
    case 1: panel_rows(P, K, x, y, N, nvalid, accumulate, 1); break;
    case 2: panel_rows(P, K, x, y, N, nvalid, accumulate, 2); break;
    case 3: panel_rows(P, K, x, y, N, nvalid, accumulate, 3); break;
    case 4: panel_rows(P, K, x, y, N, nvalid, accumulate, 4); break;
    case 5: panel_rows(P, K, x, y, N, nvalid, accumulate, 5); break;
    case 6: panel_rows(P, K, x, y, N, nvalid, accumulate, 6); break;
    case 7: panel_rows(P, K, x, y, N, nvalid, accumulate, 7); break;
    case 8: panel_rows(P, K, x, y, N, nvalid, accumulate, 8); break;
    case 9: panel_rows(P, K, x, y, N, nvalid, accumulate, 9); break;
    case 10: panel_rows(P, K, x, y, N, nvalid, accumulate, 10); break;
    case 11: panel_rows(P, K, x, y, N, nvalid, accumulate, 11); break;
    default: panel_rows(P, K, x, y, N, nvalid, accumulate, 12); break;
    }
}

/* AVX2 (16 registers): a panel as four vectors of 8 outputs against up
 * to 3 broadcast rows.  Each lane is the same chain of fused
 * multiply-adds as in the AVX-512 kernel: the same bits. */
#define AVX2 __attribute__((target("avx2,fma")))
enum { MAX_R2 = 3 };

static inline AVX2 __attribute__((always_inline)) void panel_rows_avx2(const float *P, int K, const float *X, float *Y,
                                                                       int N, int nvalid, int accumulate, const int R)
{
    __m256 acc[MAX_R2][4];
#pragma GCC unroll 3
    for (int r = 0; r < R; r++)
        acc[r][0] = acc[r][1] = acc[r][2] = acc[r][3] = _mm256_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *pk = P + (size_t)k * PANEL;
        __m256 w0 = _mm256_load_ps(pk), w1 = _mm256_load_ps(pk + 8), w2 = _mm256_load_ps(pk + 16),
               w3 = _mm256_load_ps(pk + 24);
#pragma GCC unroll 3
        for (int r = 0; r < R; r++) {
            __m256 x = _mm256_broadcast_ss(X + (size_t)r * K + k);
            acc[r][0] = _mm256_fmadd_ps(w0, x, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(w1, x, acc[r][1]);
            acc[r][2] = _mm256_fmadd_ps(w2, x, acc[r][2]);
            acc[r][3] = _mm256_fmadd_ps(w3, x, acc[r][3]);
        }
    }
#pragma GCC unroll 3
    for (int r = 0; r < R; r++) {
        float *y = Y + (size_t)r * N, out[PANEL];
        for (int v = 0; v < 4; v++)
            _mm256_storeu_ps(out + 8 * v, acc[r][v]);
        for (int j = 0; j < nvalid; j++)
            y[j] = accumulate ? y[j] + out[j] : out[j];
    }
}

AVX2 static void item_avx2(const float *P, int K, const float *x, float *y, int N, int nvalid, int accumulate, int R)
{
    switch (R) {
    case 1: panel_rows_avx2(P, K, x, y, N, nvalid, accumulate, 1); break;
    case 2: panel_rows_avx2(P, K, x, y, N, nvalid, accumulate, 2); break;
    default: panel_rows_avx2(P, K, x, y, N, nvalid, accumulate, 3); break;
    }
}

/* Panel by panel, all its chunks of rows together: a panel is read from
 * memory once, then from the caches.  The rows in chunks of at most
 * max_r, as even as they go.  The parallel loop is in a function without
 * a target attribute, each item a call to one with it (clang's OpenMP
 * regions do not take their function's target features). */
static void gemm_items(const dsk_packed_weight *p, const float *X, int M, float *Y, int accumulate, int avx512)
{
    int N = p->N, K = p->K, np = (N + PANEL - 1) / PANEL, max_r = avx512 ? MAX_R : MAX_R2;
    int chunks = (M + max_r - 1) / max_r, per = (M + chunks - 1) / chunks;
#pragma omp parallel for collapse(2) schedule(static) if ((double)M * N * K >= PAR_MIN_MADDS)
    for (int q = 0; q < np; q++)
        for (int c = 0; c < chunks; c++) {
            int m = c * per, R = M - m < per ? M - m : per;
            if (R <= 0)
                continue;
            const float *P = p->panels + (size_t)q * K * PANEL, *x = X + (size_t)m * K;
            float *y = Y + (size_t)m * N + (size_t)q * PANEL;
            int nvalid = N - q * PANEL < PANEL ? N - q * PANEL : PANEL;
            if (avx512)
                item_avx512(P, K, x, y, N, nvalid, accumulate, R);
            else
                item_avx2(P, K, x, y, N, nvalid, accumulate, R);
        }
}
#endif

/* Tests: 1 keeps to the AVX2 kernel on a CPU with AVX-512. */
static int avx2_only;

void dsk_packed_force_avx2(int on) { avx2_only = on; }

void dsk_packed_gemm(const dsk_packed_weight *p, const float *X, int M, float *Y, int accumulate)
{
#if defined(__x86_64__)
    if (p->panels && M >= 1) {
        gemm_items(p, X, M, Y, accumulate, dsk_cpu_avx512f() && !avx2_only);
        return;
    }
#endif
    (void)X, (void)M, (void)Y, (void)accumulate;
    dsk_die(EX_SOFTWARE, "dsk_packed_gemm: no packed weight (or no AVX2)");
}
