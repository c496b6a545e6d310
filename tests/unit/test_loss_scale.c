/* The loss scale's state machine (lib/train/loss_scale.h), and the
 * optimizer dividing it out (lib/train/optim.h): gradients carrying a
 * power-of-two scale give the same report and the same update, bit for
 * bit, as the unscaled ones. */
#include <string.h>

#include "core/rng.h"
#include "model/config.h"
#include "model/model.h"
#include "ops/backend.h"
#include "train/loss_scale.h"
#include "train/optim.h"
#include "test.h"

TEST(defaults_per_dtype)
{
    dsk_loss_scale ls;
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, 0, 0);
    CHECK(ls.dynamic && ls.scale == 65536 && ls.window == 1000 && ls.good == 0);
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, 1024, 7);
    CHECK(ls.dynamic && ls.scale == 1024 && ls.window == 7);
    dsk_loss_scale_init(&ls, DSK_DTYPE_BF16, 0, 1000);
    CHECK(!ls.dynamic && ls.scale == 1);
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP32, 128, 1000);
    CHECK(!ls.dynamic && ls.scale == 128);   /* a static scale may be given */
}

TEST(fp16_grows_after_a_window_of_good_steps)
{
    dsk_loss_scale ls;
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, 256, 3);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_KEPT);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_KEPT);
    CHECK(ls.scale == 256 && ls.good == 2);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_GREW);
    CHECK(ls.scale == 512 && ls.good == 0);
    /* An overflow restarts the count. */
    dsk_loss_scale_update(&ls, DSK_STEP_GOOD);
    dsk_loss_scale_update(&ls, DSK_STEP_GOOD);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GRAD_NONFINITE) == DSK_LS_BACKED_OFF);
    CHECK(ls.scale == 256 && ls.good == 0);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_KEPT);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_KEPT);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_GREW);
    CHECK(ls.scale == 512);
}

TEST(fp16_overflow_halves_and_is_bad_only_below_one)
{
    dsk_loss_scale ls;
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, 4, 1000);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GRAD_NONFINITE) == DSK_LS_BACKED_OFF);
    CHECK(ls.scale == 2);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GRAD_NONFINITE) == DSK_LS_BACKED_OFF);
    CHECK(ls.scale == 1);   /* 1 is not below 1 */
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GRAD_NONFINITE) == DSK_LS_BAD);
    CHECK(ls.scale == 0.5);
    for (int i = 0; i < 100; i++)
        CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GRAD_NONFINITE) == DSK_LS_BAD);
    CHECK(ls.scale == DSK_LOSS_SCALE_MIN);   /* a floor, never 0 */
}

TEST(a_failed_forward_is_always_bad_and_keeps_the_scale)
{
    dsk_loss_scale ls;
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, 0, 2);
    dsk_loss_scale_update(&ls, DSK_STEP_GOOD);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_LOSS_NONFINITE) == DSK_LS_BAD);
    CHECK(ls.scale == 65536 && ls.good == 0);
}

TEST(static_scales_never_move)
{
    dsk_loss_scale ls;
    for (int dt = DSK_DTYPE_FP32; dt <= DSK_DTYPE_BF16; dt++) {
        dsk_loss_scale_init(&ls, dt, 8, 2);
        for (int i = 0; i < 10; i++)
            CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_KEPT);
        CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GRAD_NONFINITE) == DSK_LS_BAD);
        CHECK(dsk_loss_scale_update(&ls, DSK_STEP_LOSS_NONFINITE) == DSK_LS_BAD);
        CHECK(ls.scale == 8);
    }
}

TEST(growth_stops_at_the_cap)
{
    dsk_loss_scale ls;
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, DSK_LOSS_SCALE_MAX / 2, 1);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_GREW);
    CHECK(ls.scale == DSK_LOSS_SCALE_MAX);
    CHECK(dsk_loss_scale_update(&ls, DSK_STEP_GOOD) == DSK_LS_KEPT);
    CHECK(ls.scale == DSK_LOSS_SCALE_MAX);
}

/* A model whose gradients overflow above some scale: from a huge start
 * the scaler backs off, step by step, to a scale that fits, none of it
 * counted bad; then it trains, probing a doubling after each window
 * (4 good steps, 1 overflow). */
TEST(from_a_huge_scale_down_to_one_that_fits)
{
    dsk_loss_scale ls;
    dsk_loss_scale_init(&ls, DSK_DTYPE_FP16, 1e30, 4);
    const double fits = 1e6;
    int backoffs = 0, bad = 0, good = 0;
    for (int step = 0; step < 200; step++) {
        int r = dsk_loss_scale_update(&ls, ls.scale > fits ? DSK_STEP_GRAD_NONFINITE : DSK_STEP_GOOD);
        backoffs += r == DSK_LS_BACKED_OFF;
        bad += r == DSK_LS_BAD;
        good += r == DSK_LS_KEPT || r == DSK_LS_GREW;
    }
    CHECK(bad == 0);
    CHECK(backoffs >= (int)ceil(log2(1e30 / fits)));
    CHECK(good >= (200 - backoffs) * 4 / 5 - 1);
    CHECK(ls.scale <= fits * 2 && ls.scale > fits / 2);
}

/* The optimizer: grads * 2^10 with loss_scale 2^10 against grads with 1. */
TEST(optimizer_divides_the_scale_out)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model_config c;
    CHECK(dsk_config_preset(&c, "nano") == 0);
    c.vocab_size = 61;
    dsk_err err = {0};
    CHECK(dsk_config_validate(&c, &err) == 0);
    dsk_model *m[2];
    dsk_optimizer *opt[2];
    dsk_adamw_opts o;
    dsk_adamw_defaults(&o);
    o.warmup = 2;
    o.total_steps = 10;
    o.clip = 0.5;   /* the clipping coefficient matters */
    dsk_rng rng;
    dsk_rng_seed(&rng, 5);
    for (int i = 0; i < 2; i++) {
        m[i] = dsk_model_create(&c, be);
        dsk_model_init_weights(m[i], 3);
        opt[i] = dsk_optimizer_create(m[i], &o);
        CHECK(opt[i]->loss_scale == 1);
    }
    opt[1]->loss_scale = 1024;
    for (int step = 0; step < 3; step++) {
        for (size_t j = 0; j < m[0]->n_params; j++) {
            float g = (float)(0.01 * dsk_rng_normal(&rng));
            m[0]->grads[j] = g;
            m[1]->grads[j] = g * 1024;
        }
        dsk_step_report r0 = dsk_optimizer_step(opt[0]), r1 = dsk_optimizer_step(opt[1]);
        CHECK(r0.grad_norm == r1.grad_norm);   /* the unscaled norm */
        CHECK(r0.grad_norm > o.clip);          /* so clipping took part */
        CHECK(!r0.skipped && !r1.skipped);
    }
    CHECK(!memcmp(m[0]->params, m[1]->params, m[0]->n_params * sizeof(float)));
    CHECK(!memcmp(opt[0]->m, opt[1]->m, m[0]->n_params * sizeof(float)));
    CHECK(!memcmp(opt[0]->v, opt[1]->v, m[0]->n_params * sizeof(float)));
    /* An overflow: skipped, nothing moves. */
    m[1]->grads[5] = INFINITY;
    long before = opt[1]->step;
    CHECK(dsk_optimizer_step(opt[1]).skipped);
    CHECK(opt[1]->step == before);
    for (int i = 0; i < 2; i++) {
        dsk_optimizer_free(opt[i]);
        dsk_model_free(m[i]);
    }
    be->destroy(be);
}

RUN_TESTS(T(defaults_per_dtype), T(fp16_grows_after_a_window_of_good_steps),
          T(fp16_overflow_halves_and_is_bad_only_below_one), T(a_failed_forward_is_always_bad_and_keeps_the_scale),
          T(static_scales_never_move), T(growth_stops_at_the_cap), T(from_a_huge_scale_down_to_one_that_fits),
          T(optimizer_divides_the_scale_out))
