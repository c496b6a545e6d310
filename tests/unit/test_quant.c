/* dsk-quant's quantizers: group parameters, RTN, GPTQ. */
#include "test.h"

#include "core/rng.h"
#include "ops/backend.h"
#include "quant/int4.h"
#include "quant/quant.h"

static float *randn(dsk_rng *r, size_t n, float s)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = s * (float)dsk_rng_normal(r);
    return v;
}

/* Inputs with strongly correlated channels, as real activations have. */
static double *hessian(dsk_rng *r, int cols, int tokens)
{
    float *A = randn(r, (size_t)cols * cols, 1.0f), *z = randn(r, (size_t)tokens * cols, 1.0f);
    float *shared = randn(r, (size_t)tokens, 3.0f);
    double *H = calloc((size_t)cols * cols, sizeof *H);
    double *x = malloc((size_t)cols * sizeof *x);
    for (int t = 0; t < tokens; t++) {
        for (int i = 0; i < cols; i++) {
            double s = shared[t] * (1 + (i % 3));
            for (int k = 0; k < 4; k++)
                s += 0.5 * z[(size_t)t * cols + k] * A[(size_t)k * cols + i];
            x[i] = s + 0.1 * z[(size_t)t * cols + i];
        }
        for (int i = 0; i < cols; i++)
            for (int k = 0; k < cols; k++)
                H[(size_t)i * cols + k] += 2 * x[i] * x[k];
    }
    free(A), free(z), free(shared), free(x);
    return H;
}

TEST(params_cover_the_range_and_codes_round_trip)
{
    float w[8] = {-0.7f, 0.1f, 0.3f, 0.9f, -0.2f, 0.0f, 0.45f, -0.69f};
    float s;
    uint8_t z;
    dsk_quant_params(w, 1, 8, 0, &s, &z);
    CHECK_NEAR(s, 1.6 / 15, 1e-4);                 /* fp16-rounded (max - min) / 15 */
    CHECK(dsk_f16_to_f32(dsk_f32_to_f16(s)) == s);
    CHECK(z == 7);                                  /* round(0.7 / s) = round(6.56) */
    for (int i = 0; i < 8; i++) {
        uint8_t c = dsk_quant_code(w[i], s, z);
        CHECK(fabsf(s * ((int)c - z) - w[i]) <= s / 2 + 1e-6f);
    }
    /* No negative weight: zero 1 (storable as zero - 1), 14 steps up to the max. */
    float pos[4] = {0.1f, 0.5f, 1.4f, 0.2f};
    dsk_quant_params(pos, 1, 4, 0, &s, &z);
    CHECK(z == 1);
    CHECK_NEAR(s * (15 - z), 1.4, 2e-3);
    /* Symmetric: zero 8. */
    dsk_quant_params(w, 1, 8, 1, &s, &z);
    CHECK(z == 8);
    CHECK_NEAR(s, 1.8 / 15, 1e-4);
    /* All zero: a defined scale. */
    float zero4[4] = {0};
    dsk_quant_params(zero4, 1, 4, 0, &s, &z);
    CHECK(s > 0 && dsk_quant_code(0, s, z) == z);
}

static double group_sq_error(const float *w, int n, float s, uint8_t z)
{
    double e = 0;
    for (int i = 0; i < n; i++) {
        double d = s * ((int)dsk_quant_code(w[i], s, z) - z) - (double)w[i];
        e += d * d;
    }
    return e;
}

/* The clipping search never does worse than the min-max range on a
 * group's squared error (ratio 1 is among its candidates), and on
 * normally distributed weights, whose extremes are rare, it mostly does
 * better with a narrower range. */
TEST(search_is_never_worse_and_mostly_better)
{
    dsk_rng r;
    dsk_rng_seed(&r, 5);
    int worse = 0, better = 0, wider = 0, groups = 0;
    for (int t = 0; t < 200; t++)
        for (int sym = 0; sym < 2; sym++) {
            float w[128], s0, s1;
            uint8_t z0, z1;
            int n = t % 2 ? 128 : 32;
            for (int i = 0; i < n; i++)
                w[i] = (float)(dsk_rng_normal(&r) * (t % 3 ? 0.05 : 1.0));
            dsk_quant_params(w, 1, n, sym, &s0, &z0);
            dsk_quant_params_search(w, 1, n, sym, &s1, &z1);
            double e0 = group_sq_error(w, n, s0, z0), e1 = group_sq_error(w, n, s1, z1);
            worse += e1 > e0;
            better += e1 < 0.98 * e0;
            wider += s1 > s0;
            groups++;
            CHECK(dsk_f16_to_f32(dsk_f32_to_f16(s1)) == s1 && z1 >= 1 && z1 <= 15);
        }
    printf("# %d of %d groups with 2%% less squared error\n", better, groups);
    CHECK(worse == 0 && wider == 0);
    CHECK(better > groups / 2);
    /* A scale past fp16 (every error inf or NaN): min-max's, which the
     * int4 packing refuses, not whatever was in the outputs. */
    float big[4] = {1e6f, -3, 2, 1}, s0, s1 = 0;
    uint8_t z0, z1 = 0;
    dsk_quant_params(big, 1, 4, 0, &s0, &z0);
    dsk_quant_params_search(big, 1, 4, 0, &s1, &z1);
    CHECK(isinf(s0) && s1 == s0 && z1 == z0);
}

TEST(rtn_error_is_within_half_a_step)
{
    dsk_rng r;
    dsk_rng_seed(&r, 1);
    int rows = 24, cols = 96, G = 32;
    float *W = randn(&r, (size_t)rows * cols, 0.05f), *D = malloc((size_t)rows * cols * sizeof *D);
    dsk_qmat q;
    dsk_qmat_init(&q, rows, cols, G);
    dsk_quant_rtn(W, 0, 0, &q);
    dsk_qmat_dequantize(&q, D);
    int bad = 0;
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++) {
            float s = q.scales[(size_t)(i / G) * rows + j];
            bad += fabsf(D[(size_t)j * cols + i] - W[(size_t)j * cols + i]) > s / 2 + 1e-7f;
        }
    CHECK(bad == 0);
    double e = dsk_quant_output_error(W, D, rows, cols, NULL);
    CHECK(e > 0 && e < 0.01);
    dsk_qmat_free(&q);
    free(W), free(D);
}

/* With H a multiple of the identity no error can be spread: GPTQ is RTN. */
TEST(gptq_with_identity_hessian_is_rtn)
{
    dsk_rng r;
    dsk_rng_seed(&r, 2);
    int rows = 16, cols = 64, G = 16;
    float *W = randn(&r, (size_t)rows * cols, 0.1f);
    double *H = calloc((size_t)cols * cols, sizeof *H);
    for (int i = 0; i < cols; i++)
        H[(size_t)i * cols + i] = 3;
    dsk_qmat a, b;
    dsk_qmat_init(&a, rows, cols, G);
    dsk_qmat_init(&b, rows, cols, G);
    dsk_err err = {0};
    for (int search = 0; search < 2; search++) {   /* with the clipping search on both sides too */
        dsk_quant_rtn(W, 0, search, &a);
        dsk_gptq_opts o = {0.01, 0, 32, 0, search};
        CHECK(dsk_quant_gptq(W, H, &o, &b, &err) == 0);
        CHECK(memcmp(a.codes, b.codes, (size_t)rows * cols) == 0);
        CHECK(memcmp(a.scales, b.scales, (size_t)rows * a.n_groups * sizeof(float)) == 0);
    }
    dsk_qmat_free(&a), dsk_qmat_free(&b);
    free(W), free(H);
}

static double gptq_vs_rtn(int group, int act_order, double *rtn_err)
{
    dsk_rng r;
    dsk_rng_seed(&r, 3);
    int rows = 48, cols = 128;
    float *W = randn(&r, (size_t)rows * cols, 0.05f);
    double *H = hessian(&r, cols, 1024), *H2 = malloc((size_t)cols * cols * sizeof *H2);
    memcpy(H2, H, (size_t)cols * cols * sizeof *H2);
    float *D = malloc((size_t)rows * cols * sizeof *D);
    dsk_qmat q;
    dsk_qmat_init(&q, rows, cols, group);
    dsk_quant_rtn(W, 0, 0, &q);
    dsk_qmat_dequantize(&q, D);
    *rtn_err = dsk_quant_output_error(W, D, rows, cols, H);
    dsk_gptq_opts o = {0.01, act_order, 32, 0, 0};
    dsk_err err = {0};
    CHECK(dsk_quant_gptq(W, H2, &o, &q, &err) == 0);
    dsk_qmat_dequantize(&q, D);
    double e = dsk_quant_output_error(W, D, rows, cols, H);
    /* g_idx maps every column to a group that exists. */
    int bad = 0;
    for (int i = 0; i < cols; i++)
        bad += q.g_idx[i] < 0 || q.g_idx[i] >= q.n_groups;
    CHECK(bad == 0);
    dsk_qmat_free(&q);
    free(W), free(H), free(H2), free(D);
    return e;
}

TEST(gptq_beats_rtn_on_correlated_inputs)
{
    double rtn, e;
    e = gptq_vs_rtn(32, 0, &rtn);
    printf("# group 32: rtn %.3e gptq %.3e\n", rtn, e);
    CHECK(e < 0.7 * rtn);
    e = gptq_vs_rtn(128, 0, &rtn);
    printf("# per channel: rtn %.3e gptq %.3e\n", rtn, e);
    CHECK(e < 0.7 * rtn);
    e = gptq_vs_rtn(32, 1, &rtn);
    printf("# group 32, act order: rtn %.3e gptq %.3e\n", rtn, e);
    CHECK(e < 0.7 * rtn);
}

TEST(gptq_dead_columns_quantize_to_zero)
{
    dsk_rng r;
    dsk_rng_seed(&r, 4);
    int rows = 8, cols = 32;
    float *W = randn(&r, (size_t)rows * cols, 0.1f), *D = malloc((size_t)rows * cols * sizeof *D);
    double *H = hessian(&r, cols, 256);
    for (int k = 0; k < cols; k++)   /* input 5 is always 0 */
        H[(size_t)5 * cols + k] = H[(size_t)k * cols + 5] = 0;
    dsk_qmat q;
    dsk_qmat_init(&q, rows, cols, 16);
    dsk_gptq_opts o = {0.01, 1, 128, 0, 0};
    dsk_err err = {0};
    CHECK(dsk_quant_gptq(W, H, &o, &q, &err) == 0);
    dsk_qmat_dequantize(&q, D);
    for (int j = 0; j < rows; j++)
        CHECK(D[(size_t)j * cols + 5] == 0);
    dsk_qmat_free(&q);
    free(W), free(H), free(D);
}

/* A weight registered as int4 with the CPU backend: small products read
 * the 4-bit form and equal the dequantized fp32 product; others are
 * untouched. */
TEST(backend_reads_registered_int4_weights)
{
    dsk_rng r;
    dsk_rng_seed(&r, 5);
    int rows = 40, cols = 64, G = 32;
    float *W = randn(&r, (size_t)rows * cols, 0.1f), *D = malloc((size_t)rows * cols * sizeof *D);
    dsk_qmat q;
    dsk_qmat_init(&q, rows, cols, G);
    dsk_quant_rtn(W, 0, 0, &q);
    dsk_qmat_dequantize(&q, D);
    dsk_q4_linear L = {0};
    L.rows = rows, L.cols = cols, L.group_size = G;
    dsk_err err = {0};
    CHECK(dsk_q4_pack(&L, q.codes, q.zeros, q.scales, q.g_idx, &err) == 0);
    CHECK(dsk_q4_prepare(&L, &err) == 0);
    /* A poisoned fp32 copy: if the backend read it, the results would differ. */
    float *poison = malloc((size_t)rows * cols * sizeof *poison);
    for (int i = 0; i < rows * cols; i++)
        poison[i] = 1e3f;
    dsk_backend *be = dsk_backend_cpu(1);
    be->register_int4(be, poison, &L);
    float *x = randn(&r, 3 * (size_t)cols, 1.0f), y[3 * 40], want[3 * 40], c0[3 * 40];
    for (int k = 0; k < 3 * rows; k++)
        y[k] = c0[k] = (float)k;
    be->gemm(be, 0, 1, 3, rows, cols, 1, x, poison, 1, y);   /* C = A Wᵀ + C */
    int bad = 0;
    for (int n = 0; n < 3; n++)
        for (int j = 0; j < rows; j++) {
            double s = c0[n * rows + j];
            for (int i = 0; i < cols; i++)
                s += (double)x[n * cols + i] * D[(size_t)j * cols + i];
            want[n * rows + j] = (float)s;
            bad += fabs(y[n * rows + j] - s) > 1e-4 * (1 + fabs(s));
        }
    CHECK(bad == 0);
    /* Many rows: the fp32 weight is used (here: the poison). */
    float big[16 * 40], *xs = randn(&r, 16 * (size_t)cols, 1.0f);
    be->gemm(be, 0, 1, 16, rows, cols, 1, xs, poison, 0, big);
    double sum = 0;
    for (int i = 0; i < cols; i++)
        sum += xs[i] * 1e3;
    CHECK_NEAR(big[0], sum, 1e-2 * fabs(sum) + 1);
    (void)want;
    be->destroy(be);
    dsk_q4_free(&L);
    dsk_qmat_free(&q);
    free(W), free(D), free(poison), free(x), free(xs);
}

RUN_TESTS(T(params_cover_the_range_and_codes_round_trip), T(search_is_never_worse_and_mostly_better),
          T(rtn_error_is_within_half_a_step),
          T(gptq_with_identity_hessian_is_rtn), T(gptq_beats_rtn_on_correlated_inputs),
          T(gptq_dead_columns_quantize_to_zero), T(backend_reads_registered_int4_weights))
