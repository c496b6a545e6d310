#include "train/batch.h"

void dsk_batch_fill_row(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T, const dsk_row *row,
                        int doc_mask)
{
    uint32_t next_boundary = 0, doc_start = 0;
    int use_docs = doc_mask && (row->flags & DSK_ROW_BOUNDARIES);
    for (int t = 0; t < T; t++) {
        if (use_docs)
            while (next_boundary < row->n_boundaries && row->boundaries[next_boundary] <= (uint32_t)t)
                doc_start = row->boundaries[next_boundary++];
        tokens[t] = (int32_t)row->tokens[t];
        targets[t] = (int32_t)row->tokens[t + 1];
        pos[t] = (int32_t)((uint32_t)t - doc_start);
        weights[t] = (row->flags & DSK_ROW_MASK) ? (float)row->mask[t + 1] : 1.0f;
    }
}

void dsk_batch_blank_row(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T)
{
    for (int t = 0; t < T; t++) {
        tokens[t] = 0;
        targets[t] = -1;
        pos[t] = t;
        weights[t] = 0;
    }
}
