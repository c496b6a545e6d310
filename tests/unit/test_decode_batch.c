/* The batched decoder against itself fed one token at a time (the
 * single-sequence generator is its one-slot instance): the same
 * logits for every sequence, whether its prompt is fed in one step with
 * other sequences' rows, in chunks, or a token at a time. */
#include "test.h"

#include "model/decode_batch.h"
#include "model/generate.h"
#include "ops/gemm_packed.h"

static dsk_model *make_model(dsk_backend *be, const char *preset, const char *pattern)
{
    dsk_model_config c;
    dsk_config_preset(&c, preset);
    c.vocab_size = 61;
    if (pattern)
        snprintf(c.attn_pattern, sizeof c.attn_pattern, "%s", pattern);
    c.window = 4;   /* shorter than the sequences: the sliding window matters */
    c.max_seq_len = 160;   /* room for a prompt of several prefill chunks */
    dsk_model *m = dsk_model_create(&c, be);
    dsk_model_init_weights(m, 11);
    return m;
}

/* Logits after each prefix of seq, one token at a time. */
static float *reference(dsk_model *m, const int32_t *seq, int n)
{
    int V = m->cfg.vocab_size;
    float *out = malloc((size_t)n * V * sizeof *out);
    dsk_generator *g = dsk_generator_new(m, 0);
    dsk_err err = {0};
    for (int i = 0; i < n; i++) {
        CHECK(dsk_generator_feed(g, seq[i], &err) == 0);
        memcpy(out + (size_t)i * V, g->host_logits, (size_t)V * sizeof *out);
    }
    dsk_generator_free(g);
    return out;
}

static double max_diff(const float *a, const float *b, int n)
{
    double worst = 0;
    for (int i = 0; i < n; i++)
        worst = fabs((double)a[i] - b[i]) > worst ? fabs((double)a[i] - b[i]) : worst;
    return worst;
}

/* The model's 2-D tensors handed to freeze_weights (as dsk_loaded_freeze
 * does), DSK_NO_PACKED unset so that they are laid out. */
static void freeze(dsk_backend *be, dsk_model *m)
{
    unsetenv("DSK_NO_PACKED");
    const float *W[64];
    int N[64], K[64], n = 0;
    for (size_t i = 0; i < m->n_tensors && n < 64; i++)
        if (m->tensors[i].ndim == 2) {
            W[n] = m->params + m->tensors[i].offset;
            N[n] = (int)m->tensors[i].shape[0], K[n] = (int)m->tensors[i].shape[1];
            n++;
        }
    be->freeze_weights(be, n, W, N, K);
}

/* frozen: the model's matrices handed to freeze_weights first (as
 * dsk-eval and dsk-serve do), after which, where the CPU has the packed
 * kernels, every product of a step gives a row its bits alone: the
 * batched logits then equal the single ones exactly. */
static void run_case(const char *preset, const char *pattern, int frozen)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make_model(be, preset, pattern);
    if (frozen)
        freeze(be, m);
    int V = m->cfg.vocab_size;
    int32_t a[12], b[9], c3[7];
    for (int i = 0; i < 12; i++)
        a[i] = (i * 7 + 3) % V;
    for (int i = 0; i < 9; i++)
        b[i] = (i * 13 + 5) % V;
    for (int i = 0; i < 7; i++)
        c3[i] = (i * 5 + 1) % V;
    float *ra = reference(m, a, 12), *rb = reference(m, b, 9), *rc = reference(m, c3, 7);
    dsk_batch_decoder *d = dsk_batch_decoder_new(m, 3, 0, 16);
    dsk_err err = {0};
    /* Step 1: a's first 5 tokens (a prefill chunk) and b's first 3, mixed. */
    int slots1[8] = {0, 1, 0, 0, 1, 0, 1, 0};
    int32_t toks1[8] = {a[0], b[0], a[1], a[2], b[1], a[3], b[2], a[4]};
    CHECK(dsk_batch_decoder_step(d, slots1, toks1, 8, NULL, &err) == 0);
    double worst = 0;
    int ai = 0, bi = 0;
    for (int i = 0; i < 8; i++) {
        const float *want = slots1[i] == 0 ? ra + (size_t)(ai++) * V : rb + (size_t)(bi++) * V;
        worst = fmax(worst, max_diff(d->host_logits + (size_t)i * V, want, V));
    }
    /* Then one token each per step, c joining after two steps, b leaving after its 9. */
    int la = 5, lb = 3, lc = 0;
    for (int step = 0; step < 7; step++) {
        int slots[3], n = 0;
        int32_t toks[3];
        if (la < 12)
            slots[n] = 0, toks[n++] = a[la];
        if (lb < 9)
            slots[n] = 1, toks[n++] = b[lb];
        if (step >= 2 && lc < 7)
            slots[n] = 2, toks[n++] = c3[lc];
        CHECK(dsk_batch_decoder_step(d, slots, toks, n, NULL, &err) == 0);
        for (int i = 0; i < n; i++) {
            const float *want = slots[i] == 0 ? ra + (size_t)(la++) * V : slots[i] == 1 ? rb + (size_t)(lb++) * V
                                : rc + (size_t)(lc++) * V;
            worst = fmax(worst, max_diff(d->host_logits + (size_t)i * V, want, V));
        }
    }
    CHECK(la == 12 && lb == 9 && lc == 5);
    printf("# %s %s%s: max |batched - single| = %.2e\n", preset, pattern ? pattern : "", frozen ? " frozen" : "",
           worst);
    CHECK(worst < 2e-4);
    if (frozen && dsk_packed_available())
        CHECK(worst == 0);
    /* A reset slot starts over: c's sequence again from its first token. */
    dsk_batch_decoder_reset(d, 2);
    int s2 = 2;
    CHECK(dsk_batch_decoder_step(d, &s2, c3, 1, NULL, &err) == 0);
    CHECK(max_diff(d->host_logits, rc, V) < 2e-4);
    /* Refusals change nothing. */
    int32_t bad = V;
    CHECK(dsk_batch_decoder_step(d, &s2, &bad, 1, NULL, &err) == EX_DATAERR);
    int s9 = 9;
    CHECK(dsk_batch_decoder_step(d, &s9, c3, 1, NULL, &err) == EX_SOFTWARE);
    CHECK(d->len[2] == 1);
    dsk_batch_decoder_free(d);
    free(ra), free(rb), free(rc);
    dsk_model_free(m);
    be->destroy(be);
}

TEST(batched_decode_matches_single_dense) { run_case("nano", "LHG", 0); }
TEST(batched_decode_matches_single_moe) { run_case("nano-moe", NULL, 0); }
TEST(frozen_batched_decode_is_single_bit_for_bit_dense) { run_case("nano", "LHG", 1); }
TEST(frozen_batched_decode_is_single_bit_for_bit_moe) { run_case("nano-moe", NULL, 1); }

/* A prompt of 45 tokens read in one step (more rows than any row kernel
 * takes: BLAS's products, unless the weights are frozen) against the
 * same tokens fed one a step: bit for bit when frozen and the CPU has the
 * packed kernels, within rounding otherwise. */
static void long_prompt_case(const char *preset, int frozen)
{
    enum { L = 45 };
    dsk_backend *be = dsk_backend_cpu(2);
    dsk_model *m = make_model(be, preset, "LHG");
    if (frozen)
        freeze(be, m);
    int V = m->cfg.vocab_size, slots[L];
    int32_t seq[L];
    for (int i = 0; i < L; i++)
        seq[i] = (i * 11 + 2) % V, slots[i] = 0;
    float *want = reference(m, seq, L);
    dsk_batch_decoder *d = dsk_batch_decoder_new(m, 1, 0, L);
    dsk_err err = {0};
    CHECK(dsk_batch_decoder_step(d, slots, seq, L, NULL, &err) == 0);
    double worst = max_diff(d->host_logits, want, L * V);
    printf("# %s, %d rows in one step%s: max |batched - single| = %.2e\n", preset, L, frozen ? ", frozen" : "", worst);
    CHECK(worst < 2e-4);
    if (frozen && dsk_packed_available())
        CHECK(worst == 0);
    dsk_batch_decoder_free(d);
    free(want);
    dsk_model_free(m);
    be->destroy(be);
}

TEST(long_prompt_step_matches_single) { long_prompt_case("nano", 0); }
TEST(frozen_long_prompt_step_is_single_bit_for_bit) { long_prompt_case("nano", 1); }
TEST(frozen_long_prompt_step_is_single_bit_for_bit_moe) { long_prompt_case("nano-moe", 1); }

/* The LM head on some rows only: those rows' logits as with all rows,
 * packed in row order; the others marked -1. */
TEST(only_the_wanted_rows_get_logits)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make_model(be, "nano", "LHG");
    int V = m->cfg.vocab_size;
    int32_t a[10], b[6];
    for (int i = 0; i < 10; i++)
        a[i] = (i * 7 + 3) % V;
    for (int i = 0; i < 6; i++)
        b[i] = (i * 13 + 5) % V;
    float *ra = reference(m, a, 10), *rb = reference(m, b, 6);
    dsk_batch_decoder *d = dsk_batch_decoder_new(m, 2, 0, 16);
    dsk_err err = {0};
    int slots[16];
    int32_t toks[16];
    unsigned char want[16];
    for (int i = 0; i < 10; i++)
        slots[i] = 0, toks[i] = a[i], want[i] = i % 3 == 1 || i == 9;
    for (int i = 0; i < 6; i++)
        slots[10 + i] = 1, toks[10 + i] = b[i], want[10 + i] = i == 5;
    CHECK(dsk_batch_decoder_step(d, slots, toks, 16, want, &err) == 0);
    double worst = 0;
    int next = 0, order = 1;
    for (int i = 0; i < 16; i++) {
        if (!want[i]) {
            CHECK(d->logit_row[i] == -1);
            continue;
        }
        order &= d->logit_row[i] == next++;
        const float *ref = i < 10 ? ra + (size_t)i * V : rb + (size_t)(i - 10) * V;
        worst = fmax(worst, max_diff(d->host_logits + (size_t)d->logit_row[i] * V, ref, V));
    }
    CHECK(order && next == 5);
    CHECK(worst < 2e-4);
    /* no row wanted: the cache still grows */
    memset(want, 0, sizeof want);
    int s0 = 0;
    CHECK(dsk_batch_decoder_step(d, &s0, a, 1, want, &err) == 0);
    CHECK(d->len[0] == 11 && d->logit_row[0] == -1);
    dsk_batch_decoder_free(d);
    /* The generator's chunked prefill ends where feeding one by one does. */
    int32_t long_seq[150];
    for (int i = 0; i < 150; i++)
        long_seq[i] = (i * 11 + 2) % V;
    float *rl = reference(m, long_seq, 150);
    dsk_generator *g = dsk_generator_new(m, 0);
    CHECK(dsk_generator_prefill(g, long_seq, 150, &err) == 0);
    CHECK(g->len == 150);
    CHECK(max_diff(g->host_logits, rl + (size_t)149 * V, V) < 2e-4);
    CHECK(dsk_generator_prefill(g, long_seq, g->max_len - 149, &err) == EX_DATAERR);   /* one too many */
    CHECK(g->len == 150);
    dsk_generator_free(g);
    free(ra), free(rb), free(rl);
    dsk_model_free(m);
    be->destroy(be);
}

TEST(a_full_slot_is_refused)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make_model(be, "nano", NULL);
    dsk_batch_decoder *d = dsk_batch_decoder_new(m, 1, 4, 8);
    int slots[5] = {0, 0, 0, 0, 0};
    int32_t toks[5] = {1, 2, 3, 4, 5};
    dsk_err err = {0};
    CHECK(dsk_batch_decoder_step(d, slots, toks, 5, NULL, &err) == EX_DATAERR);
    CHECK(d->len[0] == 0);
    CHECK(dsk_batch_decoder_step(d, slots, toks, 4, NULL, &err) == 0);
    CHECK(d->len[0] == 4);
    CHECK(dsk_batch_decoder_step(d, slots, toks, 1, NULL, &err) == EX_DATAERR);
    dsk_batch_decoder_free(d);
    dsk_model_free(m);
    be->destroy(be);
}

RUN_TESTS(T(batched_decode_matches_single_dense), T(batched_decode_matches_single_moe),
          T(frozen_batched_decode_is_single_bit_for_bit_dense), T(frozen_batched_decode_is_single_bit_for_bit_moe),
          T(long_prompt_step_matches_single), T(frozen_long_prompt_step_is_single_bit_for_bit),
          T(frozen_long_prompt_step_is_single_bit_for_bit_moe),
          T(only_the_wanted_rows_get_logits), T(a_full_slot_is_refused))
