/* int4 GPTQ layout and kernels: fp16 conversion, packing against the
 * GPTQ bit layout written out by hand, pack/unpack round trips, and both
 * matmul kernels against dequantize + a plain product in double. */
#include <omp.h>

#include "core/rng.h"
#include "quant/int4.h"
#include "test.h"

static dsk_rng rng;


static int half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

/* ---- fp16 ------------------------------------------------------------------------------------------- */

TEST(half_exhaustive_round_trip)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = dsk_f16_to_f32((uint16_t)h);
        uint16_t back = dsk_f32_to_f16(f);
        if (half_is_nan((uint16_t)h)) {
            if (!(f != f) || !half_is_nan(back) || (back & 0x8000) != (h & 0x8000))
                bad++;
        } else if (back != h) {
            if (bad < 5)
                printf("#   half 0x%04x -> %g -> 0x%04x\n", h, (double)f, back);
            bad++;
        }
    }
    CHECK(bad == 0);
    /* Spot values of f16 -> f32. */
    CHECK(dsk_f16_to_f32(0x3c00) == 1.0f);
    CHECK(dsk_f16_to_f32(0xc000) == -2.0f);
    CHECK(dsk_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(dsk_f16_to_f32(0x0001) == 0x1p-24f);
    CHECK(dsk_f16_to_f32(0x03ff) == 1023 * 0x1p-24f);
    CHECK(dsk_f16_to_f32(0x0400) == 0x1p-14f);
    CHECK(test_bits_of(dsk_f16_to_f32(0x8000)) == 0x80000000u);
    CHECK(dsk_f16_to_f32(0x7c00) == INFINITY);
    CHECK(dsk_f16_to_f32(0xfc00) == -INFINITY);
}

TEST(half_rounding_cases)
{
    static const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},
        {-0.0f, 0x8000},
        {1.0f, 0x3c00},
        {1.0f + 0x1p-11f, 0x3c00},            /* halfway, even below */
        {1.0f + 3 * 0x1p-11f, 0x3c02},        /* halfway, even above */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01}, /* just past halfway */
        {1.0f + 0x1p-10f, 0x3c01},
        {2047.0f, 0x67ff},
        {2049.0f, 0x6800}, /* 2048 + half an ulp (2) -> even 2048 */
        {2051.0f, 0x6802}, /* -> even 2052 */
        {65504.0f, 0x7bff},
        {65519.0f, 0x7bff},
        {65520.0f, 0x7c00}, /* halfway to 65536: ties to even = overflow */
        {1e6f, 0x7c00},
        {-1e6f, 0xfc00},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},            /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400}, /* halfway between 0x3ff and 0x400 -> even 0x400 */
        {0x1p-24f, 0x0001},            /* smallest subnormal */
        {0x1p-25f, 0x0000},            /* halfway to it: even is zero */
        {0x1p-25f * 1.0000001f, 0x0001},
        {3 * 0x1p-26f, 0x0001},  /* 0.75 units */
        {3 * 0x1p-25f, 0x0002},  /* 1.5 units -> even 2 */
        {5 * 0x1p-25f, 0x0002},  /* 2.5 units -> even 2 */
        {0x1p-26f, 0x0000},
        {-0x1p-24f, 0x8001},
        {1e-10f, 0x0000},
        {0.1f, 0x2e66},
        {3.14159265f, 0x4248},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        uint16_t got = dsk_f32_to_f16(cases[k].f);
        if (got != cases[k].h) {
            printf("#   %a -> 0x%04x, want 0x%04x\n", (double)cases[k].f, got, cases[k].h);
            test_case_failed = 1;
        }
    }
    /* NaN stays NaN, keeps its sign. */
    uint16_t n = dsk_f32_to_f16(test_float_of(0x7fc00000));
    CHECK(half_is_nan(n) && !(n & 0x8000));
    n = dsk_f32_to_f16(test_float_of(0xff800001)); /* a signalling NaN with only a low payload bit */
    CHECK(half_is_nan(n) && (n & 0x8000));
}

/* Every float in a stride through all 2^32 bit patterns converts to the
 * nearest half, ties to the even one (checked in double, from the half's
 * neighbours), and agrees with the compiler's _Float16 where it has one. */
TEST(half_nearest_even_sampled)
{
    int bad = 0;
    for (uint64_t u = 0; u < (1ull << 32); u += 4093) {
        float f = test_float_of((uint32_t)u);
        if (f != f)
            continue;
        uint16_t h = dsk_f32_to_f16(f);
        double d = fabs((double)f), v = fabs((double)dsk_f16_to_f32(h));
        int ok = (h & 0x8000) == (test_bits_of(f) & 0x80000000u) >> 16;
        if (d >= 65520.0) {
            ok = ok && (h & 0x7fff) == 0x7c00;
        } else {
            uint16_t mag = h & 0x7fff;
            double below = mag ? fabs((double)dsk_f16_to_f32(mag - 1)) : -1;
            double above = fabs((double)dsk_f16_to_f32(mag + 1));
            double err = fabs(d - v);
            ok = ok && mag < 0x7c00 && err <= fabs(d - above) && (below < 0 || err <= fabs(d - below));
            if (ok && ((below >= 0 && err == fabs(d - below)) || err == fabs(d - above)))
                ok = (mag & 1) == 0; /* a tie went to the even mantissa */
        }
#ifdef __FLT16_MAX__
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, sizeof rb);
        ok = ok && rb == h;
#endif
        if (!ok) {
            if (bad < 5)
                printf("#   %a -> 0x%04x\n", (double)f, h);
            bad++;
        }
    }
    CHECK(bad == 0);
}

/* ---- layout -------------------------------------------------------------------------------------- */

/* The GPTQ layout, written out bit by bit: the test's own reading of
 * qweight/qzeros, independent of int4.c. */
static int ref_code(const dsk_q4_linear *L, int j, int i)
{
    uint32_t w = (uint32_t)L->qweight[(size_t)(i / 8) * L->rows + j];
    return (int)((w >> (4 * (i % 8))) & 0xf);
}

static int ref_zero(const dsk_q4_linear *L, int g, int j)
{
    uint32_t w = (uint32_t)L->qzeros[(size_t)g * (L->rows / 8) + j / 8];
    return (int)((w >> (4 * (j % 8))) & 0xf) + 1; /* stored as zero - 1 */
}

TEST(pack_known_words)
{
    /* 8x16, two groups of 8: row j, column i has code (i + j) % 16;
     * zero point of group g, row j is 1 + (j + g) % 16. */
    enum { R = 8, C = 16, G = 8 };
    uint8_t codes[R * C], zeros[2 * R];
    float scales[2 * R];
    for (int j = 0; j < R; j++) {
        for (int i = 0; i < C; i++)
            codes[j * C + i] = (uint8_t)((i + j) % 16);
        for (int g = 0; g < 2; g++) {
            zeros[g * R + j] = (uint8_t)(1 + (j + g) % 16);
            scales[g * R + j] = 0.5f * (float)(j + 1);
        }
    }
    dsk_q4_linear L = {.rows = R, .cols = C, .group_size = G};
    dsk_err err = {0};
    CHECK(dsk_q4_pack(&L, codes, zeros, scales, NULL, &err) == 0);
    /* qweight[0][0]: columns 0..7 of row 0, column 0 in the low nibble. */
    CHECK((uint32_t)L.qweight[0] == 0x76543210u);
    CHECK((uint32_t)L.qweight[1] == 0x87654321u);    /* row 1 */
    CHECK((uint32_t)L.qweight[R + 0] == 0xfedcba98u); /* columns 8..15, row 0 */
    CHECK((uint32_t)L.qweight[R + 7] == 0x6543210fu); /* row 7: 15, 0, 1, ... */
    /* qzeros[g][0]: rows 0..7, each zero - 1. */
    CHECK((uint32_t)L.qzeros[0] == 0x76543210u);
    CHECK((uint32_t)L.qzeros[1] == 0x87654321u);
    CHECK(L.scales[0] == 0x3800 && L.scales[1] == 0x3c00); /* 0.5, 1.0 */
    for (int i = 0; i < C; i++)
        CHECK(L.g_idx[i] == i / G);
    /* Zero point 16 is nibble 15. */
    zeros[0] = 16;
    dsk_q4_free(&L);
    CHECK(dsk_q4_pack(&L, codes, zeros, scales, NULL, &err) == 0);
    CHECK(((uint32_t)L.qzeros[0] & 0xf) == 0xf);
    uint8_t z[2 * R];
    dsk_q4_unpack(&L, NULL, z, NULL);
    CHECK(z[0] == 16);
    dsk_q4_free(&L);
}

typedef struct shape {
    int rows, cols, G;
} shape;

static const shape shapes[] = {
    {8, 8, 8},      /* smallest */
    {16, 64, 16},   /* four groups */
    {24, 40, 8},    /* columns not a multiple of 64; rows not of 32 */
    {40, 48, 48},   /* one group per row (G = cols) */
    {32, 96, 32},   /* one full panel */
    {72, 200, 40},  /* 200 columns, G = 40: groups padded to 48 */
    {16, 24, 4},    /* G < 8: every group padded */
    {256, 1024, 128}, /* big enough for the threaded path */
};

typedef struct layer_data {
    int rows, cols, G, ngroups;
    uint8_t *codes, *zeros;
    float *scales;
    int32_t *g_idx;
} layer_data;

/* g_idx: 0 = NULL (i / G), 1 = act-order (a random permutation of the
 * columns, then i / G in permuted order), 2 = any group per column. */
static layer_data make_layer(shape s, int g_mode)
{
    layer_data d = {s.rows, s.cols, s.G, s.cols / s.G, NULL, NULL, NULL, NULL};
    size_t nw = (size_t)s.rows * s.cols, ns = (size_t)d.ngroups * s.rows;
    d.codes = malloc(nw);
    d.zeros = malloc(ns);
    d.scales = malloc(ns * sizeof *d.scales);
    for (size_t k = 0; k < nw; k++)
        d.codes[k] = (uint8_t)(dsk_rng_next(&rng) & 15);
    for (size_t k = 0; k < ns; k++) {
        d.zeros[k] = (uint8_t)(1 + dsk_rng_next(&rng) % 16);
        /* Exactly representable halves in [2^-10, 2), either sign. */
        uint16_t h = (uint16_t)(0x1400 + dsk_rng_next(&rng) % (0x4000 - 0x1400));
        if (dsk_rng_next(&rng) % 5 == 0)
            h |= 0x8000;
        d.scales[k] = dsk_f16_to_f32(h);
    }
    if (g_mode) {
        d.g_idx = malloc((size_t)s.cols * sizeof *d.g_idx);
        if (g_mode == 1) {
            int *perm = malloc((size_t)s.cols * sizeof *perm);
            for (int i = 0; i < s.cols; i++)
                perm[i] = i;
            for (int i = s.cols - 1; i > 0; i--) {
                int k = (int)(dsk_rng_next(&rng) % (uint64_t)(i + 1)), t = perm[i];
                perm[i] = perm[k], perm[k] = t;
            }
            for (int k = 0; k < s.cols; k++)
                d.g_idx[perm[k]] = k / s.G;
            free(perm);
        } else {
            for (int i = 0; i < s.cols; i++)
                d.g_idx[i] = (int32_t)(dsk_rng_next(&rng) % (uint64_t)d.ngroups);
        }
    }
    return d;
}

static void free_layer(layer_data *d)
{
    free(d->codes), free(d->zeros), free(d->scales), free(d->g_idx);
}

TEST(pack_unpack_round_trip)
{
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        shape s = shapes[si];
        layer_data d = make_layer(s, 0);
        dsk_q4_linear L = {.rows = s.rows, .cols = s.cols, .group_size = s.G};
        dsk_err err = {0};
        CHECK(dsk_q4_pack(&L, d.codes, d.zeros, d.scales, NULL, &err) == 0);
        size_t nw = (size_t)s.rows * s.cols, ns = (size_t)d.ngroups * s.rows;
        int bad = 0;
        for (int j = 0; j < s.rows; j++)
            for (int i = 0; i < s.cols; i++)
                bad += ref_code(&L, j, i) != d.codes[(size_t)j * s.cols + i];
        for (int g = 0; g < d.ngroups; g++)
            for (int j = 0; j < s.rows; j++)
                bad += ref_zero(&L, g, j) != d.zeros[(size_t)g * s.rows + j];
        uint8_t *codes = malloc(nw), *zeros = malloc(ns);
        float *scales = malloc(ns * sizeof *scales);
        dsk_q4_unpack(&L, codes, zeros, scales);
        bad += memcmp(codes, d.codes, nw) != 0;
        bad += memcmp(zeros, d.zeros, ns) != 0;
        bad += memcmp(scales, d.scales, ns * sizeof *scales) != 0;
        /* Dequantize against the formula on the original inputs. */
        float *W = malloc(nw * sizeof *W);
        dsk_q4_dequantize(&L, W);
        for (int j = 0; j < s.rows; j++)
            for (int i = 0; i < s.cols; i++) {
                size_t k = (size_t)(i / s.G) * s.rows + j;
                float want = d.scales[k] * (float)(d.codes[(size_t)j * s.cols + i] - d.zeros[k]);
                bad += W[(size_t)j * s.cols + i] != want;
            }
        if (bad)
            printf("#   shape %dx%d G %d: %d mismatches\n", s.rows, s.cols, s.G, bad);
        CHECK(bad == 0);
        free(codes), free(zeros), free(scales), free(W);
        dsk_q4_free(&L);
        free_layer(&d);
    }
    /* Scales that are not halves round to the nearest one. */
    layer_data d = make_layer((shape){8, 8, 8}, 0);
    d.scales[3] = 0.1f;
    dsk_q4_linear L = {.rows = 8, .cols = 8, .group_size = 8};
    dsk_err err = {0};
    CHECK(dsk_q4_pack(&L, d.codes, d.zeros, d.scales, NULL, &err) == 0);
    CHECK(L.scales[3] == 0x2e66);
    dsk_q4_free(&L);
    free_layer(&d);
}

/* ---- matmul --------------------------------------------------------------------------------------- */

/* Worst |y - ref| / sum_i |W_ji x_i| over all outputs, ref in double from
 * the dequantized weights. */
static double matmul_error(const dsk_q4_linear *L, const float *x, int n, const float *y)
{
    int rows = L->rows, cols = L->cols;
    float *W = malloc((size_t)rows * cols * sizeof *W);
    dsk_q4_dequantize(L, W);
    double worst = 0;
    for (int b = 0; b < n; b++)
        for (int j = 0; j < rows; j++) {
            double ref = 0, mag = 0;
            for (int i = 0; i < cols; i++) {
                double t = (double)W[(size_t)j * cols + i] * x[(size_t)b * cols + i];
                ref += t;
                mag += fabs(t);
            }
            double e = fabs(y[(size_t)b * rows + j] - ref) / (mag > 1e-30 ? mag : 1e-30);
            if (!(e <= worst)) /* also catches NaN */
                worst = e != e ? INFINITY : e;
        }
    free(W);
    return worst;
}

static const int kernels[] = {DSK_Q4_KERNEL_PORTABLE, DSK_Q4_KERNEL_AVX2};
static const char *kernel_names[] = {"portable", "avx2"};

static void check_matmul(shape s, int g_mode)
{
    static const int batches[] = {1, 3, 17};
    layer_data d = make_layer(s, g_mode);
    dsk_q4_linear L = {.rows = s.rows, .cols = s.cols, .group_size = s.G};
    dsk_err err = {0};
    CHECK(dsk_q4_pack(&L, d.codes, d.zeros, d.scales, d.g_idx, &err) == 0);
    CHECK(L.panel_codes == NULL); /* pack leaves the runtime layout to prepare */
    CHECK(dsk_q4_prepare(&L, &err) == 0);
    int nmax = 17;
    float *x = malloc((size_t)nmax * s.cols * sizeof *x), *y = malloc((size_t)nmax * s.rows * sizeof *y);
    for (size_t k = 0; k < (size_t)nmax * s.cols; k++)
        x[k] = (float)dsk_rng_normal(&rng);
    for (int ki = 0; ki < 2; ki++) {
        if (dsk_q4_set_kernel(kernels[ki]) != 0) {
            printf("# %s kernel not available on this CPU\n", kernel_names[ki]);
            continue;
        }
        for (int bi = 0; bi < 3; bi++) {
            int n = batches[bi];
            for (size_t k = 0; k < (size_t)n * s.rows; k++)
                y[k] = NAN; /* every output must be written */
            dsk_q4_matmul(&L, x, n, y);
            double e = matmul_error(&L, x, n, y);
            if (!(e <= 1e-5)) {
                printf("#   %s, shape %dx%d G %d g_idx mode %d, n %d: relative error %g\n", kernel_names[ki],
                       s.rows, s.cols, s.G, g_mode, n, e);
                test_case_failed = 1;
            }
        }
    }
    dsk_q4_set_kernel(DSK_Q4_KERNEL_AUTO);
    free(x), free(y);
    dsk_q4_free(&L);
    free_layer(&d);
}

TEST(matmul_matches_dequantized)
{
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        check_matmul(shapes[si], 0);
}

TEST(matmul_act_order)
{
    /* g_idx from a column permutation (GPTQ desc_act), and an arbitrary
     * mapping with uneven group sizes (some groups may be empty). */
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        check_matmul(shapes[si], 1);
        check_matmul(shapes[si], 2);
    }
    /* Act-order with the identity permutation behaves like no g_idx. */
    dsk_q4_linear L = {.rows = 16, .cols = 64, .group_size = 16};
    layer_data d = make_layer((shape){16, 64, 16}, 0);
    int32_t g_idx[64];
    for (int i = 0; i < 64; i++)
        g_idx[i] = i / 16;
    dsk_err err = {0};
    CHECK(dsk_q4_pack(&L, d.codes, d.zeros, d.scales, g_idx, &err) == 0);
    CHECK(dsk_q4_prepare(&L, &err) == 0);
    CHECK(L.perm == NULL && L.kcols == 64);
    dsk_q4_free(&L);
    free_layer(&d);
}

/* A layer of shape s packed and prepared (group order), and n random
 * input rows. */
static float *prepared(shape s, layer_data *d, dsk_q4_linear *L, int n)
{
    *d = make_layer(s, 0);
    *L = (dsk_q4_linear){.rows = s.rows, .cols = s.cols, .group_size = s.G};
    dsk_err err = {0};
    CHECK(dsk_q4_pack(L, d->codes, d->zeros, d->scales, NULL, &err) == 0);
    CHECK(dsk_q4_prepare(L, &err) == 0);
    float *x = malloc((size_t)n * s.cols * sizeof *x);
    for (size_t k = 0; k < (size_t)n * s.cols; k++)
        x[k] = (float)dsk_rng_normal(&rng);
    return x;
}

TEST(matmul_same_bits_any_thread_count)
{
    shape s = {256, 1024, 128};
    layer_data d;
    dsk_q4_linear L;
    float *x = prepared(s, &d, &L, 3), *y1 = malloc(3 * (size_t)s.rows * sizeof *y1),
          *y2 = malloc(3 * (size_t)s.rows * sizeof *y2);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dsk_q4_matmul(&L, x, 3, y1);
    omp_set_num_threads(3);
    dsk_q4_matmul(&L, x, 3, y2);
    omp_set_num_threads(threads);
    CHECK(memcmp(y1, y2, 3 * (size_t)s.rows * sizeof *y1) == 0);
    free(x), free(y1), free(y2);
    dsk_q4_free(&L);
    free_layer(&d);
}

/* A row's result does not depend on the rows beside it (1 to 8 of them,
 * at any place in the tile), for either kernel: what speculative
 * decoding's extra rows rely on. */
TEST(matmul_row_bits_independent_of_batch)
{
    shape s = {96, 512, 128};
    layer_data d;
    dsk_q4_linear L;
    float *x = prepared(s, &d, &L, 8), *alone = malloc((size_t)s.rows * sizeof *alone),
          *y = malloc(8 * (size_t)s.rows * sizeof *y);
    int differ = 0;
    for (size_t kk = 0; kk < sizeof kernels / sizeof *kernels; kk++) {
        if (dsk_q4_set_kernel(kernels[kk]) != 0)
            continue;
        for (int n = 1; n <= 8; n++) {
            dsk_q4_matmul(&L, x, n, y);
            for (int r = 0; r < n; r++) {
                dsk_q4_matmul(&L, x + (size_t)r * s.cols, 1, alone);
                differ += memcmp(alone, y + (size_t)r * s.rows, (size_t)s.rows * sizeof *alone) != 0;
            }
        }
    }
    dsk_q4_set_kernel(DSK_Q4_KERNEL_AUTO);
    CHECK(differ == 0);
    free(x), free(alone), free(y);
    dsk_q4_free(&L);
    free_layer(&d);
}

/* ---- bad input ------------------------------------------------------------------------------------- */

static void expect_pack_error(shape s, const uint8_t *codes, const uint8_t *zeros, const float *scales,
                              const int32_t *g_idx, const char *want)
{
    dsk_q4_linear L = {.rows = s.rows, .cols = s.cols, .group_size = s.G};
    dsk_err err = {0};
    int rc = dsk_q4_pack(&L, codes, zeros, scales, g_idx, &err);
    if (rc != EX_DATAERR || !strstr(err.msg, want)) {
        printf("#   shape %dx%d G %d: rc %d, message \"%s\", want \"%s\"\n", s.rows, s.cols, s.G, rc, err.msg, want);
        test_case_failed = 1;
    }
    CHECK(L.qweight == NULL && L.panel_codes == NULL); /* nothing allocated */
}

TEST(invalid_inputs_rejected)
{
    shape s = {16, 32, 8};
    layer_data d = make_layer(s, 1);
    d.codes[37] = 16;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "code 16 at row 1 column 5 is not in 0..15");
    d.codes[37] = 3;
    d.zeros[17] = 0;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "zero point 0 of group 1 row 1 is not in 1..16");
    d.zeros[17] = 17;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "zero point 17");
    d.zeros[17] = 8;
    d.scales[5] = 1e6f;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "does not fit in fp16");
    d.scales[5] = NAN;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "does not fit in fp16");
    d.scales[5] = 1;
    int32_t keep = d.g_idx[9];
    d.g_idx[9] = 4;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "g_idx[9] = 4 is outside the groups 0..3");
    d.g_idx[9] = -1;
    expect_pack_error(s, d.codes, d.zeros, d.scales, d.g_idx, "g_idx[9] = -1");
    d.g_idx[9] = keep;
    expect_pack_error((shape){12, 32, 8}, d.codes, d.zeros, d.scales, NULL, "multiples of 8");
    expect_pack_error((shape){16, 36, 4}, d.codes, d.zeros, d.scales, NULL, "multiples of 8");
    expect_pack_error((shape){16, 32, 12}, d.codes, d.zeros, d.scales, NULL, "group size 12 does not divide");
    expect_pack_error((shape){16, 32, 0}, d.codes, d.zeros, d.scales, NULL, "group size 0");
    expect_pack_error((shape){0, 32, 8}, d.codes, d.zeros, d.scales, NULL, "out of range");
    expect_pack_error((shape){16, -8, 8}, d.codes, d.zeros, d.scales, NULL, "out of range");
    expect_pack_error((shape){1 << 24, 1 << 24, 8}, d.codes, d.zeros, d.scales, NULL, "more than 2^34 weights");

    /* A layer read from a file: prepare validates it. */
    dsk_q4_linear L = {.rows = s.rows, .cols = s.cols, .group_size = s.G};
    dsk_err err = {0};
    CHECK(dsk_q4_pack(&L, d.codes, d.zeros, d.scales, d.g_idx, &err) == 0);
    L.scales[7] = 0x7c00;
    CHECK(dsk_q4_prepare(&L, &err) == EX_DATAERR && strstr(err.msg, "scale of group 0 row 7 is infinite"));
    L.scales[7] = 0xfe00;
    CHECK(dsk_q4_prepare(&L, &err) == EX_DATAERR && strstr(err.msg, "is NaN"));
    L.scales[7] = 0x3c00;
    L.g_idx[31] = 1000;
    CHECK(dsk_q4_prepare(&L, &err) == EX_DATAERR && strstr(err.msg, "g_idx[31] = 1000"));
    L.g_idx[31] = 0;
    CHECK(dsk_q4_prepare(&L, &err) == 0);
    int32_t *qw = L.qweight;
    L.qweight = NULL;
    CHECK(dsk_q4_prepare(&L, &err) == EX_DATAERR && strstr(err.msg, "missing"));
    CHECK(L.panel_codes == NULL); /* a failed prepare leaves no stale layout */
    L.qweight = qw;
    dsk_q4_free(&L);
    free_layer(&d);

    /* Asking for an unknown kernel changes nothing. */
    CHECK(dsk_q4_set_kernel(42) == -1);
}

int main(void)
{
    dsk_rng_seed(&rng, 4);
    static const test_case cases[] = {
        T(half_exhaustive_round_trip),
        T(half_rounding_cases),
        T(half_nearest_even_sampled),
        T(pack_known_words),
        T(pack_unpack_round_trip),
        T(matmul_matches_dequantized),
        T(matmul_act_order),
        T(matmul_same_bits_any_thread_count), T(matmul_row_bits_independent_of_batch),
        T(invalid_inputs_rejected),
    };
    return run_tests(cases, sizeof cases / sizeof cases[0]);
}
