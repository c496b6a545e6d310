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
    int quantized;            /* a dsk-quant checkpoint (its 4-bit layers dequantized) */
    struct dsk_q4_linear *int4;   /* per model tensor: its 4-bit form (qweight NULL when none) */
    int max_positions;        /* the model's max_seq_len (known to dsk_load_checkpoint_meta too) */
} dsk_loaded;

int dsk_load_checkpoint(dsk_loaded *l, const char *path, const char *backend, int threads, dsk_err *err);
/* Its directory, config and tokenizer alone (no backend, no weights):
 * what a command checks its inputs against before the long work.
 * dsk_loaded_free frees it. */
int dsk_load_checkpoint_meta(dsk_loaded *l, const char *path, dsk_model_config *cfg, dsk_err *err);
void dsk_loaded_free(dsk_loaded *l);
/* The model's weights will not change from now on (dsk-serve, dsk-eval's
 * decoding commands; not dsk-quant, which rewrites them): the backend may
 * keep the matrices that products read laid out for decoding's products
 * as well (backend.h's freeze_weights; cpu: all of them when they total
 * at most 1 GiB, else none). */
void dsk_loaded_freeze(dsk_loaded *l);

typedef struct dsk_ppl_result {
    double nats, tokens, bytes;   /* summed over the evaluated targets */
    double loss, ppl, bpb;
    long rows;
    int windows;                  /* model-length windows a row is scored in (1: whole rows) */
    double *row_loss;             /* per row: mean nats per target (0 when it has none) */
} dsk_ppl_result;

/* Before the work: data can be scored by the checkpoint of l (from
 * dsk_load_checkpoint_meta, vocab its config's): made with its tokenizer,
 * not of preference pairs. */
int dsk_eval_ppl_check(const dsk_loaded *l, int vocab, const char *data, dsk_err *err);
/* rows 0: the whole split. */
int dsk_eval_ppl(dsk_loaded *l, const char *data, int split, int batch, long rows, dsk_ppl_result *res,
                 dsk_err *err);
void dsk_ppl_result_free(dsk_ppl_result *r);

typedef struct dsk_gen_opts {
    int max_tokens;
    dsk_sampler_opts sampler;   /* temperature 0: greedy */
    unsigned long long seed;    /* item i's answer draws from a generator seeded with seed + i */
    FILE *items;                /* per-item JSON Lines, or NULL */
    int batch;                  /* answers decoded together (0: 8) */
    int speculate;              /* draft tokens by prompt lookup a step (0: none) */
} dsk_gen_opts;

typedef struct dsk_gen_result {
    long items, correct;
    double accuracy;
    double *item_correct;       /* per item, 0 or 1 */
} dsk_gen_result;

/* TASK.jsonl: {"prompt": …} or {"messages": […]}, with "answer" (exact
 * match after trimming white space) or "regex" (PCRE2, must match the
 * whole answer); the chat template builds the prompt. */
int dsk_eval_gen(dsk_loaded *l, const char *task, const dsk_gen_opts *o, dsk_gen_result *res, dsk_err *err);
/* Every item of a gen task read as dsk_eval_gen reads it, without a
 * model (l from dsk_load_checkpoint_meta will do). */
int dsk_eval_gen_check(dsk_loaded *l, const char *task, int max_tokens, dsk_err *err);
void dsk_gen_result_free(dsk_gen_result *r);

typedef struct dsk_mc_opts {
    int batch;                  /* rows (item choices) per forward pass */
    FILE *items;                /* per-item JSON Lines, or NULL */
} dsk_mc_opts;

typedef struct dsk_mc_result {
    long items;
    double acc, acc_norm;
    double *item_acc, *item_acc_norm;   /* per item, 0 or 1 */
} dsk_mc_result;

/* TASK.jsonl: {"context": …, "choices": […], "gold": N}.  Scored as
 * lm-evaluation-harness scores loglikelihood tasks: the context's
 * trailing white space moves to the continuation, a choice's tokens are
 * those of context+choice after the context's, rows longer than the
 * model lose tokens on the left; acc uses the summed log-likelihood,
 * acc_norm the log-likelihood per character of the choice. */
int dsk_eval_mc(dsk_loaded *l, const char *task, const dsk_mc_opts *o, dsk_mc_result *res, dsk_err *err);
/* Every item of an mc task read as dsk_eval_mc reads it, without a model
 * (l from dsk_load_checkpoint_meta will do): ab's check before its work. */
int dsk_eval_mc_check(dsk_loaded *l, const char *task, dsk_err *err);
void dsk_mc_result_free(dsk_mc_result *r);

/* ---- a task of any kind, scored per item (dsk-eval ab) ---- */

enum { DSK_TASK_PPL, DSK_TASK_MC, DSK_TASK_GEN };

typedef struct dsk_task_scores {
    int kind;
    int n_metrics;                /* 1, or 2 for mc (acc, acc_norm) */
    const char *metric[2];        /* "loss", "acc", "acc_norm", "exact_match" */
    int higher_better[2];
    double value[2];              /* the task's figure (ppl: token-weighted loss) */
    double *item[2];              /* per item (ppl: per row) */
    long n;
} dsk_task_scores;

/* The kind of TASK: a directory is a dataset (perplexity over split, its
 * first `rows` rows when rows > 0); a JSON Lines file is mc when its first
 * item has "choices", else gen. */
int dsk_task_kind(const char *task, int *kind, dsk_err *err);
int dsk_eval_task(dsk_loaded *l, const char *task, int split, int batch, long rows, const dsk_gen_opts *g,
                  dsk_task_scores *s, dsk_err *err);
void dsk_task_scores_free(dsk_task_scores *s);

#endif
