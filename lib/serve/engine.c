#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/decode_batch.h"
#include "serve/engine.h"
#include "serve/lookup_draft.h"

enum { SEQ_FREE, SEQ_PREFILL, SEQ_DECODE };

/* Tokens a sequence may add to its own row in one step: drafts, or
 * forced tokens. */
enum { DRAFT_STRIDE = DSK_ENGINE_MAX_DRAFT + 1 };

typedef struct seq {
    uint64_t id;
    int state, cancelled;
    dsk_engine_request r;
    int32_t *prompt;
    dsk_logit_bias *bias;      /* the request's, owned */
    int fed, generated;        /* prompt[n_prompt..n_prompt+generated): the answer so far (room for max_tokens) */
    int32_t last;
    /* Speculative decoding: draft tokens to offer next (grows while they
     * are taken), drafts in a row of which none was taken, and steps to
     * go without one after them */
    int draft_cap, draft_misses, draft_pause;
    dsk_rng rng;
    dsk_json_prefix json;      /* JSON mode: the answer so far, as JSON */
    dsk_call_prefix call;      /* tool calls: the answer so far, its calls held to the tools */
} seq;

struct dsk_engine {
    dsk_model *m;
    dsk_batch_decoder *d;
    dsk_engine_opts o;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int quit;
    seq *slot;                 /* [slots] */
    seq *queue;                /* FIFO [max_queue] */
    int q_head, q_len;
    uint64_t next_id;
    long steps, rows, prefix_queries, prefix_hits;
    int *row_slot, *row_seq_last;
    int32_t *row_tok;
    unsigned char *row_want;   /* [max_rows]: the rows whose logits are read */
    int *chunk_row, *chunk_n, *chunk_pos;   /* [slots]: this step's prompt rows of each sequence */
    dsk_engine_token *row_token;            /* [max_rows]: a prompt row's next prompt token, scored */
    int *score_row;                         /* [max_rows]: this step's rows to score */
    dsk_token_counts *counts;  /* [slots]: the tokens each sequence has seen, for its penalties */
    int *order;                /* sampler scratch [slots][vocab] */
    float *scratch;            /* [slots][vocab] */
    /* [slots][spec_tokens + 1]: this step's tokens of each sequence, one
     * for each row it was given while they matched its draft */
    dsk_engine_token *drawn;
    int *n_drawn, *n_accepted;                 /* [slots] */
    int32_t *draft;            /* [slots][DRAFT_STRIDE]: this step's draft of each decoding sequence */
    int *n_draft;              /* [slots] */
    long spec_drafted, spec_accepted;
    /* Jump-forward decoding: [slots][DSK_ENGINE_MAX_DRAFT] the tokens
     * each sequence's answer must go on with, forced[i][forced_at[i] ..
     * n_forced[i]) still to take (n_forced -1: not yet looked for);
     * step_forced[i]: this step's draft is those tokens; jumped[i]: the
     * tokens it took so, this step. */
    int32_t *forced;
    int *n_forced, *forced_at, *step_forced, *jumped;
    long jump_tokens;
    /* Tokens in the running sequences' caches, counted under the lock
     * between steps (the step changes the lengths without it). */
    long cached;
    /* [slots]: a free slot's last prompt, whose keys and values stay in
     * its cache (lend_n tokens of it) until the slot is taken again. */
    int32_t **lend_prompt;
    int *lend_n;
    useconds_t step_delay_us;  /* slept before each step (DSK_SERVE_STEP_DELAY_MS; 0: none) */
};

/* error: what went wrong, when why is DSK_ENGINE_ERROR (else NULL). */
static void finish(seq *s, int why, const char *error)
{
    s->r.on_done(s->r.ctx, why, s->r.n_prompt, s->generated, why == DSK_ENGINE_ERROR ? error : NULL);
    free(s->prompt);
    free(s->bias);
    memset(s, 0, sizeof *s);
}

/* JSON mode or tool calls: masks the tokens that would break the
 * answer's JSON or calls.  The stop tokens stay where the answer may end:
 * in JSON mode, a whole text that could go on (a number at the top); with
 * tools, in text or after a call.  Returns the tokens left. */
static int constrain(const seq *s, float *logits, int V)
{
    float stop_logit[2] = {0, 0};
    for (int k = 0; k < 2; k++)
        if (s->r.stop[k] >= 0 && s->r.stop[k] < V)
            stop_logit[k] = logits[s->r.stop[k]];
    int n = s->r.json ? dsk_json_vocab_mask(s->r.json, &s->json, logits)
                      : dsk_call_vocab_mask(s->r.call_vocab, &s->call, logits);
    if (s->r.json ? dsk_json_prefix_complete(&s->json) : dsk_call_prefix_may_end(&s->call))
        for (int k = 0; k < 2; k++)
            if (s->r.stop[k] >= 0 && s->r.stop[k] < V && isinf(logits[s->r.stop[k]])) {
                logits[s->r.stop[k]] = stop_logit[k];
                n++;
            }
    return n;
}

/* JSON mode or tool calls: feeds the drawn token; 0 if it broke the
 * answer. */
static int constrain_feed(seq *s, int32_t tok)
{
    return s->r.json ? dsk_json_vocab_feed(s->r.json, &s->json, tok)
                     : dsk_call_vocab_feed(s->r.call_vocab, &s->call, tok);
}

/* Whether the answer is whole: a JSON answer closed, the last call
 * allowed written. */
static int answer_closed(const seq *s)
{
    return s->r.json ? dsk_json_prefix_closed(&s->json) : s->r.tools && dsk_call_prefix_done(&s->call);
}

/* Jump-forward decoding: the forced tokens sequence i's answer must go
 * on with from its state now (serve/json_mode.h), taken without a draw;
 * none without a constraint or with jump_forward off. */
static void plan_forced(dsk_engine *e, int i)
{
    const seq *s = &e->slot[i];
    int32_t *f = e->forced + (size_t)i * DSK_ENGINE_MAX_DRAFT;
    e->forced_at[i] = 0;
    e->n_forced[i] = !e->o.jump_forward ? 0
                     : s->r.json      ? dsk_json_vocab_forced(s->r.json, &s->json, f, DSK_ENGINE_MAX_DRAFT)
                     : s->r.tools     ? dsk_call_vocab_forced(s->r.call_vocab, &s->call, f, DSK_ENGINE_MAX_DRAFT)
                                      : 0;
}

static int forced_left(const dsk_engine *e, int i) { return e->n_forced[i] - e->forced_at[i]; }

/* Slot i keeps no prompt any more (taken again, or ended). */
static void forget_kept(dsk_engine *e, int i)
{
    free(e->lend_prompt[i]);
    e->lend_prompt[i] = NULL;
    e->lend_n[i] = 0;
}

/* Ends the sequence in slot i.  Its prompt's keys and values stay in the
 * cache for later prompts that begin the same way (share_prefix), but
 * after a failed step, whose cache is not to be trusted. */
static void retire(dsk_engine *e, int i, int why, const char *error)
{
    seq *s = &e->slot[i];
    forget_kept(e, i);
    int n = s->r.n_prompt < e->d->len[i] ? s->r.n_prompt : e->d->len[i];
    if (why != DSK_ENGINE_ERROR && n > 0) {
        e->lend_prompt[i] = s->prompt;   /* finish() frees what is left in s */
        e->lend_n[i] = n;
        s->prompt = NULL;
    }
    finish(s, why, error);
    e->d->len[i] = e->lend_n[i];
}

/* How many of the first tokens of b (at most n) a has. */
static int common_prefix(const int32_t *a, int na, const int32_t *b, int n)
{
    n = na < n ? na : n;
    int k = 0;
    while (k < n && a[k] == b[k])
        k++;
    return k;
}

/* The free slot for q: the one whose kept prompt begins the longest way
 * like q's (*own of it usable), else one keeping nothing, else the first
 * free one (its kept prompt is lost).  -1: none free. */
static int free_slot_for(const dsk_engine *e, const seq *q, int *own)
{
    int best = -1, empty = -1, any = -1;
    *own = 0;
    for (int i = 0; i < e->o.slots; i++) {
        if (e->slot[i].state != SEQ_FREE)
            continue;
        any = any < 0 ? i : any;
        if (!e->lend_n[i]) {
            empty = empty < 0 ? i : empty;
            continue;
        }
        int k = q->r.prompt_logprobs ? 0 : common_prefix(e->lend_prompt[i], e->lend_n[i], q->prompt, q->r.n_prompt - 1);
        if (k > *own)
            *own = k, best = i;
    }
    return best >= 0 ? best : empty >= 0 ? empty : any;
}

/* The chosen token's log-probability and the top alternatives (the
 * likeliest first, a lower id first among equals), from the raw logits
 * (before bias, penalties and temperature), as OpenAI reports them.
 * Two passes over the vocabulary; the alternatives are kept sorted as
 * they come, so asking for 20 costs about what asking for 1 does. */
static void logprobs(const float *logits, int V, int32_t chosen, int n_top, dsk_engine_token *t)
{
    double mx = logits[0], sum = 0;
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    for (int i = 0; i < V; i++)
        sum += exp((double)logits[i] - mx);
    double lse = mx + log(sum);
    t->id = chosen;
    t->end = 0;
    t->logprob = (float)(logits[chosen] - lse);
    int n = 0;
    if (n_top > V)
        n_top = V;
    for (int i = 0; i < V && n_top > 0; i++) {
        if (n == n_top && !(logits[i] > logits[t->top_id[n - 1]]))
            continue;
        int at = n < n_top ? n++ : n - 1;   /* full: the last one leaves */
        while (at > 0 && logits[i] > logits[t->top_id[at - 1]]) {
            t->top_id[at] = t->top_id[at - 1];
            at--;
        }
        t->top_id[at] = i;
    }
    t->n_top = n;
    for (int k = 0; k < n; k++)
        t->top_logprob[k] = (float)(logits[t->top_id[k]] - lse);
}

/* Requests cancelled while they wait (their client left) leave the queue
 * now, not when a slot frees: they must not fill it against new ones. */
static void drop_cancelled_waiting(dsk_engine *e)
{
    int kept = 0;
    for (int k = 0; k < e->q_len; k++) {
        seq *q = &e->queue[(e->q_head + k) % e->o.max_queue];
        if (q->cancelled)
            finish(q, DSK_ENGINE_CANCELLED, NULL);
        else
            e->queue[(e->q_head + kept++) % e->o.max_queue] = *q;
    }
    e->q_len = kept;
}

/* Prefix sharing.  A sequence about to read its prompt (none read yet)
 * takes the longest beginning of it that another slot's cache holds (a
 * system prompt, a request's n choices), from a live sequence or from a
 * free slot that kept its last prompt (retire): those keys and values are
 * copied and reading starts after them.  When an earlier sequence is
 * still reading more of the same beginning, this one waits a step instead
 * of computing it beside it (earlier ones only: no cycle), if that saves
 * SHARE_WAIT_MIN tokens or more.  The last prompt token is always read:
 * its logits draw the first answer token.  Returns 1 to wait this step. */
enum { SHARE_WAIT_MIN = 16 };
static int share_prefix(dsk_engine *e, int i)
{
    seq *s = &e->slot[i];
    int want = s->r.n_prompt - 1, take = 0, from = -1, coming = 0;
    for (int j = 0; j < e->o.slots && want > 0; j++) {
        const seq *o = &e->slot[j];
        if (j == i || o->cancelled)
            continue;
        int k;
        if (o->state == SEQ_FREE)   /* a finished sequence's kept prompt */
            k = e->lend_n[j] ? common_prefix(e->lend_prompt[j], e->lend_n[j], s->prompt, want) : 0;
        else
            k = common_prefix(o->prompt, o->r.n_prompt, s->prompt, want);
        int have = k < e->d->len[j] ? k : e->d->len[j];
        if (have > take)
            take = have, from = j;
        if (o->state == SEQ_PREFILL && o->id < s->id && k > coming)
            coming = k;
    }
    if (coming - take >= SHARE_WAIT_MIN)
        return 1;
    if (take > 0) {
        dsk_batch_decoder_share(e->d, from, i, take);
        s->fed = take;
        e->prefix_hits += take;
    }
    return 0;
}

/* Runs of one token guess badly: on the bench's model, sampled answers
 * took a quarter of such drafts and ran 10% slower than without drafts;
 * from two tokens on, drafts were taken 85% of the time and cost nothing
 * where they failed (unless --speculate-ngram is 1). */
enum { SPEC_NGRAM_MIN = 2 };

/* Speculative decoding: sequence i's draft (serve/lookup_draft.h), as
 * the rows after its own, from row n on, within *spare rows and within
 * what its answer and its cache have room for.  Returns the rows added. */
static int offer_draft(dsk_engine *e, int i, int n, int *spare)
{
    seq *s = &e->slot[i];
    if (s->draft_pause > 0) {
        s->draft_pause--;
        return 0;
    }
    int k = s->draft_cap < *spare ? s->draft_cap : *spare;
    int answer_room = s->r.max_tokens - s->generated - 1;   /* the last row's token is one more */
    int cache_room = e->d->max_len - e->d->len[i] - 1;      /* and the sequence's own row */
    k = answer_room < k ? answer_room : k;
    k = cache_room < k ? cache_room : k;
    if (k < 1)
        return 0;
    int32_t *draft = e->draft + (size_t)i * DRAFT_STRIDE;
    int shortest = e->o.spec_ngram < SPEC_NGRAM_MIN ? e->o.spec_ngram : SPEC_NGRAM_MIN;
    int nd = dsk_lookup_draft(s->prompt, s->r.n_prompt + s->generated, e->o.spec_ngram, shortest, k, draft);
    for (int j = 0; j < nd; j++) {
        e->row_slot[n + j] = i;
        e->row_tok[n + j] = draft[j];
        e->row_want[n + j] = 1;
    }
    e->n_draft[i] = nd;
    *spare -= nd;
    return nd;
}

/* Jump-forward decoding: sequence i's forced tokens as the rows after
 * its own (row n - 1; the draft of this step), from row n on, within
 * *spare rows and what its answer and cache have room for.  Row 0 (its
 * last token) draws the first forced token, row j the one after the
 * token it was fed; the last row draws the next forced token, or samples
 * once they run out.  The tokens are set before the step, whatever rows
 * it has room for, so the answer does not depend on the batch.  Only the
 * row that samples needs its logits (and every row, for logprobs): the
 * others skip the LM head.  Returns the rows added. */
static int offer_forced(dsk_engine *e, int i, int n, int *spare)
{
    seq *s = &e->slot[i];
    e->step_forced[i] = 1;
    int left = forced_left(e, i), k = left < *spare ? left : *spare;
    int answer_room = s->r.max_tokens - s->generated - 1;
    int cache_room = e->d->max_len - e->d->len[i] - 1;
    k = answer_room < k ? answer_room : k;
    k = cache_room < k ? cache_room : k;
    k = k < 0 ? 0 : k;
    const int32_t *f = e->forced + (size_t)i * DSK_ENGINE_MAX_DRAFT + e->forced_at[i];
    int32_t *draft = e->draft + (size_t)i * DRAFT_STRIDE;
    for (int j = 0; j < k; j++) {
        draft[j] = f[j];
        e->row_slot[n + j] = i;
        e->row_tok[n + j] = f[j];
    }
    for (int j = 0; j <= k; j++)   /* row j of the sequence: n - 1 + j */
        e->row_want[n - 1 + j] = s->r.logprobs || (j == k && k == left);
    e->n_draft[i] = k;
    *spare -= k;
    return k;
}

static int is_stop(const seq *s, int32_t tok) { return tok == s->r.stop[0] || tok == s->r.stop[1]; }

/* Sequence i's tokens, from its row row_seq_last[i]: that row's, then,
 * while each token drawn is the draft token fed after it, the next row's:
 * the tokens decoding one a step would draw, since each row's logits are
 * those it would have had and each is processed as it would have been
 * (the penalties count the tokens before it, JSON mode's state has taken
 * them, the generator has made the same draws).  The first token that is
 * not the draft's is the last; so is a stop token, the token that closes
 * a JSON answer, and one JSON mode cannot take (id -1: an error).  A
 * forced token (jump-forward decoding) is taken as it is, undrawn; after
 * a drawn one that leads to forced tokens, a prompt lookup's draft is
 * left.  On an engine thread's worker, without the lock: only the engine
 * thread changes a sequence. */
static void draw_tokens(dsk_engine *e, int i)
{
    seq *s = &e->slot[i];
    int V = e->m->cfg.vocab_size, row = e->row_seq_last[i], nd = e->n_draft[i], m = 0, taken = 0, jumped = 0;
    int constrained = s->r.json || s->r.tools;
    const int32_t *draft = e->draft + (size_t)i * DRAFT_STRIDE;
    dsk_engine_token *out = e->drawn + (size_t)i * DRAFT_STRIDE;
    float *scratch = e->scratch + (size_t)i * V;
    if (constrained && e->n_forced[i] < 0)
        plan_forced(e, i);   /* the answer's first bytes */
    for (int j = 0; j <= nd; j++) {
        /* none for a forced token's row without logprobs (offer_forced) */
        int logit_row = e->d->logit_row[row + j];
        const float *logits = logit_row < 0 ? NULL : e->d->host_logits + (size_t)logit_row * V;
        dsk_engine_token *t = &out[m++];
        int32_t tok;
        if (forced_left(e, i) > 0) {
            tok = e->forced[(size_t)i * DSK_ENGINE_MAX_DRAFT + e->forced_at[i]++];
            jumped++;
        } else {
            /* The sampler rewrites what it is given: it gets a copy, and
             * the log-probabilities come from the raw logits. */
            memcpy(scratch, logits, (size_t)V * sizeof *logits);
            dsk_logits_process(scratch, V, s->bias, s->r.n_logit_bias, &s->r.penalties, &e->counts[i]);
            if (constrained && constrain(s, scratch, V) == 0) {
                *t = (dsk_engine_token){.id = -1};   /* nothing can follow: an error */
                break;
            }
            tok = dsk_sample(scratch, V, &s->r.sampler, &s->rng, e->order + (size_t)i * V);
        }
        *t = (dsk_engine_token){.id = tok};
        if (s->r.logprobs && logits)   /* two passes over the vocabulary */
            logprobs(logits, V, tok, s->r.top_logprobs, t);
        taken += !e->step_forced[i] && j < nd && tok == draft[j];
        if (is_stop(s, tok))
            break;
        if (constrained && !constrain_feed(s, tok)) {
            t->id = -1;
            break;
        }
        if (dsk_penalties_active(&s->r.penalties))
            dsk_token_counts_add(&e->counts[i], tok, 0);
        if (constrained && forced_left(e, i) == 0)
            plan_forced(e, i);
        if (j == nd || tok != draft[j] || answer_closed(s) || (!e->step_forced[i] && forced_left(e, i) > 0))
            break;
    }
    e->n_drawn[i] = m;
    e->n_accepted[i] = taken;
    e->jumped[i] = jumped;
}

/* Hands sequence i's tokens of this step to its request, in order, until
 * one ends it.  Its cache keeps the rows whose tokens were drawn: those
 * of draft tokens after the first one not drawn are dropped.  The draft
 * offered next starts at DRAFT_FIRST tokens, grows by two after a draft
 * taken whole, shrinks by one after one taken in part, and falls to one
 * after one of which nothing was taken; after m such drafts in a row,
 * the sequence goes 2^m - 1 steps without one (at most 63).  A sampled
 * answer that does not repeat itself would otherwise pay rows every step
 * for nothing: on the bench's model at temperature 0.7, drafts that
 * started at 8 tokens and never paused were 9% taken and fed a draft
 * token for every two tokens generated; these feed one for every five. */
enum { DRAFT_FIRST = 4, DRAFT_PAUSE_LOG = 6 };
static void deliver(dsk_engine *e, int i)
{
    seq *s = &e->slot[i];
    int m = e->n_drawn[i], nd = e->n_draft[i];
    e->jump_tokens += e->jumped[i];
    if (nd > 0 && !e->step_forced[i]) {
        int taken = e->n_accepted[i];
        e->spec_drafted += nd;
        e->spec_accepted += taken;
        s->draft_cap = taken == nd ? s->draft_cap + 2 : taken ? s->draft_cap - 1 : 1;
        s->draft_cap = s->draft_cap < 1 ? 1 : s->draft_cap > e->o.spec_tokens ? e->o.spec_tokens : s->draft_cap;
        s->draft_misses = taken ? 0 : s->draft_misses + 1;
        s->draft_pause = (1 << (s->draft_misses < DRAFT_PAUSE_LOG ? s->draft_misses : DRAFT_PAUSE_LOG)) - 1;
    }
    e->d->len[i] -= nd + 1 - m;
    int before = e->d->len[i] - m;   /* cached tokens before this step's first row */
    dsk_engine_token *out = e->drawn + (size_t)i * DRAFT_STRIDE;
    /* the tokens the request will be given (max_tokens or the slot's end
     * may come before the last drawn; a stop string, only on_token knows) */
    int given = m;
    given = s->r.max_tokens - s->generated < given ? s->r.max_tokens - s->generated : given;
    given = e->d->max_len - before < given ? e->d->max_len - before : given;
    given = given < 1 ? 1 : given;
    for (int t = 0; t < m; t++) {
        int32_t tok = out[t].id;
        out[t].step_index = t;
        out[t].step_tokens = given;
        if (tok < 0) {
            retire(e, i, DSK_ENGINE_ERROR,
                   s->r.tools ? "tool call: no token of the vocabulary can continue the call"
                              : "JSON mode: no token of the vocabulary can continue the answer");
            return;
        }
        if (is_stop(s, tok)) {
            out[t].end = 1;
            s->r.on_token(s->r.ctx, &out[t]);
            s->generated++;   /* counted in usage, as vLLM counts the end-of-sequence token */
            retire(e, i, DSK_ENGINE_STOP, NULL);
            return;
        }
        int stop = s->r.on_token(s->r.ctx, &out[t]);
        s->prompt[s->r.n_prompt + s->generated++] = tok;
        s->last = tok;
        s->state = SEQ_DECODE;
        if (stop || (t == m - 1 && answer_closed(s))) {
            retire(e, i, DSK_ENGINE_STOP, NULL);
            return;
        }
        if (s->generated >= s->r.max_tokens || before + t + 1 >= e->d->max_len) {
            retire(e, i, DSK_ENGINE_LENGTH, NULL);
            return;
        }
    }
}

/* The running sequences' cached tokens, for the stats (a free slot's
 * kept prompt is spare room).  Under the lock, on the engine thread,
 * before each time it lets the lock go (the only times stats can read). */
static void count_cached(dsk_engine *e)
{
    e->cached = 0;
    for (int i = 0; i < e->o.slots; i++)
        e->cached += e->slot[i].state != SEQ_FREE ? e->d->len[i] : 0;
}

static void *run(void *arg)
{
    dsk_engine *e = arg;
    int V = e->m->cfg.vocab_size, S = e->o.slots;
    /* OpenMP's thread count set in main (-j) is main's own: a thread made
     * with pthread_create starts from OMP_NUM_THREADS or all cores. */
    if (e->m->be->threads > 0)
        omp_set_num_threads(e->m->be->threads);
    pthread_mutex_lock(&e->mu);
    while (!e->quit) {
        for (int i = 0; i < S; i++)
            if (e->slot[i].state != SEQ_FREE && e->slot[i].cancelled)
                retire(e, i, DSK_ENGINE_CANCELLED, NULL);
        drop_cancelled_waiting(e);
        /* Admit waiting requests into free slots, first come first served;
         * a slot that kept the beginning of the prompt keeps it. */
        while (e->q_len) {
            seq *q = &e->queue[e->q_head];
            int own, i = free_slot_for(e, q, &own);
            if (i < 0)
                break;
            e->q_head = (e->q_head + 1) % e->o.max_queue;
            e->q_len--;
            if (q->cancelled) {
                finish(q, DSK_ENGINE_CANCELLED, NULL);
                continue;
            }
            e->slot[i] = *q;
            e->slot[i].state = SEQ_PREFILL;
            e->slot[i].draft_cap = e->o.spec_tokens < DRAFT_FIRST ? e->o.spec_tokens : DRAFT_FIRST;
            e->slot[i].draft_misses = e->slot[i].draft_pause = 0;
            e->n_forced[i] = -1;
            e->forced_at[i] = 0;
            forget_kept(e, i);
            e->d->len[i] = e->slot[i].fed = own;
            if (!q->r.prompt_logprobs)
                e->prefix_queries += q->r.n_prompt;
            e->prefix_hits += own;
            dsk_token_counts_clear(&e->counts[i]);
            const dsk_penalties *pen = &e->slot[i].r.penalties;
            if (pen->repetition > 0 && pen->repetition != 1)   /* the prompt counts for repetition alone */
                for (int j = 0; j < e->slot[i].r.n_prompt; j++)
                    dsk_token_counts_add(&e->counts[i], e->slot[i].prompt[j], 1);
        }
        /* One row per decoding sequence (and its draft's, while the step
         * has room for them), then prompt chunks in the rows left.  Drafts
         * only in a step that reads no prompt: its rows stay within
         * spec_rows, where the cpu backend's products give each row the
         * bits it has alone (and a prompt's first token comes sooner). */
        int n = 0, decoding = 0, prefilling = 0;
        for (int i = 0; i < S; i++) {
            decoding += e->slot[i].state == SEQ_DECODE;
            prefilling += e->slot[i].state == SEQ_PREFILL;
        }
        int spare = prefilling ? 0 : (e->o.spec_rows < e->o.max_rows ? e->o.spec_rows : e->o.max_rows) - decoding;
        for (int i = 0; i < S; i++) {
            e->row_seq_last[i] = -1;
            e->chunk_n[i] = 0;
            e->n_draft[i] = 0;
            e->step_forced[i] = e->jumped[i] = 0;
            if (e->slot[i].state == SEQ_DECODE) {
                e->row_slot[n] = i;
                e->row_tok[n] = e->slot[i].last;
                e->row_want[n] = 1;
                e->row_seq_last[i] = n++;
                if (forced_left(e, i) > 0)
                    n += offer_forced(e, i, n, &spare);
                else if (e->o.spec_tokens > 0 && spare > 0)
                    n += offer_draft(e, i, n, &spare);
            }
        }
        for (int i = 0; i < S && n < e->o.max_rows; i++) {
            seq *s = &e->slot[i];
            if (s->state != SEQ_PREFILL)
                continue;
            /* Prompt scores need every position's logits: such a prompt is
             * read whole, never taken from another. */
            if (s->fed == 0 && !s->r.prompt_logprobs && share_prefix(e, i))
                continue;
            e->chunk_row[i] = n;
            e->chunk_pos[i] = s->fed;
            while (s->fed < s->r.n_prompt && n < e->o.max_rows) {
                e->row_slot[n] = i;
                e->row_tok[n] = s->prompt[s->fed++];
                /* logits for scoring the next prompt token, or to draw the first answer token */
                e->row_want[n] = s->r.prompt_logprobs ? 1 : s->fed == s->r.n_prompt && s->r.max_tokens > 0;
                e->row_seq_last[i] = n++;
            }
            e->chunk_n[i] = n - e->chunk_row[i];
            if (s->fed < s->r.n_prompt || s->r.max_tokens == 0)
                e->row_seq_last[i] = -1;   /* the prompt continues next step, or is all there is: nothing to draw */
        }
        count_cached(e);
        if (n == 0) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        pthread_mutex_unlock(&e->mu);
        if (e->step_delay_us)   /* DSK_SERVE_STEP_DELAY_MS: a slow model for the tests of waiting */
            usleep(e->step_delay_us);
        dsk_err err = {0};
        int rc = dsk_batch_decoder_step(e->d, e->row_slot, e->row_tok, n, e->row_want, &err);
        /* Every sequence with a row to sample draws its token, in
         * parallel: each from its own generator, so the tokens do not
         * depend on the thread count.  No lock: only this thread changes
         * the slots (others only set `cancelled`, read below). */
        if (!rc) {
            /* Each scored prompt row rates the prompt token after it: row by
             * row in parallel, so one long prompt does not hold a step on
             * one thread. */
            int scored = 0;
            for (int i = 0; i < S; i++) {
                const seq *s = &e->slot[i];
                if (s->state == SEQ_FREE || !s->r.prompt_logprobs)
                    continue;
                for (int k = 0; k < e->chunk_n[i]; k++)
                    if (e->chunk_pos[i] + k + 1 < s->r.n_prompt)
                        e->score_row[scored++] = e->chunk_row[i] + k;
            }
#pragma omp parallel for schedule(dynamic) if (scored > 1)
            for (int j = 0; j < scored; j++) {
                int row = e->score_row[j], i = e->row_slot[row];
                const seq *s = &e->slot[i];
                int next = e->chunk_pos[i] + (row - e->chunk_row[i]) + 1;
                logprobs(e->d->host_logits + (size_t)e->d->logit_row[row] * V, V, s->prompt[next], s->r.top_logprobs,
                         &e->row_token[row]);
            }
            /* One draw (a lone stream) stays on this thread: waking the
             * others would cost more than it saves. */
            int draws = 0;
            for (int i = 0; i < S; i++)
                draws += e->slot[i].state != SEQ_FREE && e->row_seq_last[i] >= 0;
#pragma omp parallel for schedule(dynamic) if (draws > 1)
            for (int i = 0; i < S; i++)
                if (e->slot[i].state != SEQ_FREE && e->row_seq_last[i] >= 0)
                    draw_tokens(e, i);
        }
        pthread_mutex_lock(&e->mu);
        e->steps++;
        e->rows += n;
        for (int i = 0; i < S; i++) {
            seq *s = &e->slot[i];
            int row = e->row_seq_last[i];
            if (s->state == SEQ_FREE || s->cancelled)
                continue;
            if (rc) {
                if (row >= 0 || s->state == SEQ_PREFILL)
                    retire(e, i, DSK_ENGINE_ERROR, err.msg);
                continue;
            }
            if (s->r.prompt_logprobs && !s->cancelled)
                for (int k = 0; k < e->chunk_n[i]; k++) {
                    int next = e->chunk_pos[i] + k + 1;
                    if (next < s->r.n_prompt)
                        s->r.on_prompt_token(s->r.ctx, next, &e->row_token[e->chunk_row[i] + k]);
                }
            if (s->state == SEQ_PREFILL && s->fed == s->r.n_prompt && s->r.max_tokens == 0) {
                retire(e, i, DSK_ENGINE_LENGTH, NULL);   /* scored, nothing to generate */
                continue;
            }
            if (row >= 0)
                deliver(e, i);
        }
    }
    /* Stopping: whatever is left ends as cancelled. */
    for (int i = 0; i < S; i++)
        if (e->slot[i].state != SEQ_FREE)
            finish(&e->slot[i], DSK_ENGINE_CANCELLED, NULL);
    while (e->q_len) {
        finish(&e->queue[e->q_head], DSK_ENGINE_CANCELLED, NULL);
        e->q_head = (e->q_head + 1) % e->o.max_queue;
        e->q_len--;
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static void engine_free(dsk_engine *e)
{
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    dsk_batch_decoder_free(e->d);
    for (int i = 0; i < e->o.slots; i++)
        dsk_token_counts_free(&e->counts[i]);
    free(e->slot), free(e->queue), free(e->row_slot), free(e->row_tok), free(e->row_seq_last), free(e->order);
    free(e->row_want), free(e->row_token), free(e->score_row), free(e->chunk_row), free(e->counts);
    for (int i = 0; i < e->o.slots; i++)
        forget_kept(e, i);
    free(e->lend_prompt), free(e->lend_n);
    free(e->scratch), free(e->drawn), free(e->n_drawn), free(e->draft), free(e->n_draft);
    free(e->forced), free(e->n_forced), free(e);
}

dsk_engine *dsk_engine_start(dsk_model *m, const dsk_engine_opts *o, dsk_err *err)
{
    if (o->slots < 1 || o->max_rows < o->slots || o->max_queue < 1) {
        dsk_fail(err, EX_USAGE, "engine: %d slots, %d rows a step, a queue of %d (rows >= slots >= 1)", o->slots,
                 o->max_rows, o->max_queue);
        return NULL;
    }
    if (o->spec_tokens < 0 || o->spec_tokens > DSK_ENGINE_MAX_DRAFT ||
        (o->spec_tokens && (o->spec_ngram < 1 || o->spec_rows < 2))) {
        dsk_fail(err, EX_USAGE, "engine: drafts of %d tokens (0..%d) matching %d-grams (>= 1) in steps of %d rows (>= 2)",
                 o->spec_tokens, DSK_ENGINE_MAX_DRAFT, o->spec_ngram, o->spec_rows);
        return NULL;
    }
    dsk_engine *e = dsk_xcalloc(1, sizeof *e);
    e->m = m;
    e->o = *o;
    const char *delay = getenv("DSK_SERVE_STEP_DELAY_MS");
    double delay_ms = delay ? strtod(delay, NULL) : 0;
    e->step_delay_us = delay_ms > 0 && delay_ms < 60000 ? (useconds_t)(delay_ms * 1000) : 0;
    e->d = dsk_batch_decoder_new(m, o->slots, o->max_len, o->max_rows);
    e->o.max_len = e->d->max_len;
    e->slot = dsk_xcalloc((size_t)o->slots, sizeof *e->slot);
    e->queue = dsk_xcalloc((size_t)o->max_queue, sizeof *e->queue);
    e->row_slot = dsk_xmalloc((size_t)o->max_rows * sizeof *e->row_slot);
    e->row_tok = dsk_xmalloc((size_t)o->max_rows * sizeof *e->row_tok);
    e->row_seq_last = dsk_xmalloc((size_t)o->slots * sizeof *e->row_seq_last);
    e->row_want = dsk_xmalloc((size_t)o->max_rows);
    e->row_token = dsk_xcalloc((size_t)o->max_rows, sizeof *e->row_token);
    e->score_row = dsk_xmalloc((size_t)o->max_rows * sizeof *e->score_row);
    e->chunk_row = dsk_xcalloc((size_t)o->slots * 3, sizeof *e->chunk_row);
    e->chunk_n = e->chunk_row + o->slots;
    e->chunk_pos = e->chunk_n + o->slots;
    e->counts = dsk_xmalloc((size_t)o->slots * sizeof *e->counts);
    e->lend_prompt = dsk_xcalloc((size_t)o->slots, sizeof *e->lend_prompt);
    e->lend_n = dsk_xcalloc((size_t)o->slots, sizeof *e->lend_n);
    for (int i = 0; i < o->slots; i++)
        dsk_token_counts_init(&e->counts[i], m->cfg.vocab_size);
    e->order = dsk_xmalloc((size_t)o->slots * m->cfg.vocab_size * sizeof *e->order);
    e->scratch = dsk_xmalloc((size_t)o->slots * m->cfg.vocab_size * sizeof *e->scratch);
    e->drawn = dsk_xcalloc((size_t)o->slots * DRAFT_STRIDE, sizeof *e->drawn);
    e->n_drawn = dsk_xcalloc((size_t)o->slots * 2, sizeof *e->n_drawn);
    e->n_accepted = e->n_drawn + o->slots;
    e->draft = dsk_xcalloc((size_t)o->slots * DRAFT_STRIDE, sizeof *e->draft);
    e->n_draft = dsk_xcalloc((size_t)o->slots, sizeof *e->n_draft);
    e->forced = dsk_xcalloc((size_t)o->slots * DSK_ENGINE_MAX_DRAFT, sizeof *e->forced);
    e->n_forced = dsk_xcalloc((size_t)o->slots * 4, sizeof *e->n_forced);
    e->forced_at = e->n_forced + o->slots;
    e->step_forced = e->forced_at + o->slots;
    e->jumped = e->step_forced + o->slots;
    e->next_id = 1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, run, e) != 0) {
        dsk_fail(err, EX_OSERR, "engine: cannot start its thread");
        engine_free(e);
        return NULL;
    }
    return e;
}

void dsk_engine_quit(dsk_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    int running = !e->quit;
    e->quit = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (running)
        pthread_join(e->thread, NULL);
}

void dsk_engine_stop(dsk_engine *e)
{
    if (!e)
        return;
    dsk_engine_quit(e);
    engine_free(e);
}

static int request_fits(const dsk_engine *e, const dsk_engine_request *r, dsk_err *err)
{
    if (r->n_prompt < 1)
        return dsk_fail(err, EX_DATAERR, "an empty prompt");
    if (r->max_tokens < 0)
        return dsk_fail(err, EX_DATAERR, "%d tokens to generate", r->max_tokens);
    if (r->prompt_logprobs && !r->on_prompt_token)
        return dsk_fail(err, EX_SOFTWARE, "prompt log-probabilities without on_prompt_token");
    if (r->n_prompt + r->max_tokens > e->o.max_len)
        return dsk_fail(err, EX_DATAERR, "%d prompt tokens + %d to generate exceed the context of %d", r->n_prompt,
                        r->max_tokens, e->o.max_len);
    if (r->n_logit_bias < 0 || (r->n_logit_bias && !r->logit_bias))
        return dsk_fail(err, EX_SOFTWARE, "a logit bias of %d tokens", r->n_logit_bias);
    for (int i = 0; i < r->n_logit_bias; i++)
        if (r->logit_bias[i].token < 0 || r->logit_bias[i].token >= e->m->cfg.vocab_size)
            return dsk_fail(err, EX_DATAERR, "logit_bias token %d is outside the vocabulary (0..%d)",
                            r->logit_bias[i].token, e->m->cfg.vocab_size - 1);
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= e->m->cfg.vocab_size)
            return dsk_fail(err, EX_DATAERR, "prompt token %d is outside the vocabulary", r->prompt[i]);
    return 0;
}

int dsk_engine_submit_all(dsk_engine *e, const dsk_engine_request *r, int n, uint64_t *ids, dsk_err *err)
{
    if (n > e->o.max_queue)
        return dsk_fail(err, EX_DATAERR, "%d choices are more than the server queues (%d)", n, e->o.max_queue);
    for (int k = 0; k < n; k++) {
        int rc = request_fits(e, &r[k], err);
        if (rc)
            return rc;
    }
    pthread_mutex_lock(&e->mu);
    if (e->quit) {
        pthread_mutex_unlock(&e->mu);
        return dsk_fail(err, EX_UNAVAILABLE, "the server is stopping");
    }
    if (e->q_len + n > e->o.max_queue) {
        pthread_mutex_unlock(&e->mu);
        return dsk_fail(err, EX_TEMPFAIL, "the queue is full (%d waiting)", e->q_len);
    }
    for (int k = 0; k < n; k++) {
        seq *s = &e->queue[(e->q_head + e->q_len++) % e->o.max_queue];
        memset(s, 0, sizeof *s);
        s->id = e->next_id++;
        s->r = r[k];
        /* room for the answer after it: drafts are looked up in both */
        s->prompt = dsk_xmalloc(((size_t)r[k].n_prompt + (size_t)r[k].max_tokens) * sizeof *s->prompt);
        memcpy(s->prompt, r[k].prompt, (size_t)r[k].n_prompt * sizeof *s->prompt);
        s->r.prompt = NULL;
        if (r[k].n_logit_bias) {
            s->bias = dsk_xmalloc((size_t)r[k].n_logit_bias * sizeof *s->bias);
            memcpy(s->bias, r[k].logit_bias, (size_t)r[k].n_logit_bias * sizeof *s->bias);
        }
        s->r.logit_bias = NULL;
        if (s->r.top_logprobs > DSK_ENGINE_MAX_TOP)
            s->r.top_logprobs = DSK_ENGINE_MAX_TOP;
        dsk_rng_seed(&s->rng, r[k].seed);
        if (r[k].json && r[k].json_schema)
            dsk_json_prefix_init_schema(&s->json, r[k].json_schema);
        else if (r[k].json)
            dsk_json_prefix_init(&s->json, 1);
        if (r[k].json && r[k].json_compact)
            dsk_json_prefix_compact(&s->json);
        if (r[k].tools)
            dsk_call_prefix_init(&s->call, r[k].tools, r[k].tools_mode, r[k].tools_only, r[k].tools_parallel);
        ids[k] = s->id;
    }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int dsk_engine_submit(dsk_engine *e, const dsk_engine_request *r, uint64_t *id, dsk_err *err)
{
    return dsk_engine_submit_all(e, r, 1, id, err);
}

void dsk_engine_cancel(dsk_engine *e, uint64_t id)
{
    pthread_mutex_lock(&e->mu);
    for (int i = 0; i < e->o.slots; i++)
        if (e->slot[i].state != SEQ_FREE && e->slot[i].id == id)
            e->slot[i].cancelled = 1;
    for (int k = 0; k < e->q_len; k++) {
        seq *q = &e->queue[(e->q_head + k) % e->o.max_queue];
        if (q->id == id)
            q->cancelled = 1;
    }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void dsk_engine_stats_get(dsk_engine *e, dsk_engine_stats *st)
{
    pthread_mutex_lock(&e->mu);
    memset(st, 0, sizeof *st);
    for (int i = 0; i < e->o.slots; i++)
        st->running += e->slot[i].state != SEQ_FREE;
    long cached = e->cached;
    st->waiting = e->q_len;
    st->kv_usage = (double)cached / ((double)e->o.slots * e->o.max_len);
    st->steps = e->steps;
    st->rows = e->rows;
    st->prefix_queries = e->prefix_queries;
    st->prefix_hits = e->prefix_hits;
    st->spec_drafted = e->spec_drafted;
    st->spec_accepted = e->spec_accepted;
    st->jump_tokens = e->jump_tokens;
    pthread_mutex_unlock(&e->mu);
}
