/* The ZeRO engine's state, shared by zero.c (layout, hooks, step) and
 * zero_ckpt.c (consolidated checkpoints); not for other files. */
#ifndef DSK_DIST_ZERO_INTERNAL_H
#define DSK_DIST_ZERO_INTERNAL_H

#include "dist/zero.h"

struct dsk_zero {
    dsk_comm *comm;
    dsk_backend *be;
    int stage, rank, world;
    dsk_model *model;
    dsk_optimizer *opt;
    size_t *at;                  /* per unit: where this rank's part lies in the shard arrays */
    size_t n_shard;              /* floats in a shard array: the units' chunks */
    float *p_shard;              /* stage 3: this rank's parameters */
    float *g_shard;              /* stages 2 and 3: its gradients */
    float *scratch;              /* stages 2 and 3: a reduce-scatter's part (the largest chunk) */
    float **held_p, **held_g;    /* per unit, while acquired: the gathered weights, the gradient buffer */
    size_t held_p_bytes, peak_p_bytes, held_g_bytes, peak_g_bytes;
};

/* Unit u's length, and this rank's part [*lo, *hi) of it (from the unit's start). */
size_t dsk_zero_unit_len(const dsk_zero *z, int u);
void dsk_zero_own(const dsk_zero *z, int u, size_t *lo, size_t *hi);

#endif
