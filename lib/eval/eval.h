/* dsk-eval's measures over a checkpoint: perplexity and bits per byte on
 * a dataset split, and generation tasks scored by exact match or regex. */
#ifndef DSK_EVAL_EVAL_H
#define DSK_EVAL_EVAL_H

#include <stdio.h>

#include "bpe/tokenizer.h"
#include "model/generate.h"
#include "model/model.h"

/* A checkpoint loaded for inference: its model, and its tokenizer. */
typedef struct dsk_loaded {
    char *dir;                /* the resolved checkpoint directory */
    dsk_backend *be;
    dsk_model *model;
    dsk_tokenizer tok;
    char fingerprint[33];
} dsk_loaded;

int dsk_load_checkpoint(dsk_loaded *l, const char *path, const char *backend, int threads, dsk_err *err);
void dsk_loaded_free(dsk_loaded *l);

typedef struct dsk_ppl_result {
    double nats, tokens, bytes;   /* summed over the evaluated targets */
    double loss, ppl, bpb;
    long rows;
} dsk_ppl_result;

/* rows 0: the whole split. */
int dsk_eval_ppl(dsk_loaded *l, const char *data, int split, int batch, long rows, dsk_ppl_result *res,
                 dsk_err *err);

typedef struct dsk_gen_opts {
    int max_tokens;
    dsk_sampler_opts sampler;   /* temperature 0: greedy */
    unsigned long long seed;
    FILE *items;                /* per-item JSON Lines, or NULL */
} dsk_gen_opts;

typedef struct dsk_gen_result {
    long items, correct;
    double accuracy;
} dsk_gen_result;

/* TASK.jsonl: {"prompt": …} or {"messages": […]}, with "answer" (exact
 * match after trimming white space) or "regex" (PCRE2, must match the
 * whole answer); the chat template builds the prompt. */
int dsk_eval_gen(dsk_loaded *l, const char *task, const dsk_gen_opts *o, dsk_gen_result *res, dsk_err *err);

#endif
