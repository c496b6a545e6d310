/* Memory per rank of a data-parallel run: what dsk_zero allocates for a
 * model at a world size and ZeRO stage (the same arithmetic, so the
 * figures dsk-train prints are what it holds), and the table of
 * dsk-train --memory-table. */
#ifndef DSK_DIST_MEMORY_H
#define DSK_DIST_MEMORY_H

#include <stddef.h>
#include <stdio.h>

#include "model/config.h"
#include "model/model.h"

/* Bytes on one rank; fp32 weights, gradients and moments. */
typedef struct dsk_mem_plan {
    size_t params;        /* resident: every parameter, or (stage 3) the shard */
    size_t params_held;   /* stage 3: gathered units, the most held at once */
    size_t grads;         /* resident: every gradient, or (stages 2, 3) the shard */
    size_t grads_held;    /* stages 2, 3: unit gradient buffers, the most held at once */
    size_t grads_landing; /* stages 2, 3 with several ranks: where a reduce-scatter's part lands */
    size_t optim;         /* Adam's two moments: every parameter's, or (stages 1-3) the shard's */
    size_t acts;          /* a micro-batch's activations and backward scratch (dsk_mem_activations) */
} dsk_mem_plan;

/* For m's units (acts left 0). */
void dsk_mem_plan_model(const dsk_model *m, int world, int stage, dsk_mem_plan *p);
size_t dsk_mem_plan_total(const dsk_mem_plan *p);
/* What dsk_model_alloc_batch(B, T) allocates for config c (counted, not
 * allocated), with or without activation recomputation, on a backend
 * whose logits_budget is logits_budget (0: the cpu's). */
size_t dsk_mem_activations(const dsk_model_config *c, int B, int T, int recompute, size_t logits_budget);
/* "12.3 MiB" into buf. */
const char *dsk_mem_human(size_t bytes, char *buf, size_t len);
/* The table: config c at 1, 2, 4, ... 64 ranks, ZeRO 0 to 3, for a
 * micro-batch of B rows of T positions on each rank; the last column is
 * the total with --recompute. */
void dsk_mem_table(FILE *f, const dsk_model_config *c, const char *name, int B, int T);

#endif
