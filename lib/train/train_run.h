/* dsk-train's run: the options, and the loop that turns a dataset into
 * checkpoints (stages pretrain and continue). */
#ifndef DSK_TRAIN_TRAIN_RUN_H
#define DSK_TRAIN_TRAIN_RUN_H

#include <json-c/json.h>
#include <stdint.h>

#include "core/err.h"
#include "model/generate.h"
#include "train/optim.h"

struct dsk_comm;

enum { DSK_STAGE_PRETRAIN, DSK_STAGE_CONTINUE, DSK_STAGE_SFT, DSK_STAGE_DPO };
extern const char *const dsk_stage_names[];   /* by stage */

typedef struct dsk_train_opts {
    const char *data, *out, *config, *init, *ref, *log_path, *backend, *prompt;
    const char **sets;
    int n_sets;
    int stage, resume, quiet;
    int batch, seq_len, grad_accum, threads, doc_mask;
    long steps;                /* optimizer steps; 0: from tokens */
    uint64_t tokens;           /* run length in tokens when steps is 0 */
    double epochs;             /* or in passes over the training rows */
    double beta;               /* DPO */
    double rpo_alpha;          /* DPO: the weight of the chosen answers' NLL added (RPO), 0: none */
    dsk_adamw_opts adamw;
    uint64_t seed;
    long eval_every, save_every, sample_every, log_every;
    int eval_batches, keep, sample_tokens, max_bad_steps;
    dsk_sampler_opts sampler;
    double peak_tflops;        /* for the MFU estimate; 0: not reported */
    int zero;                  /* ZeRO stage 0-3 (lib/dist/zero.h) */
    int dtype;                 /* DSK_DTYPE_*: gemm's precision in training (ops/backend.h) */
    double loss_scale;         /* the first (fp16) or static loss scale; 0: the dtype's default */
    long loss_scale_window;    /* fp16: good steps in a row before the scale doubles */
    int recompute;             /* keep layer inputs only, recompute the rest in the backward */
    struct dsk_comm *comm;     /* the data-parallel ranks (lib/dist/comm.h); NULL: this process alone */
    char *owned, *owned_ref, *owned_init;   /* strings dsk_train_opts_from_json set (free them) */
} dsk_train_opts;

void dsk_train_defaults(dsk_train_opts *o);
/* The options a checkpoint remembers (so --resume needs no repeats),
 * as JSON, and back: set_from_json only overwrites what the object has. */
struct json_object *dsk_train_opts_to_json(const dsk_train_opts *o);
int dsk_train_opts_from_json(dsk_train_opts *o, struct json_object *j, dsk_err *err);

/* Runs training; returns 0, or an error code with err set.  Interrupted
 * by SIGINT, SIGTERM or SIGUSR1 it saves a checkpoint and returns 128 +
 * signal.  With several ranks (o->comm) every rank calls it, each gets
 * the same status, and only one rank's err holds the message (the
 * others' is empty). */
int dsk_train_run(const dsk_train_opts *o, dsk_err *err);

#endif
