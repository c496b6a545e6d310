/* dsk_generate_all: many answers through the engine, fed through its
 * bounded queue, each the answer decoding it alone gives. */
#include "test.h"

#include "eval/gen_all.h"
#include "ops/gemv_rows.h"

enum { V = 53, ITEMS = 300 };

static dsk_model *make_model(dsk_backend *be)
{
    dsk_model_config c;
    dsk_config_preset(&c, "nano");
    c.vocab_size = V;
    dsk_model *m = dsk_model_create(&c, be);
    dsk_model_init_weights(m, 5);
    return m;
}

/* Prompts of 1 to 8 tokens (steps of at most 8 rows: the row kernels'
 * bits, whatever the batch), many beginning alike (prefix sharing). */
static int make_prompt(int i, int32_t *p)
{
    int n = 1 + i % 8;
    for (int t = 0; t < n; t++)
        p[t] = (int32_t)((t < 3 ? t * 5 + 1 : i * 13 + t * 7) % V);
    return n;
}

TEST(every_answer_as_alone_through_a_small_queue)
{
    int row_kernel = dsk_gemv_rows_force(DSK_GEMV_AVX2) == 0;
    dsk_backend *be = dsk_backend_cpu(2);
    dsk_model *m = make_model(be);
    static int32_t prompts[ITEMS][8], want[ITEMS][4];
    dsk_gen_job jobs[ITEMS];
    dsk_generator *g = dsk_generator_new(m, 0);
    dsk_rng rng;
    dsk_rng_seed(&rng, 1);
    dsk_err err = {0};
    dsk_sampler_opts greedy = {0, 0, 1, 0};
    int stop = 7;   /* some answers end early, at the stop token */
    int lens[ITEMS], want_n[ITEMS];
    for (int i = 0; i < ITEMS; i++) {
        lens[i] = make_prompt(i, prompts[i]);
        want_n[i] = dsk_generate(g, prompts[i], lens[i], 3, &greedy, &rng, stop, -1, want[i], &err);
    }
    dsk_generator_free(g);
    int slot_counts[] = {1, 3, 64};
    for (size_t s = 0; s < sizeof slot_counts / sizeof *slot_counts; s++) {
        for (int i = 0; i < ITEMS; i++)
            jobs[i] = (dsk_gen_job){.prompt = prompts[i], .n_prompt = lens[i]};
        dsk_gen_all_opts o = {3, greedy, 1, {stop, -1}, slot_counts[s], s == 1 ? 4 : 0};
        int grc = dsk_generate_all(m, jobs, ITEMS, &o, &err);
        if (grc)
            printf("# %s\n", err.msg);
        CHECK(grc == 0);
        int differ = 0, lengths = 0;
        for (int i = 0; i < ITEMS; i++) {
            lengths += jobs[i].n_out != want_n[i];
            for (int t = 0; t < jobs[i].n_out && t < want_n[i]; t++)
                differ += jobs[i].out[t] != want[i][t];
        }
        CHECK(lengths == 0);
        if (row_kernel)
            CHECK(differ == 0);
        dsk_gen_jobs_free(jobs, ITEMS);
    }
    /* a prompt past the model's positions: refused, nothing allocated */
    static int32_t longp[1024];
    jobs[0] = (dsk_gen_job){.prompt = longp, .n_prompt = m->cfg.max_seq_len};
    dsk_gen_all_opts o = {3, greedy, 1, {-1, -1}, 2, 0};
    CHECK(dsk_generate_all(m, jobs, 1, &o, &err) == EX_DATAERR && jobs[0].out == NULL);
    dsk_gen_jobs_free(jobs, 1);
    dsk_gemv_rows_force(-1);
    dsk_model_free(m);
    be->destroy(be);
}

RUN_TESTS(T(every_answer_as_alone_through_a_small_queue))
