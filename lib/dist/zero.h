/* Data parallelism with ZeRO sharding (Rajbhandari et al., 2020) over a
 * dsk_comm: every rank runs the same model on its share of the global
 * batch, and the stage says what each rank keeps of the model's state.
 *
 *   stage 0  everything on every rank; the gradients are all-reduced and
 *            every rank takes the same AdamW step (classic DDP)
 *   stage 1  + Adam's moments sharded: gradients all-reduced, each rank
 *            updates its shard of the parameters, then all-gather
 *   stage 2  + gradients sharded: each unit's gradient is reduce-scattered
 *            as soon as the backward pass leaves the unit, and only a
 *            shard is kept (no full gradient buffer exists)
 *   stage 3  + parameters sharded (FSDP): each unit's weights are
 *            all-gathered just before the forward or the backward pass
 *            uses them and freed after (no full parameter buffer exists)
 *
 * Shards: each unit of the parameter vector (dsk_model's units: the
 * embedding, each layer, the head) is split evenly over the ranks
 * (dsk_comm_part); a rank's shard is its parts of every unit, back to
 * back, each part padded to the unit's chunk.  Stages 2 and 3 work
 * through the model's unit hooks; stages 0 and 1 leave the model as it is.
 *
 * The gradients are summed over the ranks: the loss each rank
 * differentiates must already be divided by the global count (of
 * targets, pairs, micro-batches), so the sum is the global mean.
 * Checkpoints are consolidated: rank 0 gathers the shards and writes one
 * model.safetensors and one optimizer.safetensors, which load at any
 * world size and stage.  With one rank and stage 0 every call is exactly
 * the single-process code. */
#ifndef DSK_DIST_ZERO_H
#define DSK_DIST_ZERO_H

#include <stdint.h>

#include "dist/comm.h"
#include "dist/memory.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/optim.h"

typedef struct dsk_zero dsk_zero;

/* stage 0 to 3; the backend the model runs on. */
dsk_zero *dsk_zero_new(dsk_comm *comm, int stage, dsk_backend *be);
/* Creates the model as the stage needs it, and the shards.  The model
 * belongs to the caller (free it after dsk_zero_free). */
dsk_model *dsk_zero_model(dsk_zero *z, const dsk_model_config *cfg);
/* Weights: seeded (the same values whatever the world size), or from a
 * checkpoint's model.safetensors (every rank reads its part). */
void dsk_zero_init_weights(dsk_zero *z, uint64_t seed);
int dsk_zero_load_weights(dsk_zero *z, const char *dir, dsk_err *err);
/* The optimizer, its moments sharded from stage 1 (owned by z); and its
 * state from a checkpoint's optimizer.safetensors. */
dsk_optimizer *dsk_zero_optimizer(dsk_zero *z, const dsk_adamw_opts *o);
int dsk_zero_load_optimizer(dsk_zero *z, const char *dir, dsk_err *err);

/* Before a step's micro-batches. */
void dsk_zero_zero_grad(dsk_zero *z);
/* After them: reduces the gradients, clips by the global norm, updates
 * the parameters (each rank its shard) and gathers them.  All ranks get
 * the same report. */
dsk_step_report dsk_zero_step(dsk_zero *z);

/* Collective: rank 0 gathers and writes a consolidated checkpoint (as
 * dsk_checkpoint_save); every rank returns rank 0's status.  On the other
 * ranks a failure leaves err's message empty (rank 0 reports it). */
int dsk_zero_save(dsk_zero *z, const char *out, const dsk_train_state *st, const char *tokenizer, int keep,
                  dsk_err *err);

/* Collective: every parameter into host (n_params floats, only written
 * at rank 0), as a resident model holds them: for sampling at stage 3. */
void dsk_zero_gather_params(dsk_zero *z, float *host);

/* What this rank holds (dsk_mem_plan, the activations left 0), and the
 * most it has held of gathered weights and gradient buffers so far. */
void dsk_zero_memory(const dsk_zero *z, dsk_mem_plan *plan, size_t *peak_params_held, size_t *peak_grads_held);

/* Frees the shards and the optimizer (not the model). */
void dsk_zero_free(dsk_zero *z);

#endif
