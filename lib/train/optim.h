/* AdamW with decoupled weight decay (none on norms and hybrid alphas),
 * global gradient-norm clipping, and the cosine schedule with linear
 * warmup.  Moments live on the model's device beside the gradients. */
#ifndef DSK_TRAIN_OPTIM_H
#define DSK_TRAIN_OPTIM_H

#include "model/model.h"

typedef struct dsk_adamw_opts {
    double lr, min_lr;           /* peak and floor of the schedule */
    long warmup, total_steps;    /* linear warmup steps; the cosine ends at total_steps */
    double beta1, beta2, eps, weight_decay;
    double clip;                 /* global norm; 0: no clipping */
} dsk_adamw_opts;

typedef struct dsk_optimizer {
    dsk_adamw_opts o;
    dsk_model *model;
    float *m, *v;                /* device, laid out as the parameters (or a ZeRO shard of them) */
    size_t n_state;              /* floats in each of m and v */
    long step;                   /* optimizer steps taken */
    /* The factor the gradients carry (the loss scale, lib/train/loss_scale.h;
     * 1 when none): divided out before the norm is reported, clipping and
     * the update, all in the one grad_scale factor AdamW already takes. */
    double loss_scale;
} dsk_optimizer;

void dsk_adamw_defaults(dsk_adamw_opts *o);
/* Moments for every parameter. */
dsk_optimizer *dsk_optimizer_create(dsk_model *model, const dsk_adamw_opts *o);
/* Moments for n_state values: a shard (lib/dist/zero.h) updated with
 * dsk_optimizer_update. */
dsk_optimizer *dsk_optimizer_create_n(dsk_model *model, const dsk_adamw_opts *o, size_t n_state);
void dsk_optimizer_free(dsk_optimizer *opt);
/* The learning rate of optimizer step number `step` (0-based). */
double dsk_lr_at(const dsk_adamw_opts *o, long step);

typedef struct dsk_step_report {
    double grad_norm;            /* before clipping, without the loss scale */
    double lr;
    int skipped;                 /* non-finite gradient: nothing was changed */
} dsk_step_report;

/* Clips the gradients in place and updates the parameters.  A gradient
 * with a NaN or Inf leaves parameters, moments and the step count as
 * they were and reports skipped. */
dsk_step_report dsk_optimizer_step(dsk_optimizer *opt);

/* The step in parts, for a shard.  begin: from the squared global
 * gradient norm, the report, the clipping factor and the step count
 * (nothing when skipped).  update: the parameters [lo, hi) of the flat
 * vector, param and grad pointing at value lo, their moments at m/v +
 * state_at; the weight decay follows the tensors the range crosses. */
typedef struct dsk_step_plan {
    float grad_scale, lr, c1, c2;
} dsk_step_plan;
dsk_step_report dsk_optimizer_begin(dsk_optimizer *opt, double grad_sumsq, dsk_step_plan *plan);
void dsk_optimizer_update(dsk_optimizer *opt, const dsk_step_plan *plan, size_t lo, size_t hi, float *param,
                          const float *grad, size_t state_at);

#endif
