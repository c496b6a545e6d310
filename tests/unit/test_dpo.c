/* DPO: the loss's coefficients against finite differences, and the
 * model's weighted-loss gradient (what DPO backpropagates, with
 * coefficients of both signs per row) against finite differences. */
#include "core/rng.h"
#include "model/model.h"
#include "test.h"
#include "train/dpo.h"

TEST(dpo_loss_gradient_and_stats)
{
    enum { P = 4 };
    double logp[2 * P] = {-10, -12, -5, -4, -20, -21, -7, -7.5}, ref[2 * P] = {-11, -11, -5, -5, -19, -22, -8, -7};
    double coef[2 * P], num, beta = 0.3;
    dsk_dpo_stats st;
    double L = dsk_dpo_loss(logp, ref, NULL, P, beta, 0, 1.0, coef, &st);
    for (int i = 0; i < 2 * P; i++) {
        double keep = logp[i], h = 1e-6, c2[2 * P];
        dsk_dpo_stats s2;
        logp[i] = keep + h;
        double lp = dsk_dpo_loss(logp, ref, NULL, P, beta, 0, 1.0, c2, &s2);
        logp[i] = keep - h;
        double lm = dsk_dpo_loss(logp, ref, NULL, P, beta, 0, 1.0, c2, &s2);
        logp[i] = keep;
        num = (lp - lm) / (2 * h);
        CHECK_NEAR(coef[i], num, 1e-7);
    }
    /* Margins 0.3 * ((logp_c - ref_c) - (logp_r - ref_r)): 0.6, -0.3, -0.6, 0.45. */
    CHECK_NEAR(st.accuracy, 0.5, 1e-12);
    CHECK_NEAR(L / P, st.loss, 1e-12);
    CHECK_NEAR(st.margin, (0.6 - 0.3 - 0.6 + 0.45) / 4, 1e-12);
    /* At the reference the loss is log 2 for every pair. */
    dsk_dpo_loss(ref, ref, NULL, P, beta, 0, 1.0, coef, &st);
    CHECK_NEAR(st.loss, log(2.0), 1e-12);
    /* RPO: the chosen answers' NLL per token over all their tokens (TRL's cross-entropy of the chosen rows),
     * alpha times, added to each pair's loss; its gradient too (a pair whose chosen row has no tokens adds
     * nothing) */
    double n_tok[2 * P] = {5, 6, 2, 3, 0, 7, 4, 4}, alpha = 0.7, base = L;
    double R = dsk_dpo_loss(logp, ref, n_tok, P, beta, alpha, 1.0, coef, &st);
    CHECK_NEAR(R - base, P * alpha * (10.0 + 5.0 + 7.0) / (5 + 2 + 4), 1e-9);
    for (int i = 0; i < 2 * P; i++) {
        double keep = logp[i], h = 1e-6, c2[2 * P];
        dsk_dpo_stats s2;
        logp[i] = keep + h;
        double lp = dsk_dpo_loss(logp, ref, n_tok, P, beta, alpha, 1.0, c2, &s2);
        logp[i] = keep - h;
        double lm = dsk_dpo_loss(logp, ref, n_tok, P, beta, alpha, 1.0, c2, &s2);
        logp[i] = keep;
        CHECK_NEAR(coef[i], (lp - lm) / (2 * h), 1e-7);
    }
}

/* The gradient of sum_i w_i loss_i through the whole model, w of both signs. */
TEST(weighted_loss_gradient_through_the_model)
{
    enum { B = 4, TT = 8, V = 29 };
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model_config c;
    CHECK(dsk_config_preset(&c, "nano") == 0);
    c.vocab_size = V;
    dsk_model *m = dsk_model_create(&c, be);
    dsk_model_init_weights(m, 5);
    dsk_model_alloc_batch(m, B, TT);
    int32_t tok[B * TT], tgt[B * TT], pos[B * TT];
    float mask[B * TT], w[B * TT];
    const float row_coef[B] = {0.7f, -0.7f, 0.2f, -0.2f};
    dsk_rng r;
    dsk_rng_seed(&r, 8);
    for (int i = 0; i < B * TT; i++) {
        tok[i] = (int32_t)(dsk_rng_next(&r) % V);
        tgt[i] = (int32_t)(dsk_rng_next(&r) % V);
        pos[i] = i % TT;
        mask[i] = i % TT >= 3;   /* the prompt carries no loss */
        w[i] = mask[i] * row_coef[i / TT];
    }
    dsk_batch b = {B, TT, tok, tgt, pos, mask};
    dsk_err err = {0};
    CHECK(dsk_model_set_batch(m, &b, &err) == 0);
    dsk_model_zero_grad(m);
    dsk_model_forward(m, 0);
    dsk_model_loss_grad(m, w);
    dsk_model_backward(m);
    int bad = 0;
    for (size_t ti = 0; ti < m->n_tensors; ti++) {
        const dsk_tensor_info *t = &m->tensors[ti];
        float *p = m->params + t->offset, *g = m->grads + t->offset;
        double gn = 0;
        for (size_t i = 0; i < t->numel; i++)
            gn += (double)g[i] * g[i];
        if (gn == 0)
            continue;
        gn = sqrt(gn);
        float *keep = malloc(t->numel * sizeof *keep);
        memcpy(keep, p, t->numel * sizeof *keep);
        double eps = 1e-2, l[2];
        for (int side = 0; side < 2; side++) {
            for (size_t i = 0; i < t->numel; i++)
                p[i] = (float)(keep[i] + (side ? -eps : eps) * g[i] / gn);
            dsk_model_forward(m, 0);
            double rows[B];
            dsk_model_row_losses(m, rows);
            l[side] = 0;
            for (int k = 0; k < B; k++)
                l[side] += row_coef[k] * rows[k];
        }
        memcpy(p, keep, t->numel * sizeof *keep);
        free(keep);
        double numeric = (l[0] - l[1]) / (2 * eps);
        if (fabs(numeric - gn) > 2e-2 * (fabs(numeric) + gn) + 2 * 1.2e-7 * 4 / eps) {
            printf("#   %s: analytic %.6g numeric %.6g\n", t->name, gn, numeric);
            bad++;
        }
    }
    CHECK(bad == 0);
    dsk_model_free(m);
    be->destroy(be);
}

RUN_TESTS(T(dpo_loss_gradient_and_stats), T(weighted_loss_gradient_through_the_model))
