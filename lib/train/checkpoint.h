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
    dsk_data_cursor cursor;        /* the train loader's next row */
    dsk_rng rng;
    uint64_t seed;
    long skipped;                  /* non-finite steps skipped so far */
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
/* The checkpoint directory a path names: itself when it holds a
 * config.json, else its `latest`.  Returns a string to free, or NULL. */
char *dsk_checkpoint_resolve(const char *path, dsk_err *err);
/* Loads the weights; every tensor's name and shape must match m's. */
int dsk_checkpoint_load_weights(const char *dir, dsk_model *m, dsk_err *err);
int dsk_checkpoint_load_optimizer(const char *dir, dsk_optimizer *opt, dsk_err *err);
int dsk_checkpoint_load_state(const char *dir, dsk_train_state *st, dsk_err *err);
/* state.json's text; path names it in messages. */
int dsk_train_state_parse(dsk_train_state *st, const char *text, size_t len, const char *path, dsk_err *err);

#endif
