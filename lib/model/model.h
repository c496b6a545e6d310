/* The dense decoder: parameters, activations, forward and backward.
 *
 * One flat parameter buffer and one gradient buffer of the same layout
 * live in device memory; dsk_weights points into either.  The tensor
 * table names every slice with its Hugging Face Llama name, which is what
 * model.safetensors stores.  Activations for one (B, T) batch are
 * allocated once by dsk_model_alloc_batch(); a step allocates nothing.
 *
 * A training step is: dsk_model_set_batch(), dsk_model_forward() with a
 * non-zero grad_scale (the softmax-cross-entropy writes dlogits in place,
 * and the head's backward runs at once, chunk by chunk), then
 * dsk_model_backward() (adds into the gradient buffer). */
#ifndef DSK_MODEL_MODEL_H
#define DSK_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/moe.h"
#include "ops/backend.h"

typedef struct dsk_tensor_info {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t offset, numel;     /* in floats, within the parameter buffer */
    int decay;                /* weight decay applies (matrices only) */
} dsk_tensor_info;

typedef struct dsk_layer_w {
    float *attn_norm, *wq, *wk, *wv, *wo, *alpha;   /* alpha: hybrid layers only */
    float *ffn_norm, *w_gate, *w_up, *w_down;       /* dense layers */
    dsk_moe_w moe;                                  /* MoE layers */
} dsk_layer_w;

typedef struct dsk_weights {
    float *embed, *final_norm, *lm_head;   /* lm_head == embed when tied */
    dsk_layer_w *layer;
} dsk_weights;

/* What one layer's forward pass keeps for its backward pass. */
typedef struct dsk_layer_acts {
    float *resid_in, *h1, *rstd1, *q, *k, *v, *att;
    float *lse_g, *lse_l, *att_g, *att_l;           /* attention's saved state (backend.h) */
    float *resid_mid, *h2, *rstd2, *g, *u, *act;    /* g, u, act: dense layers */
    dsk_moe_bufs moe;                               /* MoE layers */
} dsk_layer_acts;

/* A batch on the host: B rows of T positions. */
typedef struct dsk_batch {
    int B, T;
    const int32_t *tokens;    /* [B*T] inputs */
    const int32_t *targets;   /* [B*T] next tokens, -1 = no loss */
    const int32_t *pos;       /* [B*T] position in its document (RoPE and the document mask) */
    const float *weights;     /* [B*T] loss weights (0 or 1), or NULL for all 1 */
} dsk_batch;

/* Units: the spans of the parameter vector a sharded run (ZeRO-2 and 3,
 * lib/dist/zero.h) brings in and out whole.  Unit 0 is the embedding,
 * unit 1 + l layer l, unit n_layers + 1 the head (the final norm and an
 * untied lm_head; a tied lm_head is the embedding, unit 0). */
enum { DSK_UNIT_PARAMS = 1, DSK_UNIT_GRADS = 2, DSK_UNIT_WRITEBACK = 4 };

/* Where parameters or gradients are not resident, the forward and
 * backward passes ask for each unit before they read or write it and say
 * when they are done: acquire(unit, DSK_UNIT_PARAMS) must make the unit's
 * weights addressable (dsk_model_bind_unit), DSK_UNIT_GRADS its gradient
 * (zeroed: the pass adds into it).  release() with DSK_UNIT_GRADS hands
 * the unit's gradient over (ZeRO reduce-scatters it); with
 * DSK_UNIT_WRITEBACK the weights were changed and must be kept. */
struct dsk_model;
typedef struct dsk_unit_hooks {
    void *ctx;
    void (*acquire)(void *ctx, struct dsk_model *m, int unit, int what);
    void (*release)(void *ctx, struct dsk_model *m, int unit, int what);
} dsk_unit_hooks;

typedef struct dsk_model {
    dsk_model_config cfg;
    dsk_backend *be;
    dsk_tensor_info *tensors;
    size_t n_tensors, n_params;
    float *params, *grads;    /* device; NULL when hooked (dsk_model_create_hooked) */
    dsk_weights w, gw;
    int n_units;
    size_t *unit_lo;          /* [n_units + 1]: unit u is [unit_lo[u], unit_lo[u+1]) */
    dsk_weights off;          /* each weight's offset + 1 (for binding units) */
    dsk_unit_hooks hooks;     /* all NULL: resident, nothing to bring in */
    float *rope_cs;           /* device [max_seq_len, hd/2, 2] */

    int B, T;                 /* the current batch (dsk_model_set_batch) */
    int cap_B, cap_T;         /* what the activations are sized for: B <= cap_B, T <= cap_T */
    int32_t *tokens, *targets, *pos;
    float *weights, *grad_weights;   /* the batch's loss mask; dsk_model_loss_grad's weights */
    dsk_layer_acts *acts;
    /* Activation recomputation (--recompute): set before
     * dsk_model_alloc_batch.  Each layer keeps only its input (resid_in);
     * the other fields of every acts[l] point into one shared set that
     * the forward overwrites layer by layer and the backward refills by
     * running the layer's forward again. */
    int recompute;
    dsk_layer_acts shared;
    dsk_rng *rng_at;          /* recompute, MoE: the router noise's state before each layer */
    int shared_holds;         /* recompute: the layer whose activations the shared set holds, or -1 */
    float *resid_out, *hf, *rstdf, *losses;
    /* The LM head runs logit_rows rows at a time (dsk_model_logit_rows
     * of head_rows, which is set before dsk_model_alloc_batch: 0
     * automatic, else rows per chunk): logits holds one chunk, after a
     * forward the last.  Tools that read a whole batch's logits set
     * head_rows to INT_MAX. */
    int head_rows, logit_rows;
    float *logits;
    int logits_whole;         /* logits hold the last forward's, all rows (no gradient pass since) */
    int whole_rows;           /* the batch's rows are one document each (dsk_attn_shape's whole_rows) */
    float *d_resid, *d_h, *d_q, *d_k, *d_v, *d_att, *d_g, *d_u, *d_act;
    float *host_losses;       /* host [B*T] */
    double loss_sum, n_targets;   /* of the last forward pass */

    /* Mixture of experts: gradient scratch, per-layer statistics (NULL
     * for dense layers), how the next forward runs, and the balancing
     * losses of the last forward (added to the gradient, not to loss_sum). */
    dsk_moe_grads moe_grads;
    dsk_moe_stats *moe_stats;
    dsk_moe_run moe_run;
    double aux_loss;
} dsk_model;

dsk_model *dsk_model_create(const dsk_model_config *cfg, dsk_backend *be);
/* A model whose parameters and/or gradients (hooked: DSK_UNIT_PARAMS,
 * DSK_UNIT_GRADS) are not allocated: the hooks bring each unit in. */
dsk_model *dsk_model_create_hooked(const dsk_model_config *cfg, dsk_backend *be, int hooked,
                                   const dsk_unit_hooks *hooks);
void dsk_model_free(dsk_model *m);
/* Seeded initialisation: matrices N(0, init_std) (output projections
 * scaled by 1/sqrt(2 layers)), norms 1, hybrid alpha alpha_init. */
void dsk_model_init_weights(dsk_model *m, uint64_t seed);
/* The same values, tensor by tensor, to put(ctx, offset in the parameter
 * vector, values, count) on the host: for a shard of them. */
void dsk_model_init_values(const dsk_model *m, uint64_t seed,
                           void (*put)(void *ctx, size_t offset, const float *v, size_t n), void *ctx);

/* Points the weights (what DSK_UNIT_PARAMS) or gradients (DSK_UNIT_GRADS)
 * of a unit at base, which holds the unit's values from its first; base
 * NULL leaves them pointing nowhere. */
void dsk_model_bind_unit(dsk_model *m, int unit, int what, float *base);
/* The hooks' acquire and release (nothing for a resident model): code
 * outside the passes that reads or changes a unit's weights brackets it
 * with these. */
void dsk_model_acquire(dsk_model *m, int unit, int what);
void dsk_model_release(dsk_model *m, int unit, int what);
static inline int dsk_model_layer_unit(int layer) { return 1 + layer; }
const dsk_tensor_info *dsk_model_find_tensor(const dsk_model *m, const char *name);

void dsk_model_alloc_batch(dsk_model *m, int B, int T);
/* Rows per LM-head chunk for head_rows (0: automatic, the whole batch
 * while its logits take at most budget bytes (0: DSK_LOGITS_BUDGET),
 * else chunks of about one size, a multiple of 128 rows, that fit) and a
 * batch of n positions. */
int dsk_model_logit_rows(int head_rows, int n, int V, size_t budget);
/* Copies a batch (B, T at most the allocated ones) to the device. */
int dsk_model_set_batch(dsk_model *m, const dsk_batch *b, dsk_err *err);
/* Forward over the current batch; sets loss_sum and n_targets.  With
 * grad_scale != 0 the gradient of grad_scale * loss goes back through
 * the LM head and the final norm too (the head's gradients are added),
 * ready for dsk_model_backward(). */
void dsk_model_forward(dsk_model *m, float grad_scale);
/* The forward pass in parts (dsk-quant's calibration runs one block at
 * a time over inputs it keeps): the embedding into acts[0].resid_in, and
 * block l from acts[l].resid_in into the next block's input (resid_out
 * after the last). */
void dsk_model_embed(dsk_model *m);
void dsk_model_forward_block(dsk_model *m, int l);
/* Per batch row, the sum of the last forward's weighted per-token losses
 * (minus the row's log-probability of its targets): out[B]. */
void dsk_model_row_losses(const dsk_model *m, double *out);
/* After dsk_model_forward(m, 0): the gradient of sum_i weights[i] *
 * loss_i (weights: host [B*T], any sign) back through the head (the
 * logits computed again), ready for dsk_model_backward().  DPO weights
 * each row by its own coefficient. */
void dsk_model_loss_grad(dsk_model *m, const float *weights);
/* Adds this batch's gradients into m->grads (hooked: into each unit's). */
void dsk_model_backward(dsk_model *m);
/* Zeroes m->grads (nothing when the gradients are hooked). */
void dsk_model_zero_grad(dsk_model *m);

#endif
