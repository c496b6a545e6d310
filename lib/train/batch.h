/* Dataset rows as model batches: what dsk-train and dsk-eval feed the
 * model, so both read a row the same way. */
#ifndef DSK_TRAIN_BATCH_H
#define DSK_TRAIN_BATCH_H

#include <stdint.h>

#include "pack/row.h"

/* One row of T positions from a dataset row of at least T+1 tokens:
 * inputs, next-token targets, each token's position in its document
 * (restarting at the row's boundaries when doc_mask), and the loss
 * weights (the row's mask of the target, or 1).  The pointers are the
 * row's place in the batch arrays. */
void dsk_batch_fill_row(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T, const dsk_row *row,
                        int doc_mask);
/* The same from token `start` of a row of any length: positions restart
 * at the window's start too (a document begun before it is seen from
 * there), and those past the row's last target are padding. */
void dsk_batch_fill_window(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T,
                           const dsk_row *row, uint32_t start, int doc_mask);
/* A padding row: no targets, no weight. */
void dsk_batch_blank_row(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T);

#endif
