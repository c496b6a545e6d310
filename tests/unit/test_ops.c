/* The CPU kernels: every backward against central finite differences of
 * its forward, in double precision (the double build of the same kernel
 * source), and the float build against the double one. */
#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/cpu.h"
#include "core/rng.h"
#include "ops/attn_decode.h"
#include "ops/backend.h"
#include "ops/cpu_kernels.h"
#include "ops/fast_exp.h"
#include "ops/gemm_packed.h"
#include "ops/gemv_rows.h"
#include "ops/swiglu_avx2.h"
#include "test.h"

static dsk_rng rng;

static void fill(double *x, size_t n, double scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = scale * dsk_rng_normal(&rng);
}

typedef double (*loss_fn)(void);

/* Worst disagreement between grad and d loss / d x, over every element of
 * x (or an even sample of 400 when it is larger). */
static double grad_error(double *x, const double *grad, size_t n, loss_fn loss)
{
    double worst = 0;
    size_t step = n > 400 ? n / 400 : 1;
    for (size_t i = 0; i < n; i += step) {
        double keep = x[i], h = 1e-5 * fmax(1.0, fabs(keep));
        x[i] = keep + h;
        double lp = loss();
        x[i] = keep - h;
        double lm = loss();
        x[i] = keep;
        double num = (lp - lm) / (2 * h);
        double e = fabs(num - grad[i]) / fmax(1e-3, fabs(num) + fabs(grad[i]));
        if (e > worst)
            worst = e;
    }
    return worst;
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#define TOL 1e-6

/* ---- rmsnorm ---------------------------------------------------------------------------------- */
enum { RN = 3, RC = 5 };
static double rn_x[RN * RC], rn_w[RC], rn_g[RN * RC];

static double rmsnorm_loss(void)
{
    double out[RN * RC], rstd[RN];
    dsk_cpu_rmsnorm_fwd_f64(out, rstd, rn_x, rn_w, RN, RC, 1e-5);
    return dot(out, rn_g, RN * RC);
}

TEST(rmsnorm_gradients)
{
    fill(rn_x, RN * RC, 1);
    fill(rn_w, RC, 1);
    fill(rn_g, RN * RC, 1);
    double out[RN * RC], rstd[RN], dx[RN * RC] = {0}, dw[RC] = {0};
    dsk_cpu_rmsnorm_fwd_f64(out, rstd, rn_x, rn_w, RN, RC, 1e-5);
    dsk_cpu_rmsnorm_bwd_f64(dx, dw, rn_g, rn_x, rn_w, rstd, RN, RC);
    CHECK(grad_error(rn_x, dx, RN * RC, rmsnorm_loss) < TOL);
    CHECK(grad_error(rn_w, dw, RC, rmsnorm_loss) < TOL);
    /* The forward itself: row 0 has unit mean square after normalizing. */
    double ms = 0;
    for (int c = 0; c < RC; c++)
        ms += (out[c] / rn_w[c]) * (out[c] / rn_w[c]);
    CHECK_NEAR(ms / RC, 1.0, 1e-3);
}

/* ---- rope --------------------------------------------------------------------------------------- */
enum { PN = 3, PH = 2, PD = 6, PMAX = 8 };
static double rp_x[PN * PH * PD], rp_g[PN * PH * PD], rp_cs[PMAX * PD];
static const int32_t rp_pos[PN] = {0, 5, 2};

static double rope_loss(void)
{
    double y[PN * PH * PD];
    memcpy(y, rp_x, sizeof y);
    dsk_cpu_rope_f64(y, rp_pos, rp_cs, PN, PH, PD, 0);
    return dot(y, rp_g, PN * PH * PD);
}

TEST(rope_gradients_and_convention)
{
    dsk_cpu_rope_table_f64(rp_cs, PMAX, PD, 10000.0);
    fill(rp_x, PN * PH * PD, 1);
    fill(rp_g, PN * PH * PD, 1);
    double d[PN * PH * PD];
    memcpy(d, rp_g, sizeof d);
    dsk_cpu_rope_f64(d, rp_pos, rp_cs, PN, PH, PD, 1);
    CHECK(grad_error(rp_x, d, PN * PH * PD, rope_loss) < TOL);
    /* Rotate-half at position 5, frequency 1 of 3: the pair (x1, x4). */
    double y[PN * PH * PD];
    memcpy(y, rp_x, sizeof y);
    dsk_cpu_rope_f64(y, rp_pos, rp_cs, PN, PH, PD, 0);
    double a = 5.0 / pow(10000.0, 2.0 / PD);
    const double *x1 = rp_x + PH * PD;
    CHECK_NEAR(y[PH * PD + 1], x1[1] * cos(a) - x1[4] * sin(a), 1e-12);
    CHECK_NEAR(y[PH * PD + 4], x1[4] * cos(a) + x1[1] * sin(a), 1e-12);
    CHECK_NEAR(y[0], rp_x[0], 0);   /* position 0 is the identity */
}

/* ---- attention ------------------------------------------------------------------------------------ */
enum { AB = 2, AT = 7, AH = 4, AKV = 2, AD = 4 };
static double at_q[AB * AT * AH * AD], at_k[AB * AT * AKV * AD], at_v[AB * AT * AKV * AD];
static double at_g[AB * AT * AH * AD], at_alpha[1];
/* What the forward saves: log-sum-exps per part, a hybrid's part outputs. */
static double at_lg[AB * AH * AT], at_ll[AB * AH * AT], at_og[AB * AT * AH * AD], at_ol[AB * AT * AH * AD];
#define AT_SAVED at_lg, at_ll, at_shape.kind == DSK_ATTN_HYBRID ? at_og : NULL, \
                 at_shape.kind == DSK_ATTN_HYBRID ? at_ol : NULL
/* Row 0 is one document; row 1 holds two (a new one starts at t = 3). */
static const int32_t at_pos[AB * AT] = {0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 0, 1, 2, 3};
static dsk_attn_shape at_shape = {AB, AT, AH, AKV, AD, DSK_ATTN_GLOBAL, 3, 0};

static double attention_loss(void)
{
    double out[AB * AT * AH * AD];
    dsk_cpu_attention_fwd_f64(out, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
    return dot(out, at_g, AB * AT * AH * AD);
}

static void check_attention(int kind)
{
    at_shape.kind = kind;
    fill(at_q, sizeof at_q / sizeof *at_q, 1);
    fill(at_k, sizeof at_k / sizeof *at_k, 1);
    fill(at_v, sizeof at_v / sizeof *at_v, 1);
    fill(at_g, sizeof at_g / sizeof *at_g, 1);
    at_alpha[0] = 0.7;
    double out[AB * AT * AH * AD], dq[sizeof at_q / sizeof *at_q], dk[sizeof at_k / sizeof *at_k],
        dv[sizeof at_v / sizeof *at_v], dalpha[1] = {0};
    dsk_cpu_attention_fwd_f64(out, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
    dsk_cpu_attention_bwd_f64(dq, dk, dv, dalpha, at_g, out, at_q, at_k, at_v, AT_SAVED, at_pos, at_alpha,
                              &at_shape);
    CHECK(grad_error(at_q, dq, sizeof at_q / sizeof *at_q, attention_loss) < TOL);
    CHECK(grad_error(at_k, dk, sizeof at_k / sizeof *at_k, attention_loss) < TOL);
    CHECK(grad_error(at_v, dv, sizeof at_v / sizeof *at_v, attention_loss) < TOL);
    if (kind == DSK_ATTN_HYBRID)
        CHECK(grad_error(at_alpha, dalpha, 1, attention_loss) < TOL);
    else
        CHECK(dalpha[0] == 0);

    /* The saved log-sum-exp is that of the scaled scores the query sees:
     * (row 1, head 3, t = 5) sees t = 3..5 of its document (and, local,
     * of the window of 3: the same keys). */
    {
        int b = 1, h = 3, t = 5, kh = h / (AH / AKV);
        double sum = 0;
        for (int j = 3; j <= t; j++)
            sum += exp(dot(at_q + ((size_t)(b * AT + t) * AH + h) * AD, at_k + ((size_t)(b * AT + j) * AKV + kh) * AD,
                           AD) / sqrt(AD));
        const double *lse = kind == DSK_ATTN_LOCAL ? at_ll : at_lg;
        CHECK_NEAR(lse[((size_t)b * AH + h) * AT + t], log(sum), 1e-12);
        if (kind == DSK_ATTN_HYBRID)
            CHECK_NEAR(at_ll[((size_t)b * AH + h) * AT + t], log(sum), 1e-12);
    }
    /* A hybrid's output is the mix of the part outputs it saved. */
    if (kind == DSK_ATTN_HYBRID)
        for (size_t i = 0; i < sizeof out / sizeof *out; i++)
            CHECK_NEAR(out[i], 0.7 * at_og[i] + 0.3 * at_ol[i], 1e-12);

    /* The masks: the output at (row 1, t = 3) starts a document, so it is
     * exactly v there (one visible key, itself), whatever the kind. */
    for (int h = 0; h < AH; h++)
        for (int d = 0; d < AD; d++)
            CHECK_NEAR(out[((size_t)(1 * AT + 3) * AH + h) * AD + d],
                       at_v[((size_t)(1 * AT + 3) * AKV + h / (AH / AKV)) * AD + d], 1e-12);
    /* A key of the previous document changes nothing after the new one starts. */
    double keep = at_k[((size_t)(1 * AT + 2) * AKV) * AD];
    double o1[AB * AT * AH * AD], o2[AB * AT * AH * AD];
    dsk_cpu_attention_fwd_f64(o1, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
    at_k[((size_t)(1 * AT + 2) * AKV) * AD] += 5;
    dsk_cpu_attention_fwd_f64(o2, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
    at_k[((size_t)(1 * AT + 2) * AKV) * AD] = keep;
    for (int t = 3; t < AT; t++)
        for (int c = 0; c < AH * AD; c++)
            CHECK(o1[(size_t)(1 * AT + t) * AH * AD + c] == o2[(size_t)(1 * AT + t) * AH * AD + c]);
    /* A local window of 3: row 0, t = 6 does not see t = 3. */
    if (kind == DSK_ATTN_LOCAL) {
        keep = at_v[(size_t)(0 * AT + 3) * AKV * AD];
        dsk_cpu_attention_fwd_f64(o1, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
        at_v[(size_t)(0 * AT + 3) * AKV * AD] += 5;
        dsk_cpu_attention_fwd_f64(o2, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
        at_v[(size_t)(0 * AT + 3) * AKV * AD] = keep;
        CHECK(o1[(size_t)6 * AH * AD] == o2[(size_t)6 * AH * AD]);
        CHECK(o1[(size_t)5 * AH * AD] != o2[(size_t)5 * AH * AD]);
    }
}

TEST(attention_global_gradients) { check_attention(DSK_ATTN_GLOBAL); }
TEST(attention_local_gradients) { check_attention(DSK_ATTN_LOCAL); }
TEST(attention_hybrid_gradients) { check_attention(DSK_ATTN_HYBRID); }

TEST(attention_float_matches_double)
{
    at_shape.kind = DSK_ATTN_HYBRID;
    size_t nq = sizeof at_q / sizeof *at_q, nk = sizeof at_k / sizeof *at_k;
    float q[sizeof at_q / sizeof *at_q], k[sizeof at_k / sizeof *at_k], v[sizeof at_v / sizeof *at_v];
    float out[sizeof at_g / sizeof *at_g], alpha = 0.7f;
    static float lg[AB * AH * AT], ll[AB * AH * AT], og[AB * AT * AH * AD], ol[AB * AT * AH * AD];
    for (size_t i = 0; i < nq; i++)
        q[i] = (float)at_q[i];
    for (size_t i = 0; i < nk; i++)
        k[i] = (float)at_k[i], v[i] = (float)at_v[i];
    at_alpha[0] = alpha;
    double outd[sizeof at_g / sizeof *at_g];
    dsk_cpu_attention_fwd_f32(out, lg, ll, og, ol, q, k, v, at_pos, &alpha, &at_shape);
    dsk_cpu_attention_fwd_f64(outd, AT_SAVED, at_q, at_k, at_v, at_pos, at_alpha, &at_shape);
    double worst = 0;
    for (size_t i = 0; i < nq; i++)
        worst = fmax(worst, fabs(out[i] - outd[i]));
    CHECK(worst < 1e-5);
}

/* ---- swiglu, cross-entropy, embedding ------------------------------------------------------------------- */
enum { SN = 10 };
static double sw_g[SN], sw_u[SN], sw_d[SN];

static double swiglu_loss(void)
{
    double out[SN];
    dsk_cpu_swiglu_fwd_f64(out, sw_g, sw_u, SN);
    return dot(out, sw_d, SN);
}

TEST(swiglu_gradients)
{
    fill(sw_g, SN, 2);
    fill(sw_u, SN, 1);
    fill(sw_d, SN, 1);
    double dg[SN], du[SN];
    dsk_cpu_swiglu_bwd_f64(dg, du, sw_d, sw_g, sw_u, SN);
    CHECK(grad_error(sw_g, dg, SN, swiglu_loss) < TOL);
    CHECK(grad_error(sw_u, du, SN, swiglu_loss) < TOL);
}

enum { XN = 4, XV = 6 };
static double xe_z[XN * XV];
static const int32_t xe_t[XN] = {2, -1, 5, 0};
static const double xe_w[XN] = {1, 1, 0, 0.5};

static double xent_loss(void)
{
    double z[XN * XV], loss[XN];
    memcpy(z, xe_z, sizeof z);
    dsk_cpu_softmax_xent_f64(loss, z, xe_t, xe_w, XN, XV, 0);
    return loss[0] + loss[1] + loss[2] + loss[3];
}

TEST(softmax_xent_gradients)
{
    fill(xe_z, XN * XV, 3);
    double z[XN * XV], loss[XN];
    memcpy(z, xe_z, sizeof z);
    dsk_cpu_softmax_xent_f64(loss, z, xe_t, xe_w, XN, XV, 1);
    CHECK(grad_error(xe_z, z, XN * XV, xent_loss) < TOL);
    CHECK(loss[1] == 0 && loss[2] == 0);   /* ignored target, zero weight */
    double lse = 0;
    for (int c = 0; c < XV; c++)
        lse += exp(xe_z[c]);
    CHECK_NEAR(loss[0], log(lse) - xe_z[2], 1e-12);
}

enum { EV = 5, EC = 3, EN = 4 };
static double em_table[EV * EC], em_g[EN * EC];
static const int32_t em_tok[EN] = {1, 3, 1, 0};

static double embedding_loss(void)
{
    double out[EN * EC];
    dsk_cpu_embedding_fwd_f64(out, em_table, em_tok, EN, EC);
    return dot(out, em_g, EN * EC);
}

TEST(embedding_gradients)
{
    fill(em_table, EV * EC, 1);
    fill(em_g, EN * EC, 1);
    double d[EV * EC] = {0};
    dsk_cpu_embedding_bwd_f64(d, em_g, em_tok, EN, EC);
    CHECK(grad_error(em_table, d, EV * EC, embedding_loss) < TOL);
    CHECK(d[4 * EC] == 0);   /* token 4 never appears */
}

TEST(gemm_every_transpose)
{
    enum { M = 5, N = 4, K = 3 };
    double a[M * K], b[K * N], at[K * M], bt[N * K];
    fill(a, M * K, 1);
    fill(b, K * N, 1);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            at[k * M + i] = a[i * K + k];
    for (int k = 0; k < K; k++)
        for (int j = 0; j < N; j++)
            bt[j * K + k] = b[k * N + j];
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            double c[M * N];
            for (int i = 0; i < M * N; i++)
                c[i] = 1;
            dsk_cpu_gemm_f64(ta, tb, M, N, K, 2, ta ? at : a, tb ? bt : b, 0.5, c);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++)
                        s += a[i * K + k] * b[k * N + j];
                    CHECK_NEAR(c[i * N + j], 2 * s + 0.5, 1e-12);
                }
        }
}

/* The backend's grouped products equal one gemm per group, for small
 * groups (side by side, one per thread) and big ones (one at a time),
 * with empty groups left untouched and K varying (weight gradients). */
static void check_grouped(int big)
{
    dsk_backend *be = dsk_backend_cpu(2);
    enum { G = 7 };
    int M[G], N[G], K[G];
    float *A[G], *Bm[G], *C[G], *want[G];
    for (int g = 0; g < G; g++) {
        M[g] = g == 2 ? 0 : 1 + 5 * g + (big ? 400 : 0);
        N[g] = big ? 600 : 8 + g;
        K[g] = g == 4 ? 0 : (big ? 500 : 3 + 2 * g);
        size_t na = (size_t)M[g] * K[g], nb = (size_t)K[g] * N[g], nc = (size_t)M[g] * N[g];
        A[g] = malloc((na + 1) * sizeof(float));
        Bm[g] = malloc((nb + 1) * sizeof(float));
        C[g] = malloc((nc + 1) * sizeof(float));
        want[g] = malloc((nc + 1) * sizeof(float));
        for (size_t i = 0; i < na; i++)
            A[g][i] = (float)dsk_rng_normal(&rng);
        for (size_t i = 0; i < nb; i++)
            Bm[g][i] = (float)dsk_rng_normal(&rng);
        for (size_t i = 0; i < nc; i++)
            C[g][i] = want[g][i] = (float)dsk_rng_normal(&rng);
    }
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            for (int g = 0; g < G; g++)
                if (M[g] && N[g] && K[g])
                    dsk_cpu_gemm_f32(ta, tb, M[g], N[g], K[g], 0.5f, A[g], Bm[g], 1, want[g]);
            be->gemm_grouped(be, ta, tb, G, M, N, K, 0.5f, (const float *const *)A, (const float *const *)Bm, 1, C);
            double worst = 0;
            for (int g = 0; g < G; g++)
                for (size_t i = 0; i < (size_t)M[g] * N[g]; i++)
                    worst = fmax(worst, fabs(C[g][i] - want[g][i]) / (1 + fabs(want[g][i])));
            CHECK(worst < 1e-5);
        }
    for (int g = 0; g < G; g++) {
        free(A[g]), free(Bm[g]), free(C[g]), free(want[g]);
    }
    be->destroy(be);
}

/* gemm_add is a copy of R into C and gemm with beta 1, bit for bit, and
 * leaves R as it was; R may be C; K 0 leaves C = R. */
TEST(gemm_add_is_copy_and_accumulate)
{
    dsk_backend *be = dsk_backend_cpu(2);
    static const int shapes[][3] = {{7, 9, 5}, {64, 33, 70}, {3, 4, 0}};
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (int tb = 0; tb < 2; tb++) {
            int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
            float *a = malloc((na + 1) * sizeof *a), *b = malloc((nb + 1) * sizeof *b);
            float *r = malloc(nc * sizeof *r), *r0 = malloc(nc * sizeof *r0), *c = malloc(nc * sizeof *c);
            float *want = malloc(nc * sizeof *want);
            for (size_t i = 0; i < na; i++)
                a[i] = (float)dsk_rng_normal(&rng);
            for (size_t i = 0; i < nb; i++)
                b[i] = (float)dsk_rng_normal(&rng);
            for (size_t i = 0; i < nc; i++)
                r[i] = r0[i] = want[i] = (float)dsk_rng_normal(&rng), c[i] = NAN;
            be->gemm(be, 0, tb, M, N, K, 1.5f, a, b, 1, want);
            be->gemm_add(be, 0, tb, M, N, K, 1.5f, a, b, r, c);
            CHECK(memcmp(c, want, nc * sizeof *c) == 0);
            CHECK(memcmp(r, r0, nc * sizeof *r) == 0);
            be->gemm_add(be, 0, tb, M, N, K, 1.5f, a, b, r, r);   /* R is C */
            CHECK(memcmp(r, want, nc * sizeof *r) == 0);
            free(a), free(b), free(r), free(r0), free(c), free(want);
        }
    be->destroy(be);
}

/* The decoding kernels (a few rows times a weight stored [N,K]), each
 * this CPU runs (AVX-512, AVX2, plain), against double sums: row counts
 * through and past their blocks of rows, shapes with tails past the
 * blocks of 4 weight rows and 8 or 16 columns, writing and adding, and
 * one big enough for threads, whose split must not change a bit. */
static void check_gemv_rows(int kernel)
{
    static const int shapes[][2] = {{1, 1}, {3, 7}, {4, 8}, {13, 33}, {64, 256}, {1027, 300}};
    static const int rows[] = {1, 2, 3, 4, 5, 6, 7, 8, 11, 13, 32, 37};
    printf("# gemv_rows kernel %d\n", kernel);
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++)
        for (size_t mi = 0; mi < sizeof rows / sizeof *rows; mi++)
            for (int acc = 0; acc < 2; acc++) {
                int M = rows[mi];
                int N = shapes[si][0], K = shapes[si][1];
                size_t nx = (size_t)M * K, nw = (size_t)N * K, ny = (size_t)M * N;
                float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *y0 = malloc(ny * sizeof *y0);
                float *y = malloc(ny * sizeof *y), *yp = malloc(ny * sizeof *yp), *y1 = malloc(ny * sizeof *y1);
                for (size_t i = 0; i < nx; i++)
                    x[i] = (float)dsk_rng_normal(&rng);
                for (size_t i = 0; i < nw; i++)
                    w[i] = (float)dsk_rng_normal(&rng);
                for (size_t i = 0; i < ny; i++)
                    y0[i] = (float)dsk_rng_normal(&rng);
                memcpy(y, y0, ny * sizeof *y), memcpy(yp, y0, ny * sizeof *y), memcpy(y1, y0, ny * sizeof *y);
                dsk_gemv_rows_f32(x, M, w, N, K, y, acc);
                dsk_gemv_rows_f32_portable(x, M, w, N, K, yp, acc);
                omp_set_num_threads(1);
                dsk_gemv_rows_f32(x, M, w, N, K, y1, acc);
                omp_set_num_threads(2);
                double worst = 0;
                for (int m = 0; m < M; m++)
                    for (int n = 0; n < N; n++) {
                        double s = acc ? y0[(size_t)m * N + n] : 0, mag = fabs(s);
                        for (int k = 0; k < K; k++) {
                            double t = (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
                            s += t, mag += fabs(t);
                        }
                        size_t i = (size_t)m * N + n;
                        worst = fmax(worst, fmax(fabs(y[i] - s), fabs(yp[i] - s)) / (mag + 1e-30));
                    }
                CHECK(worst < 1e-6);
                CHECK(memcmp(y, y1, ny * sizeof *y) == 0);   /* 1 thread or 2: the same bits */
                free(x), free(w), free(y0), free(y), free(yp), free(y1);
            }
}

TEST(gemv_rows_matches_double)
{
    int ran = 0;
    for (int k = DSK_GEMV_PORTABLE; k <= DSK_GEMV_AVX512; k++)
        if (dsk_gemv_rows_force(k) == 0) {
            check_gemv_rows(k);
            ran++;
        }
    dsk_gemv_rows_force(-1);
    CHECK(ran >= 1);
}

/* Each vector kernel gives a row the bits it gives that row alone, for
 * every row count it takes and every place in the batch: what
 * speculative decoding's extra rows (and continuous batching) rely on. */
TEST(gemv_rows_row_bits_independent_of_batch)
{
    enum { N = 67, K = 203, MAXM = DSK_GEMV_MAX_ROWS_512 };
    float *x = malloc((size_t)MAXM * K * sizeof *x), *w = malloc((size_t)N * K * sizeof *w);
    float *y = malloc((size_t)MAXM * N * sizeof *y), *alone = malloc((size_t)N * sizeof *alone);
    for (int i = 0; i < MAXM * K; i++)
        x[i] = (float)dsk_rng_normal(&rng);
    for (int i = 0; i < N * K; i++)
        w[i] = (float)dsk_rng_normal(&rng);
    int differ = 0, ran = 0;
    for (int k = DSK_GEMV_PORTABLE; k <= DSK_GEMV_AVX512; k++) {
        if (dsk_gemv_rows_force(k) != 0)
            continue;
        ran++;
        int most = dsk_gemv_rows_max() ? dsk_gemv_rows_max() : DSK_GEMV_MAX_ROWS;
        for (int M = 1; M <= most; M++) {
            dsk_gemv_rows_f32(x, M, w, N, K, y, 0);
            for (int m = 0; m < M; m++) {
                dsk_gemv_rows_f32(x + (size_t)m * K, 1, w, N, K, alone, 0);
                differ += memcmp(alone, y + (size_t)m * N, (size_t)N * sizeof *alone) != 0;
            }
        }
    }
    dsk_gemv_rows_force(-1);
    CHECK(ran >= 1 && differ == 0);
    free(x), free(w), free(y), free(alone);
}

/* The backend sends one to DSK_GEMV_MAX_ROWS rows against a [N,K]
 * weight to that kernel, and everything else (alpha, beta not 0 or 1,
 * a transposed A or an untransposed B) to BLAS: all equal gemm. */
TEST(backend_small_products_equal_gemm)
{
    dsk_backend *be = dsk_backend_cpu(2);
    enum { N = 37, K = 45 };
    static const struct { int M, ta, tb; float alpha, beta; } cases[] = {
        {1, 0, 1, 1, 0}, {5, 0, 1, 1, 1}, {8, 0, 1, 1, 0}, {9, 0, 1, 1, 1}, {32, 0, 1, 1, 0}, {33, 0, 1, 1, 1},
        {3, 0, 1, 2, 0}, {3, 0, 1, 1, 0.5f}, {3, 1, 1, 1, 0}, {3, 0, 0, 1, 1}};
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        int M = cases[ci].M, ta = cases[ci].ta, tb = cases[ci].tb;
        float *a = malloc((size_t)M * K * sizeof *a), *b = malloc((size_t)N * K * sizeof *b);
        float *c = malloc((size_t)M * N * sizeof *c), *want = malloc((size_t)M * N * sizeof *want);
        for (int i = 0; i < M * K; i++)
            a[i] = (float)dsk_rng_normal(&rng);
        for (int i = 0; i < N * K; i++)
            b[i] = (float)dsk_rng_normal(&rng);
        for (int i = 0; i < M * N; i++)
            c[i] = want[i] = (float)dsk_rng_normal(&rng);
        be->gemm(be, ta, tb, M, N, K, cases[ci].alpha, a, b, cases[ci].beta, c);
        dsk_cpu_gemm_f32(ta, tb, M, N, K, cases[ci].alpha, a, b, cases[ci].beta, want);
        double worst = 0;
        for (int i = 0; i < M * N; i++)
            worst = fmax(worst, fabs(c[i] - want[i]) / (1 + fabs(want[i])));
        CHECK(worst < 1e-5);
        free(a), free(b), free(c), free(want);
    }
    be->destroy(be);
}

/* The packed panels against double for every row count the backend gives
 * them (a tail panel of 3 rows, K not a multiple of 16, chunks of rows
 * from 1 to 12), added to Y or not; a row's bits the same alone, in any
 * batch, at one thread and from the AVX2 kernel. */
TEST(packed_gemm_matches_double_and_keeps_row_bits)
{
    enum { N = 67, K = 203, MAXM = DSK_PACKED_MAX_ROWS };
    float *w = malloc((size_t)N * K * sizeof *w), *x = malloc((size_t)MAXM * K * sizeof *x);
    float *y = malloc((size_t)MAXM * N * sizeof *y), *y1 = malloc((size_t)MAXM * N * sizeof *y1);
    float *alone = malloc((size_t)N * sizeof *alone), *y0 = malloc((size_t)MAXM * N * sizeof *y0);
    for (int i = 0; i < N * K; i++)
        w[i] = (float)dsk_rng_normal(&rng);
    for (int i = 0; i < MAXM * K; i++)
        x[i] = (float)dsk_rng_normal(&rng);
    for (int i = 0; i < MAXM * N; i++)
        y0[i] = (float)dsk_rng_normal(&rng);
    dsk_packed_weight p;
    if (!dsk_packed_make(&p, w, N, K)) {
        printf("# no AVX2 here: nothing to check\n");
        CHECK(!dsk_packed_available() && p.panels == NULL);
        free(w), free(x), free(y), free(y1), free(alone), free(y0);
        return;
    }
    double worst = 0;
    int differ = 0, threads = omp_get_max_threads();
    for (int M = 1; M <= MAXM; M++)
        for (int acc = 0; acc < 2; acc++) {
            memcpy(y, y0, (size_t)M * N * sizeof *y);
            dsk_packed_gemm(&p, x, M, y, acc);
            for (int m = 0; m < M; m++)
                for (int n = 0; n < N; n++) {
                    double want = acc ? y0[(size_t)m * N + n] : 0;
                    for (int k = 0; k < K; k++)
                        want += (double)x[(size_t)m * K + k] * w[(size_t)n * K + k];
                    worst = fmax(worst, fabs(y[(size_t)m * N + n] - want) / (1 + fabs(want)));
                }
            for (int m = 0; m < M; m++) {
                memcpy(alone, y0 + (size_t)m * N, (size_t)N * sizeof *alone);
                dsk_packed_gemm(&p, x + (size_t)m * K, 1, alone, acc);
                differ += memcmp(alone, y + (size_t)m * N, (size_t)N * sizeof *alone) != 0;
            }
            omp_set_num_threads(1);
            memcpy(y1, y0, (size_t)M * N * sizeof *y1);
            dsk_packed_gemm(&p, x, M, y1, acc);
            omp_set_num_threads(threads);
            differ += memcmp(y1, y, (size_t)M * N * sizeof *y) != 0;
            dsk_packed_force_avx2(1);   /* the AVX2 kernel: the same bits */
            memcpy(y1, y0, (size_t)M * N * sizeof *y1);
            dsk_packed_gemm(&p, x, M, y1, acc);
            dsk_packed_force_avx2(0);
            differ += memcmp(y1, y, (size_t)M * N * sizeof *y) != 0;
        }
    printf("# worst relative error against double %.3g\n", worst);
    CHECK(worst < 1e-5);
    CHECK(differ == 0);
    dsk_packed_free(&p);
    free(w), free(x), free(y), free(y1), free(alone), free(y0);
}

/* A frozen weight's products of up to DSK_PACKED_MAX_ROWS rows go to its
 * panels (the packed kernel's bits, through gemm and through
 * gemm_grouped); more rows, another operand, or a weight not frozen go
 * elsewhere (BLAS's bits for the last). */
TEST(backend_frozen_weights_take_the_panels)
{
    if (!dsk_packed_available()) {
        printf("# no AVX2 here: nothing to check\n");
        return;
    }
    enum { N = 40, K = 33, M = 20, BIG = DSK_PACKED_MAX_ROWS + 1 };
    dsk_backend *be = dsk_backend_cpu(2);
    float *w = malloc((size_t)N * K * sizeof *w), *w2 = malloc((size_t)N * K * sizeof *w2);
    float *x = malloc((size_t)BIG * K * sizeof *x), *y = malloc((size_t)BIG * N * sizeof *y);
    float *want = malloc((size_t)BIG * N * sizeof *want);
    for (int i = 0; i < N * K; i++)
        w[i] = w2[i] = (float)dsk_rng_normal(&rng);
    for (int i = 0; i < BIG * K; i++)
        x[i] = (float)dsk_rng_normal(&rng);
    unsetenv("DSK_NO_PACKED");
    const float *ws[1] = {w};
    int ns[1] = {N}, ks[1] = {K};
    be->freeze_weights(be, 1, ws, ns, ks);
    dsk_packed_weight p;
    CHECK(dsk_packed_make(&p, w, N, K));
    dsk_packed_gemm(&p, x, M, want, 0);
    be->gemm(be, 0, 1, M, N, K, 1, x, w, 0, y);
    CHECK(memcmp(y, want, (size_t)M * N * sizeof *y) == 0);
    const float *A[2] = {x, x + (size_t)3 * K}, *B[2] = {w, w};
    float *C[2] = {y, y + (size_t)3 * N};
    int Ms[2] = {3, 5}, Ns[2] = {N, N}, Ks[2] = {K, K};
    be->gemm_grouped(be, 0, 1, 2, Ms, Ns, Ks, 1, A, B, 0, C);
    CHECK(memcmp(y, want, (size_t)8 * N * sizeof *y) == 0);
    /* the same values not frozen: the row kernel, other bits */
    be->gemm(be, 0, 1, M, N, K, 1, x, w2, 0, y);
    CHECK(memcmp(y, want, (size_t)M * N * sizeof *y) != 0);
    /* past the panels' rows: BLAS */
    be->gemm(be, 0, 1, BIG, N, K, 1, x, w, 0, y);
    dsk_cpu_gemm_f32(0, 1, BIG, N, K, 1, x, w, 0, want);
    CHECK(memcmp(y, want, (size_t)BIG * N * sizeof *y) == 0);
    /* A write into a frozen weight is refused (the panels would be
     * stale): upload, copy and adamw die, in a child. */
    for (int how = 0; how < 3; how++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            float one = 1, g = 0, m = 0, v = 0;
            if (how == 0)
                be->upload(be, w + 7, &one, sizeof one);
            else if (how == 1)
                be->copy(be, w + N * K - 1, &one, sizeof one);
            else
                be->adamw(be, w + 3, &g, 1, &m, &v, 1, 0.1f, 0.9f, 0.95f, 1e-8f, 0, 1, 1);
            _exit(0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 70);
    }
    be->upload(be, w2, w, sizeof *w);   /* next to it: fine */
    dsk_packed_free(&p);
    be->destroy(be);
    /* All or none: a set past DSK_PACKED_BUDGET (its sizes only; nothing
     * is read when it is refused) leaves even its small matrix to the
     * row kernel. */
    be = dsk_backend_cpu(2);
    const float *two[2] = {w, w2};
    int n2[2] = {N, 20000}, k2[2] = {K, 20000};
    be->freeze_weights(be, 2, two, n2, k2);
    be->gemm(be, 0, 1, M, N, K, 1, x, w, 0, y);
    float *rows = malloc((size_t)M * N * sizeof *rows);
    dsk_gemv_rows_f32(x, M, w, N, K, rows, 0);
    CHECK(memcmp(y, rows, (size_t)M * N * sizeof *y) == 0);
    free(rows);
    be->destroy(be);
    free(w), free(w2), free(x), free(y), free(want);
}

TEST(gemm_grouped_small_groups) { check_grouped(0); }
TEST(gemm_grouped_big_groups) { check_grouped(1); }

TEST(adamw_matches_the_formula)
{
    double p[3] = {0.5, -1, 2}, g[3] = {0.1, -0.2, 0.3}, m[3] = {0}, v[3] = {0};
    double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    double rp[3], rm[3] = {0}, rv[3] = {0};
    memcpy(rp, p, sizeof p);
    for (int t = 1; t <= 3; t++) {
        double c1 = 1 - pow(b1, t), c2 = 1 - pow(b2, t);
        dsk_cpu_adamw_f64(p, g, 1.0, m, v, 3, lr, b1, b2, eps, wd, c1, c2);
        for (int i = 0; i < 3; i++) {
            rm[i] = b1 * rm[i] + (1 - b1) * g[i];
            rv[i] = b2 * rv[i] + (1 - b2) * g[i] * g[i];
            rp[i] -= lr * wd * rp[i];
            rp[i] -= lr * (rm[i] / c1) / (sqrt(rv[i] / c2) + eps);
        }
    }
    for (int i = 0; i < 3; i++)
        CHECK_NEAR(p[i], rp[i], 1e-12);
}

/* ---- mixture of experts: the router's backward with the balancing terms ---------------- */
enum { MN = 6, ME = 5, MK = 2, MT = 3 };   /* 6 tokens in 2 sequences of 3, 5 experts, top 2 */
static double mo_z[MN * ME], mo_dg[MN * MK], mo_aux[(MN / MT) * ME];
static int mo_router;
static const double mo_zc = 0.03;

static double route_loss(void)
{
    double p[MN * ME], gate[MN * MK], L = 0;
    int32_t sel[MN * MK];
    dsk_cpu_moe_route_f64(p, sel, gate, mo_z, NULL, MN, ME, MK, mo_router);
    for (int i = 0; i < MN * MK; i++)
        L += mo_dg[i] * gate[i];
    for (int t = 0; t < MN; t++) {
        double all = 0, mx = -INFINITY, se = 0;
        for (int e = 0; e < ME; e++)
            all += p[t * ME + e], mx = fmax(mx, mo_z[t * ME + e]);
        for (int e = 0; e < ME; e++) {
            double q = mo_router == DSK_ROUTER_SOFTMAX ? p[t * ME + e] : p[t * ME + e] / all;
            L += mo_aux[(t / MT) * ME + e] * q;
            se += exp(mo_z[t * ME + e] - mx);
        }
        L += mo_zc * (mx + log(se)) * (mx + log(se));
    }
    return L;
}

static void check_route(int router)
{
    mo_router = router;
    fill(mo_z, MN * ME, 1.5);
    fill(mo_dg, MN * MK, 1);
    fill(mo_aux, (MN / MT) * ME, 0.5);
    double p[MN * ME], gate[MN * MK], dz[MN * ME];
    int32_t sel[MN * MK];
    dsk_cpu_moe_route_f64(p, sel, gate, mo_z, NULL, MN, ME, MK, router);
    dsk_cpu_moe_route_bwd_f64(dz, mo_dg, p, sel, gate, mo_z, mo_aux, MT, mo_zc, MN, ME, MK, router);
    CHECK(grad_error(mo_z, dz, MN * ME, route_loss) < TOL);
    /* The choice: the two largest scores, best first. */
    for (int t = 0; t < MN; t++) {
        const double *pt = p + t * ME;
        for (int e = 0; e < ME; e++)
            CHECK(e == sel[t * MK] || pt[e] <= pt[sel[t * MK]]);
        CHECK(pt[sel[t * MK + 1]] <= pt[sel[t * MK]] && sel[t * MK] != sel[t * MK + 1]);
    }
    /* A bias moves the choice but not the gate weights' source. */
    double bias[ME] = {0, 0, 0, 0, 10};
    dsk_cpu_moe_route_f64(p, sel, gate, mo_z, bias, MN, ME, MK, router);
    for (int t = 0; t < MN; t++)
        CHECK(sel[t * MK] == 4 && gate[t * MK] == (router == DSK_ROUTER_SOFTMAX ? p[t * ME + 4] : gate[t * MK]));
}

TEST(moe_route_softmax_gradients) { check_route(DSK_ROUTER_SOFTMAX); }
TEST(moe_route_sigmoid_gradients) { check_route(DSK_ROUTER_SIGMOID); }

enum { CN = 4, CK = 2, CD = 3 };
static double cb_y[CN * CK * CD], cb_g[CN * CK], cb_up[CN * CD];
static const int32_t cb_slot[CN * CK] = {0, 5, 1, -1, 2, 6, 3, 4};   /* token 1's second choice dropped */

static double combine_loss(void)
{
    double out[CN * CD] = {0};
    dsk_cpu_moe_combine_f64(out, cb_y, cb_slot, cb_g, CN, CK, CD);
    return dot(out, cb_up, CN * CD);
}

TEST(moe_combine_and_scatter_gradients)
{
    fill(cb_y, CN * CK * CD, 1);
    fill(cb_g, CN * CK, 1);
    fill(cb_up, CN * CD, 1);
    double dy[CN * CK * CD] = {0}, dgate[CN * CK];
    dsk_cpu_moe_combine_bwd_f64(dy, dgate, cb_up, cb_y, cb_slot, cb_g, CN, CK, CD);
    CHECK(grad_error(cb_y, dy, 7 * CD, combine_loss) < TOL);   /* rows 0..6 are in use */
    CHECK(grad_error(cb_g, dgate, CN * CK, combine_loss) < TOL);
    CHECK(dgate[3] == 0);
    /* scatter_add is gather's transpose: <gather(x), u> == <x, scatter(u)>. */
    int32_t row_token[7];
    for (int i = 0; i < CN * CK; i++)
        if (cb_slot[i] >= 0)
            row_token[cb_slot[i]] = i / CK;
    double x[CN * CD], xp[7 * CD], u[7 * CD], back[CN * CD] = {0};
    fill(x, CN * CD, 1);
    fill(u, 7 * CD, 1);
    dsk_cpu_moe_gather_f64(xp, x, row_token, 7, CD);
    dsk_cpu_moe_scatter_add_f64(back, u, cb_slot, CN, CK, CD);
    CHECK_NEAR(dot(xp, u, 7 * CD), dot(x, back, CN * CD), 1e-12);
}

TEST(moe_dispatch_capacity_and_layout)
{
    /* 5 tokens, top 2 of 3 experts, capacity 3: expert 0 is everyone's first choice. */
    const int32_t sel[10] = {0, 1, 0, 2, 0, 1, 0, 2, 0, 1};
    int32_t slot[10], row_token[10];
    int offsets[4];
    long counts[3] = {0};
    int kept = dsk_cpu_moe_dispatch(slot, row_token, offsets, counts, sel, 5, 2, 3, 3);
    CHECK(kept == 8 && counts[0] == 5 && counts[1] == 3 && counts[2] == 2);
    CHECK(offsets[0] == 0 && offsets[1] == 3 && offsets[2] == 6 && offsets[3] == 8);
    CHECK(slot[6] == -1 && slot[8] == -1);            /* tokens 3 and 4 lose expert 0 */
    CHECK(slot[0] == 0 && slot[2] == 1 && slot[4] == 2);
    CHECK(row_token[3] == 0 && row_token[4] == 2 && row_token[5] == 4 && row_token[6] == 1 && row_token[7] == 3);
}

/* The float kernels' vectorizable exp, through the float swiglu (silu(g) * 1). */
TEST(float_exp_is_accurate)
{
    enum { N = 2001 };
    static float g[N], u[N], out[N];
    for (int i = 0; i < N; i++)
        g[i] = -80.0f + 0.08f * (float)i, u[i] = 1;
    dsk_cpu_swiglu_fwd_f32(out, g, u, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = g[i] / (1 + exp(-(double)g[i]));
        worst = fmax(worst, fabs(out[i] - want) / fmax(fabs(want), 1e-30));
    }
    printf("# worst relative error %.3g\n", worst);
    CHECK(worst < 1e-6);
    g[0] = NAN;
    dsk_cpu_swiglu_fwd_f32(out, g, u, 1);
    CHECK(isnan(out[0]));
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static void avx2_exp_store(float *out, const float *in)
{
    _mm256_storeu_ps(out, dsk_fast_expf_avx2(_mm256_loadu_ps(in)));
}
#endif

/* ---- decoding attention with AVX2 ------------------------------------------------------------- */

/* dsk_attn_decode_avx2 against the double build of the portable kernel,
 * for every mask and a few head layouts (GQA, heads of 8 to 128, rows at
 * positions 0 to 150: fewer keys than one block of four, and enough work
 * for threads); each row's output the same bits alone as in the step,
 * and at one thread as at two. */
TEST(attn_decode_avx2_matches_double_and_keeps_row_bits)
{
    if (!dsk_cpu_avx2_fma()) {
        printf("# no AVX2 and FMA here: nothing to check\n");
        return;
    }
    static const int shapes[][3] = {{8, 4, 32}, {4, 4, 8}, {6, 2, 40}, {2, 1, 128}};
    enum { S = 3, L = 160, N = 7 };
    static const int32_t pos[N] = {0, 1, 2, 3, 9, 150, 17}, seq[N] = {0, 1, 2, 0, 1, 2, 0};
    double worst = 0;
    int differ = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof *shapes; si++) {
        int H = shapes[si][0], KV = shapes[si][1], hd = shapes[si][2];
        size_t stride = (size_t)L * KV * hd, nc = S * stride, nq = (size_t)N * H * hd;
        float *kc = malloc(nc * sizeof *kc), *vc = malloc(nc * sizeof *vc), *q = malloc(nq * sizeof *q);
        double *kd = malloc(nc * sizeof *kd), *vd = malloc(nc * sizeof *vd), *qd = malloc(nq * sizeof *qd);
        float *out = malloc(nq * sizeof *out), *out1 = malloc(nq * sizeof *out1), *alone = malloc(nq * sizeof *alone);
        double *ref = malloc(nq * sizeof *ref);
        for (size_t i = 0; i < nc; i++) {
            kd[i] = kc[i] = (float)dsk_rng_normal(&rng);
            vd[i] = vc[i] = (float)dsk_rng_normal(&rng);
        }
        for (size_t i = 0; i < nq; i++)
            qd[i] = q[i] = (float)(2 * dsk_rng_normal(&rng));
        for (int kind = 0; kind < 3; kind++) {
            dsk_attn_shape sh = {1, 1, H, KV, hd, kind, 5, 0};
            float alpha = 0.3f;
            double alpha_d = alpha;
            CHECK(dsk_attn_decode_avx2(out, q, kc, vc, stride, seq, pos, N, &alpha, &sh) == 0);
            dsk_cpu_attention_decode_f64(ref, qd, kd, vd, stride, seq, pos, N, &alpha_d, &sh);
            for (size_t i = 0; i < nq; i++)
                worst = fmax(worst, fabs(out[i] - ref[i]) / (1 + fabs(ref[i])));
            for (int r = 0; r < N; r++) {
                size_t at = (size_t)r * H * hd;
                dsk_attn_decode_avx2(alone + at, q + at, kc, vc, stride, seq + r, pos + r, 1, &alpha, &sh);
            }
            int threads = omp_get_max_threads();
            omp_set_num_threads(1);
            dsk_attn_decode_avx2(out1, q, kc, vc, stride, seq, pos, N, &alpha, &sh);
            omp_set_num_threads(threads);
            differ += memcmp(out, alone, nq * sizeof *out) != 0;
            differ += memcmp(out, out1, nq * sizeof *out) != 0;
        }
        free(kc), free(vc), free(q), free(kd), free(vd), free(qd), free(out), free(out1), free(alone), free(ref);
    }
    printf("# worst relative error against double %.3g\n", worst);
    CHECK(worst < 2e-6);
    CHECK(differ == 0);
    /* what it leaves to the portable kernel */
    float x = 0;
    int32_t zero = 0;
    dsk_attn_shape odd = {1, 1, 2, 1, 12, 0, 0, 0}, many = {1, 1, 128, 128, 8, 0, 0, 0};
    CHECK(dsk_attn_decode_avx2(&x, &x, &x, &x, 0, &zero, &zero, 1, &x, &odd) == -1);
    CHECK(dsk_attn_decode_avx2(&x, &x, &x, &x, 0, &zero, &zero, 1, &x, &many) == -1);
}

/* The 8-lane exp gives dsk_fast_expf's bits on every input tried: the
 * clamps, both signs of rounding, infinities and NaN. */
TEST(fast_expf_avx2_is_the_scalar_bit_for_bit)
{
#if defined(__x86_64__)
    if (!dsk_cpu_avx2_fma()) {
        printf("# no AVX2 here: nothing to check\n");
        return;
    }
    enum { N = 4096 };
    static float x[N], got[N];
    for (int i = 0; i < N - 8; i++)
        x[i] = (float)(200 * dsk_rng_uniform(&rng) - 100) * (i % 3 ? 1.0f : 0.01f);
    float special[8] = {INFINITY, -INFINITY, NAN, -87.3f, 88.3f, 0.0f, -0.0f, 0.5f * 0.69314718f};
    memcpy(x + N - 8, special, sizeof special);
    for (int i = 0; i < N; i += 8)
        avx2_exp_store(got + i, x + i);
    int differ = 0;
    for (int i = 0; i < N; i++) {
        float want = dsk_fast_expf(x[i]);
        differ += isnan(want) ? !isnan(got[i]) : test_bits_of(want) != test_bits_of(got[i]);
    }
    CHECK(differ == 0);
#endif
}

/* SwiGLU with AVX2 gives the portable kernels' bits, forward and
 * backward, past the last whole vector and with threads (n 13 and 5003):
 * large, tiny, signed zero, infinite and NaN gates included. */
TEST(swiglu_avx2_is_the_portable_bit_for_bit)
{
    static const size_t sizes[] = {13, 5003};
    int differ = 0;
    for (size_t si = 0; si < 2; si++) {
        size_t n = sizes[si];
        float *g = malloc(n * sizeof *g), *u = malloc(n * sizeof *u), *d = malloc(n * sizeof *d);
        float *a = malloc(4 * n * sizeof *a), *b = malloc(4 * n * sizeof *b);
        for (size_t i = 0; i < n; i++) {
            g[i] = (float)(8 * dsk_rng_normal(&rng));
            u[i] = (float)dsk_rng_normal(&rng);
            d[i] = (float)dsk_rng_normal(&rng);
        }
        float special[] = {100, -100, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-30f};
        memcpy(g + n - 8, special, sizeof special);
        if (dsk_swiglu_fwd_avx2(a, g, u, n) != 0) {
            printf("# no AVX2 here: nothing to check\n");
            free(g), free(u), free(d), free(a), free(b);
            return;
        }
        dsk_cpu_swiglu_fwd_f32(b, g, u, n);
        CHECK(dsk_swiglu_bwd_avx2(a + n, a + 2 * n, d, g, u, n) == 0);
        dsk_cpu_swiglu_bwd_f32(b + n, b + 2 * n, d, g, u, n);
        for (size_t i = 0; i < 3 * n; i++)
            differ += isnan(b[i]) ? !isnan(a[i]) : test_bits_of(a[i]) != test_bits_of(b[i]);
        free(g), free(u), free(d), free(a), free(b);
    }
    CHECK(differ == 0);
}

TEST(sumsq_is_exact_and_blocked)
{
    size_t n = 10000;
    float *x = malloc(n * sizeof *x);
    double want = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)(i % 7) - 3;
        want += (double)x[i] * x[i];
    }
    CHECK(dsk_cpu_sumsq_f32(x, n) == want);
    free(x);
}

int main(void)
{
    dsk_rng_seed(&rng, 42);
    static const test_case cases[] = {
        T(rmsnorm_gradients), T(rope_gradients_and_convention), T(attention_global_gradients),
        T(attention_local_gradients), T(attention_hybrid_gradients), T(attention_float_matches_double),
        T(swiglu_gradients), T(softmax_xent_gradients), T(embedding_gradients), T(gemm_every_transpose),
        T(gemm_add_is_copy_and_accumulate), T(gemv_rows_matches_double), T(gemv_rows_row_bits_independent_of_batch), T(backend_small_products_equal_gemm), T(packed_gemm_matches_double_and_keeps_row_bits),
        T(backend_frozen_weights_take_the_panels), T(gemm_grouped_small_groups), T(gemm_grouped_big_groups), T(adamw_matches_the_formula), T(moe_route_softmax_gradients), T(moe_route_sigmoid_gradients),
        T(moe_combine_and_scatter_gradients), T(moe_dispatch_capacity_and_layout), T(float_exp_is_accurate), T(attn_decode_avx2_matches_double_and_keeps_row_bits),
        T(fast_expf_avx2_is_the_scalar_bit_for_bit), T(swiglu_avx2_is_the_portable_bit_for_bit),
        T(sumsq_is_exact_and_blocked)};
    return run_tests(cases, sizeof cases / sizeof cases[0]);
}
