/* dsk-eval ab's statistics on synthetic paired data whose effect is
 * known: the paired bootstrap's interval, the randomization test's p. */
#include "test.h"

#include "core/rng.h"
#include "eval/ab.h"

static void make_pairs(dsk_rng *r, double effect, double noise, long n, double *a, double *b)
{
    for (long i = 0; i < n; i++) {
        a[i] = dsk_rng_normal(r);
        b[i] = a[i] + effect + noise * dsk_rng_normal(r);
    }
}

TEST(known_effect_is_found_and_covered)
{
    enum { N = 400 };
    double a[N], b[N];
    dsk_rng r;
    dsk_rng_seed(&r, 7);
    make_pairs(&r, 0.3, 1.0, N, a, b);
    dsk_ab_opts o = {10000, 0.95, 1};
    dsk_ab_summary s = {0};
    s.higher_better = 1;
    dsk_ab_bootstrap(a, b, N, &o, &s);
    double mean_d = 0, var = 0;
    for (int i = 0; i < N; i++)
        mean_d += (b[i] - a[i]) / N;
    for (int i = 0; i < N; i++)
        var += (b[i] - a[i] - mean_d) * (b[i] - a[i] - mean_d) / (N - 1);
    double se = sqrt(var / N);
    CHECK_NEAR(s.diff, mean_d, 1e-12);
    CHECK_NEAR(s.mean_b - s.mean_a, mean_d, 1e-12);
    /* The percentile interval agrees with the normal-theory one. */
    CHECK_NEAR(s.lo, mean_d - 1.96 * se, 0.15 * se);
    CHECK_NEAR(s.hi, mean_d + 1.96 * se, 0.15 * se);
    CHECK(s.lo > 0);
    CHECK(s.p < 0.001);
    dsk_buf v = {0};
    dsk_ab_verdict(&s, 0.95, 0.05, &v);
    dsk_buf_addc(&v, 0);
    CHECK(strncmp(v.data, "B better than A by", 18) == 0);
    printf("# %s\n", v.data);
    dsk_buf_free(&v);
    /* Lower-is-better scores flip the verdict. */
    s.higher_better = 0;
    dsk_buf w = {0};
    dsk_ab_verdict(&s, 0.95, 0.05, &w);
    dsk_buf_addc(&w, 0);
    CHECK(strncmp(w.data, "A better than B by", 18) == 0);
    dsk_buf_free(&w);
    /* The level as given (97.5 and 99.9 were printed as 98% and 100%), and
     * a p-value in 3 digits (0.0499 was printed as 0.05, alpha's value). */
    s.p = 0.04989;
    for (int i = 0; i < 2; i++) {
        dsk_buf t = {0};
        dsk_ab_verdict(&s, i ? 0.999 : 0.975, 0.05, &t);
        dsk_buf_addc(&t, 0);
        CHECK(strstr(t.data, i ? "(99.9% CI [" : "(97.5% CI [") != NULL);
        CHECK(strstr(t.data, "p = 0.0499") != NULL);
        dsk_buf_free(&t);
    }
}

/* Over many datasets drawn with effect 0.2, the 95% interval covers 0.2
 * about 95% of the time; with no effect, p < 0.05 about 5% of the time. */
TEST(coverage_and_false_positive_rate)
{
    enum { N = 100, RUNS = 300 };
    double a[N], b[N];
    dsk_rng r;
    dsk_rng_seed(&r, 11);
    dsk_ab_opts o = {2000, 0.95, 3};
    int covered = 0, rejected = 0;
    for (int k = 0; k < RUNS; k++) {
        dsk_ab_summary s = {0};
        make_pairs(&r, 0.2, 1.0, N, a, b);
        o.seed = (uint64_t)k;
        dsk_ab_bootstrap(a, b, N, &o, &s);
        covered += s.lo <= 0.2 && 0.2 <= s.hi;
        make_pairs(&r, 0.0, 1.0, N, a, b);
        dsk_ab_bootstrap(a, b, N, &o, &s);
        rejected += s.p < 0.05;
    }
    printf("# coverage %d/%d, false positives %d/%d\n", covered, RUNS, rejected, RUNS);
    CHECK(covered >= 0.90 * RUNS && covered <= 0.99 * RUNS);
    CHECK(rejected >= 0.01 * RUNS && rejected <= 0.10 * RUNS);
}

TEST(binary_scores_and_identical_runs)
{
    /* 0/1 accuracies: B right on 30 items A missed, A right on 10 B missed. */
    enum { N = 200 };
    double a[N], b[N];
    for (int i = 0; i < N; i++) {
        a[i] = i < 100 || (i >= 130 && i < 140);
        b[i] = i < 130;
    }
    dsk_ab_opts o = {10000, 0.95, 5};
    dsk_ab_summary s = {0};
    dsk_ab_bootstrap(a, b, N, &o, &s);
    CHECK_NEAR(s.mean_a, 110.0 / N, 1e-12);
    CHECK_NEAR(s.mean_b, 130.0 / N, 1e-12);
    CHECK_NEAR(s.diff, 0.1, 1e-12);
    CHECK(s.p < 0.01);   /* exact McNemar p for 30 vs 10 is 0.0022 */
    CHECK(s.p > 0.0001);
    /* The same scores twice: no difference, p = 1. */
    dsk_ab_bootstrap(a, a, N, &o, &s);
    CHECK(s.diff == 0 && s.lo == 0 && s.hi == 0);
    CHECK_NEAR(s.p, 1.0, 1e-12);
    dsk_buf v = {0};
    dsk_ab_verdict(&s, 0.95, 0.05, &v);
    dsk_buf_addc(&v, 0);
    CHECK(strncmp(v.data, "no significant difference at 200 items", 38) == 0);
    dsk_buf_free(&v);
    /* One item: defined, not a crash. */
    dsk_ab_bootstrap(a, b, 1, &o, &s);
    CHECK(s.n == 1 && s.diff == 0);
}

/* A few items: the p-value is the exact randomization test's (counted
 * here with itertools.product over the signs, as scipy's
 * permutation_test with permutation_type="samples" does).  The bootstrap's
 * shifted distribution gave p < 0.001 for one item, or for items that all
 * differ alike. */
TEST(few_items_exact_p)
{
    static const double a0[10] = {0}, one[5] = {1, 1, 1, 1, 0}, d[8] = {0.3, -0.1, 0.5, 0.2, 0.4, -0.2, 0.6, 0.1};
    double ones[10];
    for (int i = 0; i < 10; i++)
        ones[i] = 1;
    dsk_ab_opts o = {10000, 0.95, 5};
    dsk_ab_summary s = {0};
    dsk_ab_bootstrap(a0, one, 1, &o, &s);           /* one item */
    CHECK_NEAR(s.p, 1.0, 1e-12);
    dsk_ab_bootstrap(a0, one, 5, &o, &s);
    CHECK_NEAR(s.p, 4.0 / 32, 1e-12);              /* the sign test's 0.125 */
    dsk_ab_bootstrap(a0, ones, 10, &o, &s);
    CHECK_NEAR(s.p, 2.0 / 1024, 1e-12);
    dsk_ab_bootstrap(a0, d, 8, &o, &s);
    CHECK_NEAR(s.p, 22.0 / 256, 1e-12);
    dsk_ab_bootstrap(d, d, 8, &o, &s);             /* no difference */
    CHECK_NEAR(s.p, 1.0, 1e-12);
    /* Past the exact limit, resampled: near the exact value. */
    enum { N = 24 };
    double b[N], z[N] = {0};
    for (int i = 0; i < N; i++)
        b[i] = i < 17 ? 1 : i < 20 ? -1 : 0;     /* 17 for B, 3 for A: exact two-sided 0.00258 */
    o.resamples = 200000;
    dsk_ab_bootstrap(z, b, N, &o, &s);
    CHECK_NEAR(s.p, 0.002577, 0.0004);
}

/* The p-value is shown with the digits it takes to fall on the verdict's
 * side of alpha. */
TEST(p_shown_on_its_side_of_alpha)
{
    dsk_ab_summary s = {0};
    s.n = 100, s.diff = 0.1, s.lo = 0, s.hi = 0.2, s.higher_better = 1;
    static const struct { double p; const char *shown; } cases[] = {
        {500.0 / 10001, "p = 0.049995"}, {0.04989, "p = 0.0499"}, {0.05, "p = 0.05"}, {0.0500004, "p = 0.05"},
        {0.3, "p = 0.3"}, {0.0009, "p < 0.001"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        s.p = cases[i].p;
        dsk_buf v = {0};
        dsk_ab_verdict(&s, 0.95, 0.05, &v);
        dsk_buf_addc(&v, 0);
        CHECK(strstr(v.data, cases[i].shown) != NULL);
        CHECK((strncmp(v.data, "B better", 8) == 0) == (cases[i].p < 0.05));
        if (!strstr(v.data, cases[i].shown))
            printf("# %s\n", v.data);
        dsk_buf_free(&v);
    }
}

/* A score that is not a number (a diverged model's loss) gives no
 * p-value and no verdict of a difference (it gave p = 0, "better"). */
TEST(non_finite_scores_compare_nothing)
{
    const double a[3] = {0, 0, 0}, b[3] = {NAN, 1, 1}, c[3] = {INFINITY, 1, 1};
    dsk_ab_opts o = {1000, 0.95, 5};
    dsk_ab_summary s = {0};
    for (int k = 0; k < 2; k++) {
        dsk_ab_bootstrap(a, k ? c : b, 3, &o, &s);
        CHECK(isnan(s.p));
        dsk_buf v = {0};
        dsk_ab_verdict(&s, 0.95, 0.05, &v);
        dsk_buf_addc(&v, 0);
        CHECK(strncmp(v.data, "no comparison at 3 items: a score is not a number", 49) == 0);
        dsk_buf_free(&v);
    }
    char p[32];
    dsk_ab_p_fixed(500.0 / 10001, 0.05, p, sizeof p);
    CHECK_STR(p, "0.049995");
    dsk_ab_p_fixed(0.5527447, 0.05, p, sizeof p);
    CHECK_STR(p, "0.5527");
}

RUN_TESTS(T(known_effect_is_found_and_covered), T(coverage_and_false_positive_rate), T(binary_scores_and_identical_runs),
          T(few_items_exact_p), T(p_shown_on_its_side_of_alpha), T(non_finite_scores_compare_nothing))
