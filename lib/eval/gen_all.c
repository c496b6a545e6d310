#include "eval/gen_all.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/hash.h"
#include "serve/engine.h"

typedef struct gen_all {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t done;
    long failed;           /* 1 + the first job that did not end by stop or length, 0: none */
    char why[512];         /* its reason */
} gen_all;

typedef struct job_ctx {
    gen_all *all;
    dsk_gen_job *job;
    size_t index;
} job_ctx;

/* On the engine's thread, under its lock: quick.  An answer's buffer
 * grows as it goes (most stop long before max_tokens). */
static int on_token(void *ctx, const dsk_engine_token *t)
{
    dsk_gen_job *j = ((job_ctx *)ctx)->job;
    if (j->n_out == j->cap) {
        j->cap = j->cap ? 2 * j->cap : 16;
        j->out = dsk_xrealloc(j->out, (size_t)j->cap * sizeof *j->out);
    }
    j->out[j->n_out++] = t->id;
    return 0;
}

static void on_done(void *ctx, int finish, int prompt_tokens, int completion_tokens, const char *error)
{
    (void)prompt_tokens, (void)completion_tokens;
    job_ctx *c = ctx;
    pthread_mutex_lock(&c->all->mu);
    c->all->done++;
    if (finish != DSK_ENGINE_STOP && finish != DSK_ENGINE_LENGTH && !c->all->failed) {
        c->all->failed = (long)c->index + 1;
        snprintf(c->all->why, sizeof c->all->why, "%s", error ? error : "cancelled");
    }
    pthread_cond_signal(&c->all->cv);
    pthread_mutex_unlock(&c->all->mu);
}

int dsk_generate_all(dsk_model *m, dsk_gen_job *jobs, size_t n, const dsk_gen_all_opts *o, dsk_err *err)
{
    if (n == 0)
        return 0;
    int longest = 0;
    for (size_t i = 0; i < n; i++) {
        jobs[i].out = NULL;
        jobs[i].n_out = jobs[i].cap = 0;
        longest = jobs[i].n_prompt > longest ? jobs[i].n_prompt : longest;
    }
    if (longest + o->max_tokens > m->cfg.max_seq_len)
        return dsk_fail(err, EX_DATAERR, "a prompt of %d tokens and %d to generate exceed the model's %d positions",
                        longest, o->max_tokens, m->cfg.max_seq_len);
    /* The caches hold the longest prompt and answer, not the model's whole
     * context: a 2,048-position model answering short questions needs a
     * fraction of that memory per slot. */
    int slots = o->slots < 1 ? 1 : o->slots > DSK_GEN_MAX_SLOTS ? DSK_GEN_MAX_SLOTS : o->slots;
    slots = (size_t)slots > n ? (int)n : slots;
    int queue = 2 * slots;   /* room for the slots to be refilled from as answers end */
    dsk_engine_opts eo = {.slots = slots, .max_len = longest + o->max_tokens, .max_rows = slots > 64 ? slots : 64,
                          .max_queue = queue, .spec_tokens = o->speculate, .spec_ngram = DSK_SPEC_NGRAM,
                          .spec_rows = DSK_SPEC_STEP_ROWS};
    dsk_engine *e = dsk_engine_start(m, &eo, err);
    if (!e)
        return err->code;
    gen_all all = {0};
    pthread_mutex_init(&all.mu, NULL);
    pthread_cond_init(&all.cv, NULL);
    job_ctx *ctx = dsk_xmalloc(n * sizeof *ctx);
    int rc = 0;
    size_t submitted = 0;
    /* Fewer answers in flight (submitted, not done) than the queue holds,
     * so it has room for the next whatever the engine has admitted yet
     * (a slot freed by an answer that is done is taken at its next
     * step); a task of many items is not all held by the engine at once. */
    for (size_t i = 0; i < n && !rc; i++) {
        pthread_mutex_lock(&all.mu);
        while (i - all.done >= (size_t)queue && !all.failed)
            pthread_cond_wait(&all.cv, &all.mu);
        long failed = all.failed;
        pthread_mutex_unlock(&all.mu);
        if (failed)   /* the task has failed: the rest are not worth the time */
            break;
        ctx[i] = (job_ctx){&all, &jobs[i], i};
        dsk_engine_request q = {0};
        q.prompt = jobs[i].prompt;
        q.n_prompt = jobs[i].n_prompt;
        q.max_tokens = o->max_tokens;
        q.sampler = o->sampler;
        q.penalties.repetition = 1;
        /* its own generator, unlike any other (seed, item)'s: seed + i
         * would give the runs at seeds s and s + 1 the same draws, one
         * item apart */
        uint64_t at = i;
        q.seed = dsk_hash64_seed(&at, sizeof at, o->seed);
        q.stop[0] = o->stop[0];
        q.stop[1] = o->stop[1];
        q.on_token = on_token;
        q.on_done = on_done;
        q.ctx = &ctx[i];
        uint64_t id;
        if ((rc = dsk_engine_submit(e, &q, &id, err)) == 0)
            submitted++;
    }
    /* After a failure, stopping the engine cancels what is still queued
     * or running (their on_done comes, CANCELLED, before it returns). */
    pthread_mutex_lock(&all.mu);
    while (all.done < submitted && !all.failed)
        pthread_cond_wait(&all.cv, &all.mu);
    pthread_mutex_unlock(&all.mu);
    dsk_engine_stop(e);
    if (!rc && all.failed)
        rc = dsk_fail(err, EX_SOFTWARE, "generation failed on item %ld: %s", all.failed, all.why);
    pthread_mutex_destroy(&all.mu);
    pthread_cond_destroy(&all.cv);
    free(ctx);
    if (rc)
        dsk_gen_jobs_free(jobs, n);
    return rc;
}

void dsk_gen_jobs_free(dsk_gen_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(jobs[i].out);
        jobs[i].out = NULL;
        jobs[i].n_out = jobs[i].cap = 0;
    }
}
