/* bf16 and fp16 conversions (lib/ops/half.h): known values, ties to
 * even, overflow, subnormals and NaN; every fp16 and bf16 bit pattern
 * round-trips; millions of random floats round as a slow reference
 * (the nearer of the two neighbouring values, ties to the even one)
 * says; and the CPU backend's gemm in bf16 / fp16 is the float32
 * product of the rounded operands. */
#include <float.h>
#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "ops/backend.h"
#include "ops/cpu_kernels.h"
#include "ops/half.h"
#include "test.h"

static dsk_rng rng;


TEST(bf16_known_values)
{
    CHECK(dsk_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(dsk_f32_to_bf16(-2.0f) == 0xc000);
    CHECK(dsk_f32_to_bf16(0.0f) == 0x0000);
    CHECK(dsk_f32_to_bf16(-0.0f) == 0x8000);
    /* 1 + 2^-8 is halfway between 1 and 1 + 2^-7: to the even (1). */
    CHECK(dsk_f32_to_bf16(test_float_of(0x3f808000)) == 0x3f80);
    /* 1 + 3 * 2^-8 is halfway between 0x3f81 and 0x3f82: to the even 0x3f82. */
    CHECK(dsk_f32_to_bf16(test_float_of(0x3f818000)) == 0x3f82);
    CHECK(dsk_f32_to_bf16(test_float_of(0x3f808001)) == 0x3f81);   /* just above the tie */
    CHECK(dsk_f32_to_bf16(test_float_of(0x3f807fff)) == 0x3f80);   /* just below */
    CHECK(dsk_f32_to_bf16(3.14159265f) == 0x4049);
    CHECK(dsk_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(dsk_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(dsk_f32_to_bf16(FLT_MAX) == 0x7f80);             /* past bf16's largest: inf */
    CHECK(dsk_f32_to_bf16(test_float_of(0x7f7f7fff)) == 0x7f7f);   /* just under the midpoint: the largest */
    CHECK(dsk_f32_to_bf16(test_float_of(0x00000001)) == 0x0000);   /* the smallest float subnormal */
    CHECK(dsk_f32_to_bf16(test_float_of(0x00008000)) == 0x0000);   /* a tie between 0 and 0x0001: even */
    CHECK(dsk_f32_to_bf16(test_float_of(0x00018000)) == 0x0002);
    uint16_t n = dsk_f32_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f) != 0);
    n = dsk_f32_to_bf16(test_float_of(0xff800001));                /* a signalling NaN with a low payload */
    CHECK((n & 0xff80) == 0xff80 && (n & 0x7f) != 0);     /* still NaN (not inf), sign kept */
    CHECK(dsk_bf16_to_f32(0x3f80) == 1.0f);
    CHECK(isnan(dsk_bf16_to_f32(0x7fc0)));
}

TEST(fp16_known_values)
{
    CHECK(dsk_f32_to_f16(1.0f) == 0x3c00);
    CHECK(dsk_f32_to_f16(-2.0f) == 0xc000);
    CHECK(dsk_f32_to_f16(0.1f) == 0x2e66);
    CHECK(dsk_f32_to_f16(-0.0f) == 0x8000);
    CHECK(dsk_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(dsk_f32_to_f16(65519.996f) == 0x7bff);
    CHECK(dsk_f32_to_f16(65520.0f) == 0x7c00);            /* the tie with 65536 rounds to even: inf */
    CHECK(dsk_f32_to_f16(-65520.0f) == 0xfc00);
    CHECK(dsk_f32_to_f16(1e10f) == 0x7c00);
    CHECK(dsk_f32_to_f16(INFINITY) == 0x7c00);
    CHECK(dsk_f32_to_f16(-INFINITY) == 0xfc00);
    /* Ties in the normal range. */
    CHECK(dsk_f32_to_f16(1.0f + 0x1p-11f) == 0x3c00);
    CHECK(dsk_f32_to_f16(1.0f + 3 * 0x1p-11f) == 0x3c02);
    CHECK(dsk_f32_to_f16(2049.0f) == 0x6800);             /* 2048 + 1: tie, even 2048 */
    CHECK(dsk_f32_to_f16(2051.0f) == 0x6802);             /* 2050 + 1: tie, even 2052 */
    /* Subnormals: steps of 2^-24. */
    CHECK(dsk_f32_to_f16(0x1p-14f) == 0x0400);            /* the smallest normal */
    CHECK(dsk_f32_to_f16(0x1p-24f) == 0x0001);
    CHECK(dsk_f32_to_f16(0x1p-25f) == 0x0000);            /* a tie between 0 and 2^-24: even */
    CHECK(dsk_f32_to_f16(-0x1p-25f) == 0x8000);
    CHECK(dsk_f32_to_f16(0x1.000002p-25f) == 0x0001);     /* just above the tie */
    CHECK(dsk_f32_to_f16(0x1.8p-24f) == 0x0002);          /* 1.5 steps: tie, even 2 */
    CHECK(dsk_f32_to_f16(0x1.4p-24f) == 0x0001);          /* 1.25 steps */
    CHECK(dsk_f32_to_f16(0x1.ff8p-15f) == 0x03ff);        /* the largest subnormal, 1023 * 2^-24 */
    CHECK(dsk_f32_to_f16(0x1.ffcp-15f) == 0x0400);        /* its tie with 2^-14: even, the normal */
    CHECK(dsk_f32_to_f16(1e-10f) == 0x0000);
    CHECK(dsk_f32_to_f16(test_float_of(0x00000001)) == 0x0000);
    uint16_t n = dsk_f32_to_f16(NAN);
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0);
    n = dsk_f32_to_f16(test_float_of(0xff800001));                /* a payload in the low bits only */
    CHECK((n & 0xfc00) == 0xfc00 && (n & 0x3ff) != 0);
    CHECK(dsk_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(dsk_f16_to_f32(0x8001) == -0x1p-24f);
    CHECK(dsk_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(dsk_f16_to_f32(0x7c00) == INFINITY);
    CHECK(isnan(dsk_f16_to_f32(0x7e00)));
}

/* Every bit pattern: to float and back gives it again (NaNs: a NaN with
 * the same sign, and quiet NaNs exactly). */
TEST(every_pattern_round_trips)
{
    int bad_h = 0, bad_b = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dsk_f16_to_f32((uint16_t)h);
        uint16_t back = dsk_f32_to_f16(f);
        int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? !isnan(f) || (back & 0xfc00) != (h & 0xfc00) || !(back & 0x3ff) || ((h & 0x200) && back != h)
                : back != h)
            bad_h++;
        /* and the float is the value the pattern means */
        if (!nan && (h & 0x7c00) != 0x7c00) {
            int e = (h >> 10) & 0x1f, m = h & 0x3ff;
            double v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
            if ((double)f != ((h & 0x8000) ? -v : v))
                bad_h++;
        }
        f = dsk_bf16_to_f32((uint16_t)h);
        back = dsk_f32_to_bf16(f);
        nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (nan ? !isnan(f) || (back & 0xff80) != (h & 0xff80) || ((h & 0x40) && back != h) : back != h)
            bad_b++;
    }
    if (bad_h || bad_b)
        printf("#   %d fp16 and %d bf16 patterns did not round-trip\n", bad_h, bad_b);
    CHECK(bad_h == 0);
    CHECK(bad_b == 0);
}

static int reference_tie;   /* the last reference() call met a tie */

/* The slow reference: the nearer of the two representable neighbours of
 * |f| (in the sorted table of a format's finite non-negative values,
 * with the first pattern past them, inf, standing at `past`), ties to
 * the even pattern. */
static uint16_t reference(float f, const double *val, int n_finite, double past)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (isnan(f))
        return 0xffff;   /* not compared */
    int lo = 0, hi = n_finite - 1;   /* the last value <= a */
    if (a >= val[hi]) {
        lo = hi;
    } else {
        while (lo < hi) {
            int mid = (lo + hi + 1) / 2;
            if (val[mid] <= a)
                lo = mid;
            else
                hi = mid - 1;
        }
    }
    reference_tie = 0;
    if (val[lo] == a)
        return (uint16_t)(sign | lo);
    double up = lo + 1 < n_finite ? val[lo + 1] : past;
    double d_lo = a - val[lo], d_hi = up - a;   /* exact in double */
    reference_tie = d_lo == d_hi;
    int pick = d_lo < d_hi ? lo : d_hi < d_lo ? lo + 1 : (lo & 1 ? lo + 1 : lo);
    if (pick >= n_finite)
        pick = n_finite;   /* past the largest: inf's pattern */
    return (uint16_t)(sign | pick);
}

/* A random float: random bits (every exponent), or near the format's
 * range, or an exact tie between two of its neighbours. */
static float random_float(int fp16, const double *val, int n_finite)
{
    double u = dsk_rng_uniform(&rng);
    if (u < 0.4)
        return test_float_of((uint32_t)dsk_rng_next(&rng));
    if (u < 0.8) {
        double e = fp16 ? -28 + 46 * dsk_rng_uniform(&rng) : -140 + 270 * dsk_rng_uniform(&rng);
        double v = ldexp(1 + dsk_rng_uniform(&rng), (int)floor(e));
        return (float)(dsk_rng_uniform(&rng) < 0.5 ? -v : v);
    }
    int i = (int)(dsk_rng_uniform(&rng) * (n_finite - 1));
    double mid = (val[i] + val[i + 1]) / 2;   /* a float when the format has fewer bits (always, but near 0) */
    return (float)mid;
}

static void random_against_reference(int fp16)
{
    int n_finite = fp16 ? 0x7c00 : 0x7f80;
    double *val = malloc((size_t)n_finite * sizeof *val);
    for (int i = 0; i < n_finite; i++)
        val[i] = fp16 ? dsk_f16_to_f32((uint16_t)i) : dsk_bf16_to_f32((uint16_t)i);
    double past = fp16 ? 65536.0 : ldexp(1, 128);
    long bad = 0, ties = 0;
    const long N = 3000000;
    for (long t = 0; t < N; t++) {
        float f = random_float(fp16, val, n_finite);
        if (isnan(f))
            continue;
        uint16_t want = reference(f, val, n_finite, past);
        uint16_t got = fp16 ? dsk_f32_to_f16(f) : dsk_f32_to_bf16(f);
        if (got != want && bad++ < 5)
            printf("#   %s(%a = 0x%08x): got 0x%04x, want 0x%04x\n", fp16 ? "fp16" : "bf16", (double)f, test_bits_of(f), got,
                   want);
        ties += reference_tie;
    }
    printf("#   %s: %ld random floats (%ld exact ties), %ld wrong\n", fp16 ? "fp16" : "bf16", N, ties, bad);
    CHECK(bad == 0);
    CHECK(ties > 1000);   /* the tie rule was exercised */
    free(val);
}

TEST(fp16_random_floats_match_the_reference) { random_against_reference(1); }
TEST(bf16_random_floats_match_the_reference) { random_against_reference(0); }

TEST(round_helpers)
{
    enum { N = 100003 };   /* past the threshold for threads */
    float *src = malloc(N * sizeof *src), *dst = malloc(N * sizeof *dst);
    for (int i = 0; i < N; i++)
        src[i] = (float)(dsk_rng_normal(&rng) * 1000);
    src[7] = NAN;
    src[8] = 1e6f;   /* fp16: inf */
    dsk_round_f16(dst, src, N);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += i == 7 ? !isnan(dst[i]) : test_bits_of(dst[i]) != test_bits_of(dsk_f16_to_f32(dsk_f32_to_f16(src[i])));
    CHECK(bad == 0);
    CHECK(dst[8] == INFINITY);
    dsk_round_dtype(DSK_DTYPE_BF16, dst, src, N);
    bad = 0;
    for (int i = 0; i < N; i++)
        bad += i == 7 ? !isnan(dst[i]) : test_bits_of(dst[i]) != test_bits_of(dsk_bf16_to_f32(dsk_f32_to_bf16(src[i])));
    CHECK(bad == 0);
    memcpy(dst, src, N * sizeof *dst);
    dsk_round_dtype(DSK_DTYPE_FP16, dst, dst, N);   /* in place */
    CHECK(dst[0] == dsk_f16_to_f32(dsk_f32_to_f16(src[0])));
    dsk_round_dtype(DSK_DTYPE_FP32, dst, src, N);   /* a copy */
    CHECK(!memcmp(dst + 9, src + 9, (N - 9) * sizeof *dst));
    free(src);
    free(dst);
}

TEST(dtype_names)
{
    CHECK(dsk_dtype_parse("fp32") == DSK_DTYPE_FP32);
    CHECK(dsk_dtype_parse("bf16") == DSK_DTYPE_BF16);
    CHECK(dsk_dtype_parse("fp16") == DSK_DTYPE_FP16);
    CHECK(dsk_dtype_parse("fp8") == -1);
    CHECK(dsk_dtype_parse("") == -1);
    CHECK(dsk_dtype_parse(NULL) == -1);
    CHECK_STR(dsk_dtype_name(DSK_DTYPE_BF16), "bf16");
    CHECK_STR(dsk_dtype_name(7), "?");
}

/* The CPU backend: fp32 by default (a fresh backend's gemm_dtype is 0),
 * and in bf16 / fp16 the float32 product of the rounded operands. */
TEST(cpu_gemm_rounds_its_operands)
{
    dsk_backend *be = dsk_backend_cpu(2);
    CHECK(be->gemm_dtype == DSK_DTYPE_FP32);
    int M = 37, N = 29, K = 300;
    float *A = malloc((size_t)M * K * sizeof *A), *B = malloc((size_t)K * N * sizeof *B);
    float *C = malloc((size_t)M * N * sizeof *C), *C32 = malloc((size_t)M * N * sizeof *C);
    float *ra = malloc((size_t)M * K * sizeof *A), *rb = malloc((size_t)K * N * sizeof *B);
    for (int i = 0; i < M * K; i++)
        A[i] = (float)dsk_rng_normal(&rng);
    for (int i = 0; i < K * N; i++)
        B[i] = (float)dsk_rng_normal(&rng);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            be->gemm_dtype = DSK_DTYPE_FP32;
            be->gemm(be, ta, tb, M, N, K, 1, A, B, 0, C32);
            float *want = malloc((size_t)M * N * sizeof *want);
            dsk_cpu_gemm_f32(ta, tb, M, N, K, 1, A, B, 0, want);
            CHECK(!memcmp(C32, want, (size_t)M * N * sizeof *want));   /* fp32: untouched */
            free(want);
            for (int dt = DSK_DTYPE_BF16; dt <= DSK_DTYPE_FP16; dt++) {
                dsk_round_dtype(dt, ra, A, (size_t)M * K);
                dsk_round_dtype(dt, rb, B, (size_t)K * N);
                be->gemm_dtype = dt;
                for (int i = 0; i < M * N; i++)
                    C[i] = 0.5f;
                be->gemm(be, ta, tb, M, N, K, 1.5f, A, B, 2.0f, C);   /* alpha and beta as usual */
                double worst = 0, off = 0, scale = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) {
                        double s = 0;
                        for (int k = 0; k < K; k++) {
                            double a = ta ? ra[(size_t)k * M + i] : ra[(size_t)i * K + k];
                            double b = tb ? rb[(size_t)j * K + k] : rb[(size_t)k * N + j];
                            s += a * b;
                        }
                        double want_ij = 1.5 * s + 2.0 * 0.5, got = C[(size_t)i * N + j];
                        worst = fmax(worst, fabs(got - want_ij));
                        off = fmax(off, fabs(got - (1.5 * C32[(size_t)i * N + j] + 1.0)));
                        scale = fmax(scale, fabs(want_ij));
                    }
                CHECK(worst / scale < 1e-5);                 /* the rounded product, float32 sums */
                CHECK(off / scale > (dt == DSK_DTYPE_BF16 ? 3e-4 : 3e-5));   /* and not the fp32 one */
            }
        }
    /* fp16 overflow shows as inf, which is what a loss scale looks for. */
    be->gemm_dtype = DSK_DTYPE_FP16;
    A[0] = 70000.0f;
    be->gemm(be, 0, 0, M, N, K, 1, A, B, 0, C);
    int inf_row = 0;
    for (int j = 0; j < N; j++)
        inf_row += !isfinite(C[j]);
    CHECK(inf_row == N);
    CHECK(isfinite(C[N]));
    be->destroy(be);
    free(A), free(B), free(C), free(C32), free(ra), free(rb);
}

int main(void)
{
    dsk_rng_seed(&rng, 20240611);
    static const test_case cases[] = {T(bf16_known_values),
                                      T(fp16_known_values),
                                      T(every_pattern_round_trips),
                                      T(fp16_random_floats_match_the_reference),
                                      T(bf16_random_floats_match_the_reference),
                                      T(round_helpers),
                                      T(dtype_names),
                                      T(cpu_gemm_rounds_its_operands)};
    return run_tests(cases, sizeof cases / sizeof cases[0]);
}
