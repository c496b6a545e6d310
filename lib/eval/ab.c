#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/rng.h"
#include "eval/ab.h"

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* The q-quantile of sorted v[0..n) by linear interpolation (numpy's default). */
static double quantile(const double *v, int n, double q)
{
    double at = q * (n - 1);
    int i = (int)floor(at);
    if (i >= n - 1)
        return v[n - 1];
    return v[i] + (at - i) * (v[i + 1] - v[i]);
}

/* The paired randomization test (Fisher's, by sign flips): under "no
 * difference" each d[i] is as likely as -d[i], so p is the share of the
 * 2^n sign assignments whose mean is at least as far from 0 as D.  All of
 * them for n <= DSK_AB_EXACT_MAX_N; else R drawn at random, with the +1
 * correction.  Unlike the bootstrap's shifted distribution, this holds for
 * a few items: one item, or items that all differ alike, give no small p. */
static double sign_flip_p(const double *d, long n, int R, uint64_t seed)
{
    double obs = 0, scale = 0;
    for (long i = 0; i < n; i++) {
        obs += d[i];
        scale += fabs(d[i]);
    }
    if (!isfinite(scale))
        return NAN;   /* a score that is not a number (a diverged model's loss): no test */
    /* sums that equal |obs| but for rounding count as extreme */
    double bar = fabs(obs) - 1e-9 * scale;
    if (n <= DSK_AB_EXACT_MAX_N) {
        uint64_t extreme = 0, all = 1ull << n;
        for (uint64_t m = 0; m < all; m++) {
            double sum = 0;
            for (long i = 0; i < n; i++)
                sum += (m >> i & 1) ? -d[i] : d[i];
            extreme += fabs(sum) >= bar;
        }
        return (double)extreme / (double)all;
    }
    dsk_rng rng;
    dsk_rng_seed(&rng, seed ^ 0x5349474e464c4950ull);   /* apart from the bootstrap's draws */
    long extreme = 0;
    for (int r = 0; r < R; r++) {
        double sum = 0;
        uint64_t bits = 0;
        for (long i = 0; i < n; i++) {
            if ((i & 63) == 0)
                bits = dsk_rng_next(&rng);
            sum += (bits >> (i & 63) & 1) ? -d[i] : d[i];
        }
        extreme += fabs(sum) >= bar;
    }
    return (extreme + 1.0) / (R + 1.0);
}

void dsk_ab_bootstrap(const double *a, const double *b, long n, const dsk_ab_opts *o, dsk_ab_summary *s)
{
    int R = o->resamples > 0 ? o->resamples : 10000;
    double conf = o->confidence > 0 && o->confidence < 1 ? o->confidence : 0.95;
    double *d = dsk_xmalloc((size_t)n * sizeof *d), *means = dsk_xmalloc((size_t)R * sizeof *means);
    double sa = 0, sb = 0;
    for (long i = 0; i < n; i++) {
        d[i] = b[i] - a[i];
        sa += a[i];
        sb += b[i];
    }
    s->n = n;
    s->mean_a = sa / n;
    s->mean_b = sb / n;
    /* The mean difference as the mean of the paired differences, so the
     * interval below is centred on exactly what is reported. */
    double sd = 0;
    for (long i = 0; i < n; i++)
        sd += d[i];
    s->diff = sd / n;
    dsk_rng rng;
    dsk_rng_seed(&rng, o->seed);
    for (int r = 0; r < R; r++) {
        double sum = 0;
        for (long i = 0; i < n; i++)
            sum += d[dsk_rng_next(&rng) % (uint64_t)n];
        means[r] = sum / n;
    }
    qsort(means, (size_t)R, sizeof *means, cmp_double);
    s->confidence = conf;
    s->lo = quantile(means, R, (1 - conf) / 2);
    s->hi = quantile(means, R, 1 - (1 - conf) / 2);
    s->p = sign_flip_p(d, n, R, o->seed);
    if (s->p > 1)
        s->p = 1;
    free(d);
    free(means);
}

void dsk_ab_p_fixed(double p, double alpha, char *buf, size_t len)
{
    for (int places = 4; places <= 17; places++) {
        snprintf(buf, len, "%.*f", places, p);
        if (isnan(p) || (strtod(buf, NULL) < alpha) == (p < alpha))
            break;
    }
}

void dsk_ab_verdict(const dsk_ab_summary *s, double confidence, double alpha, dsk_buf *out)
{
    double half = (s->hi - s->lo) / 2;
    char pct[32];   /* 97.5, not 98: the level as given */
    snprintf(pct, sizeof pct, "%.6g", confidence * 100);
    char line[512];
    int b_ahead = s->higher_better ? s->diff > 0 : s->diff < 0;
    char p[32];
    if (isnan(s->p)) {
        snprintf(line, sizeof line, "no comparison at %ld item%s: a score is not a number (B - A = %.4g)", s->n,
                 s->n == 1 ? "" : "s", s->diff);
        dsk_buf_adds(out, line);
        return;
    }
    if (s->p < 0.001) {
        snprintf(p, sizeof p, "p < 0.001");
    } else {
        /* 3 digits, or as many as it takes for the figure shown to fall
         * on the verdict's side of alpha (0.049995 is not "0.05") */
        for (int digits = 3; digits <= 17; digits++) {
            snprintf(p, sizeof p, "p = %.*g", digits, s->p);
            if ((strtod(p + 4, NULL) < alpha) == (s->p < alpha))
                break;
        }
    }
    if (s->p < alpha)
        snprintf(line, sizeof line, "%s better than %s by %.4g ± %.2g (%s%% CI [%.4g, %.4g]), %s, n = %ld",
                 b_ahead ? "B" : "A", b_ahead ? "A" : "B", fabs(s->diff), half, pct, s->lo, s->hi, p, s->n);
    else
        snprintf(line, sizeof line,
                 "no significant difference at %ld item%s (B - A = %.4g, %s%% CI [%.4g, %.4g], %s)", s->n,
                 s->n == 1 ? "" : "s", s->diff, pct, s->lo, s->hi, p);
    dsk_buf_adds(out, line);
}
