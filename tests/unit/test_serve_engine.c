/* The continuous-batching engine: concurrent requests through shared
 * batched steps give exactly the tokens each would get alone; stop
 * tokens, lengths, cancellation, the bounded queue and log-probabilities. */
#include <pthread.h>
#include <unistd.h>

#include "test.h"

#include "serve/engine.h"

enum { V = 53, MAXTOK = 24 };

typedef struct result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t tokens[64];
    float logprob[64], top_lp[64][3];
    int32_t top_id[64][3];
    int n, done, finish, prompt_tokens, completion_tokens, stop_after, token_us;
} result;

static int on_token(void *ctx, const dsk_engine_token *t)
{
    result *r = ctx;
    pthread_mutex_lock(&r->mu);
    if (r->n < 64) {
        r->tokens[r->n] = t->id;
        r->logprob[r->n] = t->logprob;
        for (int k = 0; k < t->n_top && k < 3; k++)
            r->top_id[r->n][k] = t->top_id[k], r->top_lp[r->n][k] = t->top_logprob[k];
    }
    r->n++;
    int stop = r->stop_after && r->n >= r->stop_after;
    pthread_mutex_unlock(&r->mu);
    if (r->token_us)   /* a slow consumer keeps its slot busy */
        usleep((useconds_t)r->token_us);
    return stop;
}

static void on_done(void *ctx, int finish, int prompt_tokens, int completion_tokens)
{
    result *r = ctx;
    pthread_mutex_lock(&r->mu);
    r->done++;
    r->finish = finish;
    r->prompt_tokens = prompt_tokens;
    r->completion_tokens = completion_tokens;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void wait_done(result *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->done)
        pthread_cond_wait(&r->cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

static void init_result(result *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
}

static dsk_model *make_model(dsk_backend *be, const char *preset)
{
    dsk_model_config c;
    dsk_config_preset(&c, preset);
    c.vocab_size = V;
    c.window = 4;
    dsk_model *m = dsk_model_create(&c, be);
    dsk_model_init_weights(m, 3);
    return m;
}

static dsk_engine_request request(const int32_t *prompt, int n, result *r)
{
    dsk_engine_request q = {0};
    q.prompt = prompt;
    q.n_prompt = n;
    q.max_tokens = MAXTOK;
    q.sampler.temperature = 0;
    q.stop[0] = q.stop[1] = -1;
    q.on_token = on_token;
    q.on_done = on_done;
    q.ctx = r;
    return q;
}

static void same_tokens_as_alone(const char *preset)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make_model(be, preset);
    enum { N = 6 };
    int32_t prompts[N][20];
    int lens[N] = {3, 17, 1, 9, 12, 5};
    for (int i = 0; i < N; i++)
        for (int t = 0; t < lens[i]; t++)
            prompts[i][t] = (int32_t)((i * 11 + t * 7 + 1) % V);
    /* Alone: the single-sequence generator, greedy. */
    int32_t want[N][MAXTOK];
    dsk_generator *g = dsk_generator_new(m, 0);
    dsk_rng rng;
    dsk_rng_seed(&rng, 1);
    dsk_err err = {0};
    dsk_sampler_opts greedy = {0, 0, 1};
    for (int i = 0; i < N; i++)
        CHECK(dsk_generate(g, prompts[i], lens[i], MAXTOK, &greedy, &rng, -1, -1, want[i], &err) == MAXTOK);
    dsk_generator_free(g);
    /* Together: 3 slots, 8 rows a step (17 prompt tokens take 3 steps), 3 waiting. */
    dsk_engine_opts o = {3, 0, 8, 8};
    dsk_engine *e = dsk_engine_start(m, &o, &err);
    result r[N];
    uint64_t id;
    for (int i = 0; i < N; i++) {
        init_result(&r[i]);
        dsk_engine_request q = request(prompts[i], lens[i], &r[i]);
        CHECK(dsk_engine_submit(e, &q, &id, &err) == 0);
    }
    int bad = 0;
    for (int i = 0; i < N; i++) {
        wait_done(&r[i]);
        CHECK(r[i].finish == DSK_ENGINE_LENGTH && r[i].n == MAXTOK && r[i].completion_tokens == MAXTOK);
        CHECK(r[i].prompt_tokens == lens[i]);
        for (int t = 0; t < MAXTOK; t++)
            bad += r[i].tokens[t] != want[i][t];
    }
    CHECK(bad == 0);
    dsk_engine_stats st;
    dsk_engine_stats_get(e, &st);
    printf("# %s: %ld steps, %ld rows (%.1f rows a step)\n", preset, st.steps, st.rows, (double)st.rows / st.steps);
    CHECK(st.running == 0 && st.waiting == 0);
    CHECK(st.rows == 6 * MAXTOK - 6 + 3 + 17 + 1 + 9 + 12 + 5);   /* every prompt once, every fed token once */
    CHECK((double)st.rows / st.steps > 2);                         /* batched, not one row a step */
    dsk_engine_stop(e);
    dsk_model_free(m);
    be->destroy(be);
}

TEST(concurrent_requests_get_the_tokens_they_get_alone) { same_tokens_as_alone("nano"); }
TEST(concurrent_requests_moe) { same_tokens_as_alone("nano-moe"); }

TEST(stop_tokens_logprobs_cancel_queue)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make_model(be, "nano");
    dsk_err err = {0};
    dsk_engine_opts o = {1, 40, 4, 1};
    dsk_engine *e = dsk_engine_start(m, &o, &err);
    int32_t p[4] = {5, 9, 2, 7};
    uint64_t id;
    /* Greedy with log-probabilities: the chosen token is the top one. */
    result a;
    init_result(&a);
    dsk_engine_request q = request(p, 4, &a);
    q.logprobs = 1;
    q.top_logprobs = 3;
    q.max_tokens = 6;
    CHECK(dsk_engine_submit(e, &q, &id, &err) == 0);
    wait_done(&a);
    CHECK(a.n == 6);
    for (int t = 0; t < 6; t++) {
        CHECK(a.top_id[t][0] == a.tokens[t] && a.top_lp[t][0] == a.logprob[t]);
        CHECK(a.logprob[t] <= 0 && a.top_lp[t][1] <= a.top_lp[t][0] && a.top_lp[t][2] <= a.top_lp[t][1]);
        CHECK(exp(a.top_lp[t][0]) + exp(a.top_lp[t][1]) + exp(a.top_lp[t][2]) <= 1 + 1e-5);
    }
    /* The third token as a stop token: two tokens, finish "stop". */
    result b;
    init_result(&b);
    q = request(p, 4, &b);
    q.stop[1] = a.tokens[2];
    if (a.tokens[0] != a.tokens[2] && a.tokens[1] != a.tokens[2]) {
        CHECK(dsk_engine_submit(e, &q, &id, &err) == 0);
        wait_done(&b);
        CHECK(b.finish == DSK_ENGINE_STOP && b.n == 2 && b.completion_tokens == 3);
    }
    /* The callback asks to stop after 3 tokens (a stop string). */
    result s3;
    init_result(&s3);
    s3.stop_after = 3;
    q = request(p, 4, &s3);
    CHECK(dsk_engine_submit(e, &q, &id, &err) == 0);
    wait_done(&s3);
    CHECK(s3.finish == DSK_ENGINE_STOP && s3.n == 3 && s3.completion_tokens == 3);
    /* Too long for a slot of 40. */
    q = request(p, 4, &b);
    q.max_tokens = 37;
    CHECK(dsk_engine_submit(e, &q, &id, &err) == EX_DATAERR);
    /* One slot busy, a queue of one: the third is refused, the second cancelled while waiting. */
    result c, d;
    init_result(&c);
    init_result(&d);
    q = request(p, 4, &c);
    q.max_tokens = 36;
    uint64_t id_c, id_d;
    CHECK(dsk_engine_submit(e, &q, &id_c, &err) == 0);
    q = request(p, 4, &d);
    int d_queued = dsk_engine_submit(e, &q, &id_d, &err) == 0;
    int refused = dsk_engine_submit(e, &q, &id, &err) == EX_TEMPFAIL;
    CHECK(refused);
    dsk_engine_cancel(e, id_c);
    wait_done(&c);
    CHECK(c.finish == DSK_ENGINE_CANCELLED || c.finish == DSK_ENGINE_LENGTH);
    int after = c.n;
    usleep(20000);
    CHECK(c.n == after && c.done == 1);   /* nothing after the end */
    if (d_queued)
        wait_done(&d);
    /* A request cancelled while it waits leaves the queue at once, not
     * when a slot frees: a new one is taken meanwhile (it used to get
     * EX_TEMPFAIL until the slot's sequence ended). */
    result busy, left, next;
    init_result(&busy);
    init_result(&left);
    init_result(&next);
    busy.token_us = 20000;   /* 36 tokens: about 0.7 s in the slot, time to spare on a loaded machine */
    q = request(p, 4, &busy);
    q.max_tokens = 36;
    CHECK(dsk_engine_submit(e, &q, &id_c, &err) == 0);
    dsk_engine_stats st;
    for (int i = 0; i < 2000; i++) {   /* until it holds the slot and the queue is free */
        dsk_engine_stats_get(e, &st);
        if (st.running == 1 && st.waiting == 0)
            break;
        usleep(1000);
    }
    q = request(p, 4, &left);
    int left_queued = dsk_engine_submit(e, &q, &id_d, &err) == 0;
    CHECK(left_queued);
    if (!left_queued) {
        dsk_engine_stop(e);
        dsk_model_free(m);
        be->destroy(be);
        return;
    }
    dsk_engine_cancel(e, id_d);
    wait_done(&left);
    pthread_mutex_lock(&busy.mu);
    int still_running = !busy.done;
    pthread_mutex_unlock(&busy.mu);
    CHECK(left.finish == DSK_ENGINE_CANCELLED && still_running);
    dsk_engine_stats_get(e, &st);
    CHECK(st.waiting == 0 && st.running == 1);
    q = request(p, 4, &next);
    CHECK(dsk_engine_submit(e, &q, &id, &err) == 0);
    wait_done(&busy);
    wait_done(&next);
    CHECK(busy.finish == DSK_ENGINE_LENGTH && next.n > 0);
    dsk_engine_stop(e);
    dsk_model_free(m);
    be->destroy(be);
}

RUN_TESTS(T(concurrent_requests_get_the_tokens_they_get_alone), T(concurrent_requests_moe),
          T(stop_tokens_logprobs_cancel_queue))
