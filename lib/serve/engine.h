/* The continuous-batching engine under dsk-serve: requests wait in a
 * bounded queue, are admitted into free sequence slots between steps, and
 * every step runs all active sequences as one batched forward pass
 * (lib/model/decode_batch.h): one row for each sequence that is decoding,
 * plus prompt rows of sequences still prefilling, up to a row budget, so a
 * long prompt is prefilled in chunks and never stalls the others.
 *
 * One engine thread owns the model.  Callbacks run on it and must be
 * quick (copy the token out, signal a waiter).  Submitting and cancelling
 * are safe from any thread. */
#ifndef DSK_SERVE_ENGINE_H
#define DSK_SERVE_ENGINE_H

#include <stdint.h>

#include "model/generate.h"
#include "model/logit_process.h"
#include "serve/json_mode.h"

enum { DSK_ENGINE_STOP, DSK_ENGINE_LENGTH, DSK_ENGINE_CANCELLED, DSK_ENGINE_ERROR };
enum { DSK_ENGINE_MAX_TOP = 20, DSK_ENGINE_MAX_DRAFT = 64 };
/* dsk-serve's and dsk-eval's spec_rows: on the cpu backend a step of 8
 * rows costs about 2.5 times a step of one on a small model (the int4
 * products turn compute-bound), and up to 8 rows every product gives a
 * row the bits it has alone (AVX2 and up).  So a lone sequence takes at
 * most 7 draft tokens a step: the tools' --speculate limit. */
enum { DSK_SPEC_STEP_ROWS = 8, DSK_SPEC_MAX = DSK_SPEC_STEP_ROWS - 1, DSK_SPEC_NGRAM = 3 /* the tools' default */ };

typedef struct dsk_engine_token {
    int32_t id;
    int end;                            /* 1: a stop token, which ended the answer (no text, the last) */
    /* This token is step_index of step_tokens its sequence was given in
     * one step (more than one when draft tokens were taken). */
    int step_index, step_tokens;
    float logprob;                      /* log-softmax of the raw logits */
    int n_top;
    int32_t top_id[DSK_ENGINE_MAX_TOP];
    float top_logprob[DSK_ENGINE_MAX_TOP];
} dsk_engine_token;

typedef struct dsk_engine_request {
    const int32_t *prompt;              /* copied at submit */
    int n_prompt;
    int max_tokens;                     /* 0: read (and score) the prompt only */
    dsk_sampler_opts sampler;
    const dsk_logit_bias *logit_bias;   /* copied at submit; applied before the penalties */
    int n_logit_bias;
    dsk_penalties penalties;
    uint64_t seed;
    int32_t stop[2];                    /* tokens that end the answer (not reported), -1: none */
    /* JSON mode: non-NULL, each token is drawn among those that keep the
     * answer the beginning of a JSON object (or of a value valid against
     * json_schema, which must outlive the request), and the answer ends
     * (STOP) with the token that closes it.  Stop tokens cannot end it
     * before; they end a whole text that could go on (a number). */
    const dsk_json_vocab *json;
    const struct dsk_json_schema *json_schema;
    int json_compact;                   /* JSON mode: no whitespace outside strings */
    /* Tool calls (not with JSON mode): non-NULL, each token is drawn among
     * those that keep the answer's calls well formed and held to the
     * tools (text/call_prefix.h: tools_mode DSK_CALLS_AUTO or _REQUIRED,
     * tools_only the one tool that may be called or -1, tools_parallel
     * whether calls may follow calls), which must outlive the request.
     * Stop tokens end the answer only in text or after a call; the answer
     * ends (STOP) with the last call allowed. */
    const dsk_json_vocab *call_vocab;
    const dsk_call_tools *tools;
    int tools_mode, tools_only, tools_parallel;
    int logprobs;                       /* 1: fill dsk_engine_token's logprob (else 0) */
    int top_logprobs;                   /* 0..DSK_ENGINE_MAX_TOP alternatives per token (with logprobs) */
    /* 1: on_prompt_token for prompt tokens 1..n_prompt-1 as the prompt
     * is read, each with its log-probability after the tokens before it
     * (and top_logprobs alternatives): what scoring a text needs. */
    int prompt_logprobs;
    void (*on_prompt_token)(void *ctx, int pos, const dsk_engine_token *t);
    /* on_token for each generated token, a stop token that ended the
     * answer too (with end set; its return is ignored); returning nonzero
     * ends the sequence as stopped (a stop string matched); then on_done
     * exactly once.  Both run under the engine's lock: they must not call
     * the engine. */
    int (*on_token)(void *ctx, const dsk_engine_token *t);
    /* completion_tokens counts a stop token that ended the answer; error
     * says what failed when finish is DSK_ENGINE_ERROR (the failed step's
     * message, valid during the call), else it is NULL. */
    void (*on_done)(void *ctx, int finish, int prompt_tokens, int completion_tokens, const char *error);
    void *ctx;
} dsk_engine_request;

typedef struct dsk_engine_opts {
    int slots;                          /* sequences decoded together (the batch) */
    int max_len;                        /* tokens per sequence (0: the model's context) */
    int max_rows;                       /* rows per step: decode rows + prefill chunk */
    int max_queue;                      /* waiting requests before submit refuses */
    /* Speculative decoding by prompt lookup (serve/lookup_draft.h): a
     * decoding sequence whose last spec_ngram..2 tokens (1 when
     * spec_ngram is 1) occurred before in its prompt or answer is given
     * up to spec_tokens draft tokens, fed after its own as rows of the
     * same step; its tokens are drawn row by row, as they would be one a
     * step, while each matches the draft, and the keys and values of the
     * rows after the first mismatch are dropped.  The draws are those of
     * decoding without drafts; the answer is the same token for token
     * where each row's logits are the bits it would have alone (the cpu
     * backend's products in steps of at most 8 rows on x86 with AVX2).
     * Drafts go only into steps that read no prompt, within spec_rows
     * rows in all (>= 2).  spec_tokens 0: off. */
    int spec_tokens, spec_ngram, spec_rows;
    /* Jump-forward decoding (JSON mode and tool calls): where the answer
     * can go on with one byte only, and the bytes after it until the
     * model has a choice, those bytes are encoded by the tokenizer and
     * taken without a draw (serve/json_mode.h), fed as rows of the same
     * step as drafts are (within spec_rows in a step that reads no
     * prompt; else one a step).  Their log-probabilities are reported as
     * for any token.  The answer's bytes are the ones drawing would allow,
     * but its tokens are the tokenizer's where it had no choice, and the
     * draws after them see those. */
    int jump_forward;
} dsk_engine_opts;

typedef struct dsk_engine_stats {
    int running, waiting;
    double kv_usage;                    /* cached tokens / capacity */
    long steps, rows;
    /* Prefix sharing, in prompt tokens: those of requests that may take a
     * prefix from another sequence (all but prompt_logprobs ones), and
     * those taken (their keys and values copied, not computed). */
    long prefix_queries, prefix_hits;
    /* Speculative decoding: draft tokens fed, and those the model drew too. */
    long spec_drafted, spec_accepted;
    /* Jump-forward decoding: forced tokens taken without a draw. */
    long jump_tokens;
} dsk_engine_stats;

typedef struct dsk_engine dsk_engine;

dsk_engine *dsk_engine_start(dsk_model *m, const dsk_engine_opts *o, dsk_err *err);
/* Cancels what is left (on_done CANCELLED) and stops the thread; the
 * engine stays valid (submits are refused, cancels and stats are no-ops)
 * for callers that may still hold it.  Once is enough; stop frees. */
void dsk_engine_quit(dsk_engine *e);
/* Quits if not yet, and frees. */
void dsk_engine_stop(dsk_engine *e);
/* 0 and *id, or EX_TEMPFAIL when the queue is full, EX_DATAERR when the
 * prompt cannot fit (empty, or prompt + max_tokens beyond a slot),
 * EX_UNAVAILABLE after dsk_engine_quit. */
int dsk_engine_submit(dsk_engine *e, const dsk_engine_request *r, uint64_t *id, dsk_err *err);
/* n requests queued together or none (a request's n choices): EX_TEMPFAIL
 * when the queue has no room for all n now, EX_DATAERR when it never
 * will (n above max_queue) or a request cannot fit, EX_UNAVAILABLE after
 * dsk_engine_quit. */
int dsk_engine_submit_all(dsk_engine *e, const dsk_engine_request *r, int n, uint64_t *ids, dsk_err *err);
/* The request ends with on_done CANCELLED at the next step (no more
 * tokens after this returns), and its slot is freed. */
void dsk_engine_cancel(dsk_engine *e, uint64_t id);
void dsk_engine_stats_get(dsk_engine *e, dsk_engine_stats *s);

#endif
