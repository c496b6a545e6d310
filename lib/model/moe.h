/* The DeepSeekMoE feed-forward layer: a router picks top_k of
 * n_routed_experts fine-grained SwiGLU experts per token, shared experts
 * see every token, and tokens over an expert's capacity skip it (their
 * residual path and the shared experts remain).
 *
 * Dispatch is explicit: the kept (token, expert) pairs are laid out
 * expert by expert, each expert runs as one matrix product over its
 * block, and the outputs are combined back per token with the gate
 * weights (the layout a grouped GEMM on the GPU reuses).  Balancing: the
 * Switch/GShard auxiliary loss, a sequence-wise auxiliary loss, or
 * DeepSeek-V3's bias on the selection scores (updated outside the
 * gradient, see dsk_moe_update_bias), and an optional router z-loss. */
#ifndef DSK_MODEL_MOE_H
#define DSK_MODEL_MOE_H

#include <stdint.h>

#include "core/rng.h"
#include "model/config.h"
#include "ops/backend.h"

/* One MoE layer's weights (or their gradients): experts' matrices are
 * contiguous, expert e's gate_proj at e_gate + e * d_ff_expert * d_model. */
typedef struct dsk_moe_w {
    float *router, *bias;                 /* [E, d], [E] (balance bias only) */
    float *e_gate, *e_up, *e_down;        /* [E, Fe, d], [E, Fe, d], [E, d, Fe] */
    float *s_gate, *s_up, *s_down;        /* shared: [Fs, d], [Fs, d], [d, Fs]; NULL without */
} dsk_moe_w;

/* What one MoE layer keeps between its forward and backward passes. */
typedef struct dsk_moe_bufs {
    int n;                                /* tokens these are sized for */
    float *logits, *noisy, *probs, *gate, *aux_w;
    int32_t *sel, *slot_row, *row_token;
    float *xp, *gp, *up, *ap, *yp;        /* expert-major rows */
    float *sg, *su, *sa;                  /* shared experts' activations */
    int *offsets;                         /* host [E+1] */
    int kept;
} dsk_moe_bufs;

/* Running statistics of one layer since the last dsk_moe_stats_reset. */
typedef struct dsk_moe_stats {
    long *selected;                       /* per expert, before dropping */
    long assignments, dropped, tokens, forwards;
    double aux_loss, z_loss, entropy;     /* sums over forwards (entropy: over tokens) */
} dsk_moe_stats;

void dsk_moe_bufs_alloc(dsk_moe_bufs *b, dsk_backend *be, const dsk_model_config *c, int n);
void dsk_moe_bufs_free(dsk_moe_bufs *b, dsk_backend *be);
void dsk_moe_stats_init(dsk_moe_stats *s, const dsk_model_config *c);
void dsk_moe_stats_reset(dsk_moe_stats *s, const dsk_model_config *c);
void dsk_moe_stats_free(dsk_moe_stats *s);

/* The training-time knobs of a forward pass. */
typedef struct dsk_moe_run {
    int train;                 /* noise and capacity apply */
    int rows_per;              /* tokens per sequence (the sequence-wise loss) */
    float aux_grad_scale;      /* multiplies the balancing losses' gradients */
    dsk_rng *rng;              /* router noise; NULL: none */
} dsk_moe_run;

/* out += MoE(h) for n tokens (h: the normalised input).  Returns the
 * balancing losses' value (aux + sequence aux + z-loss) for this pass. */
double dsk_moe_forward(dsk_backend *be, const dsk_model_config *c, const dsk_moe_w *w, dsk_moe_bufs *b,
                       dsk_moe_stats *stats, const float *h, float *out, int n, const dsk_moe_run *run);

/* Gradient scratch shared by the layers: sized by dsk_moe_grads_alloc. */
typedef struct dsk_moe_grads {
    float *dyp, *dap, *dgp, *dup, *dxp, *dgate, *dlogits, *dsa, *dsg, *dsu;
} dsk_moe_grads;
void dsk_moe_grads_alloc(dsk_moe_grads *g, dsk_backend *be, const dsk_model_config *c, int n);
void dsk_moe_grads_free(dsk_moe_grads *g, dsk_backend *be);

/* dh = d/dh of the layer given dout (overwritten: dh is set, not added);
 * weight gradients add into gw. */
void dsk_moe_backward(dsk_backend *be, const dsk_model_config *c, const dsk_moe_w *w, dsk_moe_w *gw,
                      dsk_moe_bufs *b, dsk_moe_grads *g, const float *h, const float *dout, float *dh, int n,
                      const dsk_moe_run *run);

/* DeepSeek-V3's auxiliary-loss-free balancing: bias[e] += rate *
 * sign(mean load - load[e]) over the selections since the last reset. */
void dsk_moe_update_bias(dsk_backend *be, const dsk_model_config *c, float *bias, const dsk_moe_stats *s);

#endif
