#include "ops/attn_decode.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>

#include "core/cpu.h"
#include "core/err.h"
#include "ops/attn_first.h"
#include "ops/fast_exp.h"
#include "ops/hsum_avx2.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

enum { MAX_HD = 256, MAX_HEADS = 64 };   /* query heads of a row, in o[] (64 KiB) */

/* Threads pay for their wake-up past this many multiply-adds (as the
 * portable kernels' PAR_MIN_WORK). */
#define PAR_MIN_WORK 32768.0

/* p[j] = scale * (qh . k_j) for the keys [first, last], four at a time;
 * returns the largest.  V vectors of 8 make a head.  A key's score has
 * the same bits whichever keys it is summed beside (dsk_hsum4_avx2's lane
 * t depends on its own argument only; the last few keys of a row are
 * summed beside repeats). */
AVX2 static float scores(float *p, const float *qh, const float *kb, size_t ks, int first, int last, int V,
                         float scale)
{
    float mx = -INFINITY;
    __m128 sc = _mm_set1_ps(scale);
    for (int j = first; j <= last; j += 4) {
        int nk = last - j + 1 < 4 ? last - j + 1 : 4;
        const float *k0 = kb + (size_t)j * ks;
        const float *k1 = nk > 1 ? k0 + ks : k0, *k2 = nk > 2 ? k0 + 2 * ks : k0, *k3 = nk > 3 ? k0 + 3 * ks : k0;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int v = 0; v < V; v++) {
            __m256 qv = _mm256_loadu_ps(qh + 8 * v);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 8 * v), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + 8 * v), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + 8 * v), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + 8 * v), a3);
        }
        float s[4];
        _mm_storeu_ps(s, _mm_mul_ps(dsk_hsum4_avx2(a0, a1, a2, a3), sc));
        for (int t = 0; t < nk; t++) {
            p[j + t] = s[t];
            mx = s[t] > mx ? s[t] : mx;
        }
    }
    return mx;
}

/* p[first..last] = exp(p - mx); returns their sum (eight partial sums,
 * element j into sum (j - first) % 8, added in a fixed tree). */
AVX2 static float exp_sum(float *p, int first, int last, float mx)
{
    float *e = p + first;
    int n = last - first + 1, j = 0;
    __m256 m = _mm256_set1_ps(mx);
    for (; j + 8 <= n; j += 8)
        _mm256_storeu_ps(e + j, dsk_fast_expf_avx2(_mm256_sub_ps(_mm256_loadu_ps(e + j), m)));
    for (; j < n; j++)
        e[j] = dsk_fast_expf(e[j] - mx);
    j = 0;
    float part[8] = {0};
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; l++)
            part[l] += e[j + l];
    for (; j < n; j++)
        part[j & 7] += e[j];
    return ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
}

/* o[0..NV) += sum over j of c p[j] v_j (the NV vectors from vb on of
 * each key j), summed in registers, key by key in order. */
INLINE AVX2 void weighted_sum(__m256 *o, const float *p, float c, const float *vb, size_t ks, int first, int last,
                              const int NV)
{
    __m256 acc[4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        acc[v] = o[v];
    for (int j = first; j <= last; j++) {
        __m256 w = _mm256_set1_ps(p[j] * c);
        const float *vj = vb + (size_t)j * ks;
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[v] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * v), acc[v]);
    }
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++)
        o[v] = acc[v];
}

/* One row's query heads [h0, h0 + nh) (head h reads key head h / G):
 * out_h = the sum over the parts (global, local) of
 * wgt * softmax(q_h K^T / sqrt(hd)) V.  A row's key heads are side by
 * side in its cache, so taking all its heads in one pass reads the cache
 * front to back; each head's arithmetic is the same however many are
 * taken together.  p: nh x (i + 1) scores. */
AVX2 static void row_heads(float *out, const float *q, const float *kb, const float *vb, size_t ks, int i, int h0,
                           int nh, int G, int V, float a, int use_g, int use_l, int window, float scale, float *p,
                           __m256 *o)
{
    int hd = 8 * V;
    size_t pstride = (size_t)i + 1;
    for (int x = 0; x < nh * V; x++)
        o[x] = _mm256_setzero_ps();
    for (int part = 0; part < 2; part++) {
        if (part == 0 ? !use_g : !use_l)
            continue;
        int first = dsk_attn_first(i, i, part == 1, window);
        float wgt = part == 0 ? a : 1 - a, c[MAX_HEADS];
        for (int h = 0; h < nh; h++) {
            float *ph = p + (size_t)h * pstride;
            float mx = scores(ph, q + (size_t)h * hd, kb + (size_t)((h0 + h) / G) * hd, ks, first, i, V, scale);
            c[h] = wgt / exp_sum(ph, first, i, mx);
        }
        /* Each head's output 32 lanes at a time (each lane's sum is the
         * same in any split). */
        for (int h = 0; h < nh; h++) {
            const float *ph = p + (size_t)h * pstride, *vh = vb + (size_t)((h0 + h) / G) * hd;
            for (int v = 0; v < V; v += 4) {
                __m256 *oh = o + (size_t)h * V + v;
                switch (V - v < 4 ? V - v : 4) {
                case 1: weighted_sum(oh, ph, c[h], vh + 8 * v, ks, first, i, 1); break;
                case 2: weighted_sum(oh, ph, c[h], vh + 8 * v, ks, first, i, 2); break;
                case 3: weighted_sum(oh, ph, c[h], vh + 8 * v, ks, first, i, 3); break;
                default: weighted_sum(oh, ph, c[h], vh + 8 * v, ks, first, i, 4); break;
                }
            }
        }
    }
    for (int h = 0; h < nh; h++)
        for (int v = 0; v < V; v++)
            _mm256_storeu_ps(out + (size_t)h * hd + 8 * v, o[(size_t)h * V + v]);
}

/* One piece of work: row r's query heads [h0, h0 + per), with its own
 * output registers. */
AVX2 static void item_avx2(float *out, const float *q, const float *kb, const float *vb, size_t ks, int i, int h0,
                           int per, int G, int V, float a, int use_g, int use_l, int window, float scale, float *p)
{
    __m256 o[MAX_HEADS * MAX_HD / 8];
    row_heads(out, q, kb, vb, ks, i, h0, per, G, V, a, use_g, use_l, window, scale, p, o);
}

/* The parallel loop is in a function without a target attribute, each
 * item a call to one with it (clang's OpenMP regions do not take their
 * function's target features). */
static void decode_avx2(float *out, const float *q, const float *k_cache, const float *v_cache, size_t seq_stride,
                        const int32_t *seq, const int32_t *pos, int n, const float *alpha, const dsk_attn_shape *s)
{
    int H = s->H, KV = s->KV, hd = s->hd, G = H / KV, V = hd / 8, max_keys = 0;
    size_t ks = (size_t)KV * hd;
    float scale = 1 / sqrtf((float)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    float a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
    double work = 0;
    for (int r = 0; r < n; r++) {
        max_keys = pos[r] + 1 > max_keys ? pos[r] + 1 : max_keys;
        work += 2.0 * (pos[r] + 1) * H * hd * (use_g + use_l);
    }
    /* A row's heads in one piece of work when there are rows enough to
     * keep the threads busy; else a query head each (batch 1 of a long
     * context: as many pieces as heads, even with one key head). */
    int par = work >= PAR_MIN_WORK, per = par && n < 2 * omp_get_max_threads() ? 1 : H;
    int items_per_row = H / per;
#pragma omp parallel if (par)
    {
        float *p = dsk_xmalloc((size_t)per * max_keys * sizeof *p);
#pragma omp for schedule(static)
        for (int x = 0; x < n * items_per_row; x++) {
            int r = x / items_per_row, h0 = x % items_per_row * per;
            size_t at = (size_t)seq[r] * seq_stride, head = (size_t)r * H + (size_t)h0;
            item_avx2(out + head * hd, q + head * hd, k_cache + at, v_cache + at, ks, pos[r], h0, per, G, V, a, use_g,
                      use_l, s->window, scale, p);
        }
        free(p);
    }
}
#endif

int dsk_attn_decode_avx2(float *out, const float *q, const float *k_cache, const float *v_cache, size_t seq_stride,
                         const int32_t *seq, const int32_t *pos, int n, const float *alpha, const dsk_attn_shape *s)
{
#if defined(__x86_64__)
    if (!dsk_cpu_avx2_fma() || s->hd < 8 || s->hd % 8 || s->hd > MAX_HD || s->KV < 1 || s->H % s->KV ||
        s->H > MAX_HEADS)
        return -1;
    decode_avx2(out, q, k_cache, v_cache, seq_stride, seq, pos, n, alpha, s);
    return 0;
#else
    (void)out, (void)q, (void)k_cache, (void)v_cache, (void)seq_stride, (void)seq, (void)pos, (void)n, (void)alpha,
        (void)s;
    return -1;
#endif
}
