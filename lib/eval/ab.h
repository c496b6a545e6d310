/* A/B comparison of two checkpoints on the same items: the paired
 * difference of per-item scores, a paired bootstrap confidence interval,
 * a paired randomization test's p-value, and a verdict in words. */
#ifndef DSK_EVAL_AB_H
#define DSK_EVAL_AB_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* One compared measure (a task's metric). */
typedef struct dsk_ab_summary {
    const char *name;
    double mean_a, mean_b;
    double diff;        /* mean of b[i] - a[i] */
    double lo, hi;      /* confidence interval of diff (percentile bootstrap) */
    double confidence;  /* its level (0.95 ...); 0: not known (a plot then names none) */
    double p;           /* two-sided p-value of "no difference" */
    long n;             /* paired items */
    int higher_better;  /* 1: accuracy-like; 0: loss-like (lower is better) */
} dsk_ab_summary;

typedef struct dsk_ab_opts {
    int resamples;      /* bootstrap resamples, default 10000 */
    double confidence;  /* default 0.95 */
    uint64_t seed;
} dsk_ab_opts;

/* Up to this many items the p-value counts every sign assignment. */
#define DSK_AB_EXACT_MAX_N 16

/* Fills s (all but name and higher_better) from the paired scores a[i],
 * b[i] of n >= 1 items.  The interval is the percentile interval of the
 * bootstrap's resampled mean differences.  The p-value is the paired
 * randomization test's: the share of sign assignments s[i] = +-1 with
 * |sum s[i] d[i]| >= |sum d[i]|, all 2^n of them for n <=
 * DSK_AB_EXACT_MAX_N, else resamples drawn at random, counted with the +1
 * correction so it is never exactly 0.  Deterministic for a given seed. */
void dsk_ab_bootstrap(const double *a, const double *b, long n, const dsk_ab_opts *o, dsk_ab_summary *s);

/* "B better than A by x ± y (95% CI [lo, hi]), p = …, n = …" when p is
 * below alpha, else "no significant difference at n items (…)"; "no
 * comparison …" when p is NaN (a score that is not a number: its p-value
 * is NaN, never a difference). */
/* p with 4 decimals, or as many as it takes to fall on the verdict's
 * side of alpha (a table's column beside the verdict). */
void dsk_ab_p_fixed(double p, double alpha, char *buf, size_t len);

void dsk_ab_verdict(const dsk_ab_summary *s, double confidence, double alpha, dsk_buf *out);

#endif
