/* Drawing the next token from logits: temperature, min-p, top-k, top-p.
 *
 * Nothing here sorts the vocabulary.  Plain temperature sampling is one
 * pass; top-k selects its k tokens in linear time; top-p first keeps only
 * the tokens with p >= (1 - top_p) / n of the mass (the ones below it sum
 * to less than 1 - top_p, so the nucleus is among those kept) and sorts
 * that short list.  At 32 sequences a step and a vocabulary of 8k this is
 * the difference between sampling costing more than the model and costing
 * next to nothing. */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "core/cpu.h"
#include "core/err.h"
#include "model/generate.h"
#include "ops/fast_exp.h"

/* a comes before b: likelier, or as likely with a lower id (repeatable). */
static inline int before(const float *p, int a, int b)
{
    return p[a] > p[b] || (p[a] == p[b] && a < b);
}

static int by_prob_desc(const void *a, const void *b, void *keys)
{
    int x = *(const int *)a, y = *(const int *)b;
    return before(keys, x, y) ? -1 : before(keys, y, x) ? 1 : 0;
}

/* Quickselect: moves the k first of ix[0..n) (in before() order) to the
 * front, in no particular order. */
static void select_first(int *ix, int n, int k, const float *p)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int pivot = ix[lo + (hi - lo) / 2], i = lo, j = hi;
        while (i <= j) {
            while (before(p, ix[i], pivot))
                i++;
            while (before(p, pivot, ix[j]))
                j--;
            if (i <= j) {
                int t = ix[i];
                ix[i++] = ix[j];
                ix[j--] = t;
            }
        }
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
}

/* u in [0, sum): the token of ix[0..n) where the running sum passes u. */
static int32_t draw(const float *p, const int *ix, int n, double sum, dsk_rng *rng)
{
    double u = dsk_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += p[ix[i]];
        if (u < acc)
            return ix[i];
    }
    for (int i = n - 1; i > 0; i--)   /* rounding left u at the very end: the last token with mass */
        if (p[ix[i]] > 0)
            return ix[i];
    return ix[0];
}

/* The last token of [lo, hi) with mass, else lo: where rounding left u
 * past a running sum's end. */
static int32_t last_with_mass(const float *p, int lo, int hi)
{
    for (int i = hi - 1; i > lo; i--)
        if (p[i] > 0)
            return i;
    return lo;
}

/* The whole vocabulary is summed and drawn from in blocks: each block's
 * mass in four partial sums (vector code, where one running sum is a
 * chain of dependent adds, a few cycles each), then u found among the
 * blocks and within its block.  At a vocabulary of 8k and 32 sequences a
 * step that was most of the sampler's time. */
enum { BLOCK = 128, STACK_BLOCKS = 2048 };

static double block_sum(const float *p, int n)
{
    double part[4] = {0};
    int k = 0;
    for (; k + 4 <= n; k += 4)
        for (int l = 0; l < 4; l++)
            part[l] += p[k + l];
    for (; k < n; k++)
        part[k & 3] += p[k];
    return (part[0] + part[2]) + (part[1] + part[3]);
}

/* The blocks' masses into bsum[], their total returned. */
static double sum_blocks(const float *p, int V, double *bsum)
{
    double total = 0;
    for (int b = 0; b * BLOCK < V; b++) {
        int n = V - b * BLOCK < BLOCK ? V - b * BLOCK : BLOCK;
        bsum[b] = block_sum(p + (size_t)b * BLOCK, n);
        total += bsum[b];
    }
    return total;
}

static int32_t draw_blocks(const float *p, int V, const double *bsum, double total, dsk_rng *rng)
{
    double u = dsk_rng_uniform(rng) * total, acc = 0;
    int nb = (V + BLOCK - 1) / BLOCK;
    for (int b = 0; b < nb; b++) {
        if (u < acc + bsum[b]) {
            int lo = b * BLOCK, hi = V < lo + BLOCK ? V : lo + BLOCK;
            for (int i = lo; i < hi; i++) {
                acc += p[i];
                if (u < acc)
                    return i;
            }
            return last_with_mass(p, lo, hi);   /* the block's own rounding */
        }
        acc += bsum[b];
    }
    return last_with_mass(p, 0, V);
}

/* p[i] = exp((logits[i] - mx) * inv_t), and 0 for a logit of -inf (a
 * banned token: the fast exp's floor, 1e-38, would give it mass that a
 * draw's last-resort rounding fallback could land on). */
static inline float exp_one(float logit, float mx, float inv_t)
{
    return logit == -INFINITY ? 0.0f : dsk_fast_expf((logit - mx) * inv_t);
}

#if defined(__x86_64__)
/* 8 at a time: the scalar loop's bits. */
__attribute__((target("avx2"))) static void exp_scaled_avx2(float *p, const float *logits, int V, float mx, float inv_t)
{
    __m256 m = _mm256_set1_ps(mx), it = _mm256_set1_ps(inv_t), ninf = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= V; i += 8) {
        __m256 l = _mm256_loadu_ps(logits + i);
        __m256 e = dsk_fast_expf_avx2(_mm256_mul_ps(_mm256_sub_ps(l, m), it));
        _mm256_storeu_ps(p + i, _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(l, ninf, _CMP_EQ_OQ)));
    }
    for (; i < V; i++)
        p[i] = exp_one(logits[i], mx, inv_t);
}
#endif

static void exp_scaled(float *p, const float *logits, int V, float mx, float inv_t)
{
#if defined(__x86_64__)
    if (dsk_cpu_avx2_fma()) {
        exp_scaled_avx2(p, logits, V, mx, inv_t);
        return;
    }
#endif
    for (int i = 0; i < V; i++)   /* vectorized (see KERNEL_CFLAGS) */
        p[i] = exp_one(logits[i], mx, inv_t);
}

/* The first of the largest logits (NaN never is, unless it comes first):
 * the largest value over eight lanes, which the compiler makes vector
 * code of (one running maximum is a chain), then its first place. */
static int first_max(const float *logits, int V)
{
    if (logits[0] != logits[0])
        return 0;
    float lane[8];
    for (int l = 0; l < 8; l++)
        lane[l] = logits[0];
    int i = 0;
    for (; i + 8 <= V; i += 8)
        for (int l = 0; l < 8; l++)
            lane[l] = logits[i + l] > lane[l] ? logits[i + l] : lane[l];
    for (; i < V; i++)
        lane[0] = logits[i] > lane[0] ? logits[i] : lane[0];
    float mx = lane[0];
    for (int l = 1; l < 8; l++)
        mx = lane[l] > mx ? lane[l] : mx;
    for (i = 0; i < V; i++)
        if (logits[i] == mx)
            return i;
    return 0;
}

int32_t dsk_sample(float *logits, int V, const dsk_sampler_opts *o, dsk_rng *rng, int *ix)
{
    int best = first_max(logits, V);
    if (o->temperature <= 0)
        return best;
    /* Unnormalised probabilities at the temperature, in place. */
    /* A temperature so small that 1/T is past float's range (then 0 x inf
     * is NaN at the best token): the largest float, which is as greedy. */
    double inv = 1.0 / o->temperature;
    float *p = logits, mx = logits[best], inv_t = inv < FLT_MAX ? (float)inv : FLT_MAX;
    exp_scaled(p, logits, V, mx, inv_t);
    if (o->min_p > 0) {   /* no mass below min_p of the likeliest's: those tokens cannot be drawn */
        float floor_p = (float)(o->min_p * p[best]);
        for (int i = 0; i < V; i++)
            p[i] = p[i] >= floor_p ? p[i] : 0;
    }
    double stack_bsum[STACK_BLOCKS], *bsum = stack_bsum;
    int nb = (V + BLOCK - 1) / BLOCK;
    if (nb > STACK_BLOCKS)
        bsum = dsk_xmalloc((size_t)nb * sizeof *bsum);
    double sum = sum_blocks(p, V, bsum);
    int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    int nucleus = o->top_p > 0 && o->top_p < 1;
    int32_t drawn = k == V && !nucleus ? draw_blocks(p, V, bsum, sum, rng) : -1;
    if (bsum != stack_bsum)
        free(bsum);
    if (drawn >= 0)
        return drawn;
    int n = V;
    for (int i = 0; i < V; i++)
        ix[i] = i;
    if (k < V) {
        select_first(ix, V, k, p);
        n = k;
        sum = 0;
        for (int i = 0; i < n; i++)
            sum += p[ix[i]];
    }
    if (nucleus) {
        /* Only tokens above this can be in the nucleus (see the top). */
        double floor_p = (1 - o->top_p) * sum / n;
        int kept = 0;
        for (int i = 0; i < n; i++)
            if (p[ix[i]] >= floor_p)
                ix[kept++] = ix[i];
        n = kept;
    }
    qsort_r(ix, (size_t)n, sizeof *ix, by_prob_desc, p);
    if (nucleus) {
        double cum = 0, target = o->top_p * sum;
        int keep = 0;
        while (keep < n) {
            cum += p[ix[keep++]];
            if (cum >= target)
                break;
        }
        n = keep;
        sum = cum;
    }
    return draw(p, ix, n, sum, rng);
}
