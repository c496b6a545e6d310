/* Generation: one token at a time over a KV cache, and the sampler
 * (temperature, top-k, top-p, seeded) that dsk-train --sample-every,
 * dsk-eval and dsk-serve share.
 *
 * The generator reuses the model's weights and backend but has its own
 * single-token buffers, so it can run between training steps without
 * touching the training activations.  It is lib/model/decode_batch.h's
 * decoder with one sequence slot, so one decode path serves dsk-train's
 * samples, dsk-eval and dsk-serve. */
#ifndef DSK_MODEL_GENERATE_H
#define DSK_MODEL_GENERATE_H

#include "core/rng.h"
#include "model/model.h"

typedef struct dsk_sampler_opts {
    double temperature;   /* 0: greedy */
    int top_k;            /* 0: all */
    double top_p;         /* 1: all */
    double min_p;         /* 0: all; else only tokens at least min_p times as likely as the likeliest */
} dsk_sampler_opts;

/* Prompt tokens run through the model together, DSK_PREFILL_ROWS a step. */
#define DSK_PREFILL_ROWS 64

typedef struct dsk_generator {
    dsk_model *m;
    int max_len, len;                 /* cache capacity and tokens in it */
    struct dsk_batch_decoder *d;      /* one slot: the batched decoder's code path */
    float *host_logits;               /* [vocab], the decoder's: the logits after the last token fed */
    int *order;                       /* sampler scratch [vocab] */
} dsk_generator;

dsk_generator *dsk_generator_new(dsk_model *m, int max_len);
void dsk_generator_free(dsk_generator *g);
void dsk_generator_reset(dsk_generator *g);
/* Appends one token to the sequence; g->host_logits then hold the
 * logits for the next.  EX_DATAERR when the cache is full or the token
 * is out of range. */
int dsk_generator_feed(dsk_generator *g, int32_t token, dsk_err *err);
/* Appends n tokens as chunks of DSK_PREFILL_ROWS rows, the LM head on the
 * last one only: g->host_logits then hold the logits after it, the same
 * as feeding them one by one.  EX_DATAERR when they do not fit. */
int dsk_generator_prefill(dsk_generator *g, const int32_t *tokens, int n, dsk_err *err);
/* Draws a token from logits (overwritten) with scratch[V] (lib/model/sample.c):
 * greedy at temperature 0, else from softmax(logits / temperature) cut to
 * the tokens at least min_p times as likely as the likeliest, then to the
 * top_k likeliest, then to the smallest set of the likeliest whose mass
 * reaches top_p (vLLM's order). */
int32_t dsk_sample(float *logits, int V, const dsk_sampler_opts *o, dsk_rng *rng, int *scratch);
/* Feeds prompt, then samples up to max_new tokens into out (stopping
 * after stop_token or <|endoftext|>-like stop2 when >= 0).  Returns the number generated, or -1 with
 * err set. */
int dsk_generate(dsk_generator *g, const int32_t *prompt, int n_prompt, int max_new, const dsk_sampler_opts *o,
                 dsk_rng *rng, int32_t stop_token, int32_t stop2, int32_t *out, dsk_err *err);

#endif
