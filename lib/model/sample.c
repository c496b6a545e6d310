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

/* u in [0, sum): the token where the running sum passes u. */
static int32_t draw(const float *p, const int *ix, int n, double sum, dsk_rng *rng)
{
    double u = dsk_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += p[ix ? ix[i] : i];
        if (u < acc)
            return ix ? ix[i] : i;
    }
    for (int i = n - 1; i > 0; i--)   /* rounding left u at the very end: the last token with mass */
        if (p[ix ? ix[i] : i] > 0)
            return ix ? ix[i] : i;
    return ix ? ix[0] : 0;
}

int32_t dsk_sample(float *logits, int V, const dsk_sampler_opts *o, dsk_rng *rng, int *ix)
{
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best])
            best = i;
    if (o->temperature <= 0)
        return best;
    /* Unnormalised probabilities at the temperature, in place. */
    /* A temperature so small that 1/T is past float's range (then 0 x inf
     * is NaN at the best token): the largest float, which is as greedy. */
    double inv = 1.0 / o->temperature;
    float *p = logits, mx = logits[best], inv_t = inv < FLT_MAX ? (float)inv : FLT_MAX;
    for (int i = 0; i < V; i++)   /* vectorized (see KERNEL_CFLAGS) */
        p[i] = dsk_fast_expf((logits[i] - mx) * inv_t);
    if (o->min_p > 0) {   /* no mass below min_p of the likeliest's: those tokens cannot be drawn */
        float floor_p = (float)(o->min_p * p[best]);
        for (int i = 0; i < V; i++)
            p[i] = p[i] >= floor_p ? p[i] : 0;
    }
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += p[i];
    int k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    int nucleus = o->top_p > 0 && o->top_p < 1;
    if (k == V && !nucleus)
        return draw(p, NULL, V, sum, rng);
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
