/* dsk-quant's quantizers: group parameters, RTN, GPTQ. */
#include "test.h"

#include "core/rng.h"
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

TEST(rtn_error_is_within_half_a_step)
{
    dsk_rng r;
    dsk_rng_seed(&r, 1);
    int rows = 24, cols = 96, G = 32;
    float *W = randn(&r, (size_t)rows * cols, 0.05f), *D = malloc((size_t)rows * cols * sizeof *D);
    dsk_qmat q;
    dsk_qmat_init(&q, rows, cols, G);
    dsk_quant_rtn(W, 0, &q);
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
    dsk_quant_rtn(W, 0, &a);
    dsk_gptq_opts o = {0.01, 0, 32, 0};
    dsk_err err = {0};
    CHECK(dsk_quant_gptq(W, H, &o, &b, &err) == 0);
    CHECK(memcmp(a.codes, b.codes, (size_t)rows * cols) == 0);
    CHECK(memcmp(a.scales, b.scales, (size_t)rows * a.n_groups * sizeof(float)) == 0);
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
    dsk_quant_rtn(W, 0, &q);
    dsk_qmat_dequantize(&q, D);
    *rtn_err = dsk_quant_output_error(W, D, rows, cols, H);
    dsk_gptq_opts o = {0.01, act_order, 32, 0};
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
    dsk_gptq_opts o = {0.01, 1, 128, 0};
    dsk_err err = {0};
    CHECK(dsk_quant_gptq(W, H, &o, &q, &err) == 0);
    dsk_qmat_dequantize(&q, D);
    for (int j = 0; j < rows; j++)
        CHECK(D[(size_t)j * cols + 5] == 0);
    dsk_qmat_free(&q);
    free(W), free(H), free(D);
}

RUN_TESTS(T(params_cover_the_range_and_codes_round_trip), T(rtn_error_is_within_half_a_step),
          T(gptq_with_identity_hessian_is_rtn), T(gptq_beats_rtn_on_correlated_inputs),
          T(gptq_dead_columns_quantize_to_zero))
