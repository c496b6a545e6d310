/* Checkpoint directories (dsk-checkpoint(5)).
 *
 *   OUT/step-00001000/  config.json  model.safetensors  optimizer.safetensors
 *                       state.json  tokenizer.json
 *   OUT/latest -> step-00001000
 *
 * Each step directory is written as a dsk_tempdir (fsynced, renamed into
 * place) and `latest` is re-pointed by renaming a new symlink over it, so
 * a crash leaves the previous checkpoint intact and never a partial one. */
#ifndef DSK_TRAIN_CHECKPOINT_H
#define DSK_TRAIN_CHECKPOINT_H

#include <json-c/json.h>
#include <stdint.h>

#include "core/rng.h"
#include "model/model.h"
#include "pack/dataset.h"
#include "train/optim.h"

/* Everything besides tensors that a resumed run needs to continue exactly. */
typedef struct dsk_train_state {
    long step;                     /* optimizer steps done */
    uint64_t tokens;               /* training tokens consumed */
    dsk_data_cursor cursor;        /* the next training row: its position in the epoch's order over all ranks */
    int world;                     /* data-parallel ranks of the run that saved it (0 or 1: one) */
    dsk_rng rng;
    uint64_t seed;
    long skipped;                  /* non-finite steps skipped so far */
    long bad_in_row;               /* of them, the last ones in a row (--max-bad-steps counts them) */
    double loss_scale;             /* the loss scale now (lib/train/loss_scale.h); 0 read as 1 */
    long loss_scale_good;          /* fp16: good steps in a row toward the next doubling */
    char stage[16];
    char fingerprint[33];          /* tokenizer fingerprint, "" if unknown */
    struct json_object *options;   /* the training options (owned; may be NULL) */
    struct json_object *lineage;   /* the stages that led here (owned array; may be NULL) */
} dsk_train_state;

void dsk_train_state_free(dsk_train_state *st);

/* Writes OUT/step-NNNNNNNN (opt may be NULL: weights only), points
 * OUT/latest at it and removes all but the newest `keep` step
 * directories (keep <= 0 keeps all).  tokenizer: a tokenizer.json to
 * copy, or NULL. */
int dsk_checkpoint_save(const char *out, const dsk_model *m, const dsk_optimizer *opt, const dsk_train_state *st,
                        const char *tokenizer, int keep, dsk_err *err);
/* The same from host copies of the parameters and (opt not NULL: its
 * step and schedule) of Adam's moments, all laid out as the parameters:
 * what a data-parallel run's rank 0 writes after gathering the shards. */
int dsk_checkpoint_save_host(const char *out, const dsk_model *m, const float *params, const dsk_optimizer *opt,
                             const float *opt_m, const float *opt_v, const dsk_train_state *st, const char *tokenizer,
                             int keep, dsk_err *err);
/* The checkpoint directory a path names: itself when it holds a
 * config.json, else the step directory its `latest` link points at
 * (PATH/step-N; PATH/latest when latest is a directory).  Returns a
 * string to free, or NULL. */
char *dsk_checkpoint_resolve(const char *path, dsk_err *err);
/* Loads the weights; every tensor's name and shape must match m's. */
int dsk_checkpoint_load_weights(const char *dir, dsk_model *m, dsk_err *err);
int dsk_checkpoint_load_optimizer(const char *dir, dsk_optimizer *opt, dsk_err *err);
/* Checks every tensor NAME+suffix of dir/file against m's table (the file
 * holding file_tensors in all), then hands each to put(ctx, its offset in
 * the parameter vector, its n floats, maybe unaligned): how a shard loads
 * its part. */
typedef void (*dsk_tensor_sink)(void *ctx, size_t offset, const void *values, size_t n);
int dsk_checkpoint_read_tensors(const char *dir, const char *file, const dsk_model *m, const char *suffix,
                                size_t file_tensors, dsk_tensor_sink put, void *ctx, dsk_err *err);
/* optimizer.safetensors' step. */
int dsk_checkpoint_optimizer_step(const char *dir, long *step, dsk_err *err);
int dsk_checkpoint_load_state(const char *dir, dsk_train_state *st, dsk_err *err);
/* state.json's text; path names it in messages. */
int dsk_train_state_parse(dsk_train_state *st, const char *text, size_t len, const char *path, dsk_err *err);

#endif
