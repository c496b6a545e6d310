#include "train/batch.h"

void dsk_batch_fill_window(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T,
                           const dsk_row *row, uint32_t start, int doc_mask)
{
    uint32_t next_boundary = 0, doc_start = start;
    int use_docs = doc_mask && (row->flags & DSK_ROW_BOUNDARIES);
    for (int t = 0; t < T; t++) {
        uint32_t i = start + (uint32_t)t;
        if (i + 1 >= row->n_tokens) {   /* past the row's last target: padding */
            tokens[t] = 0;
            targets[t] = -1;
            pos[t] = t;
            weights[t] = 0;
            continue;
        }
        /* A document that began before the window starts again at its start. */
        if (use_docs)
            while (next_boundary < row->n_boundaries && row->boundaries[next_boundary] <= i) {
                if (row->boundaries[next_boundary] > doc_start)
                    doc_start = row->boundaries[next_boundary];
                next_boundary++;
            }
        tokens[t] = (int32_t)row->tokens[i];
        targets[t] = (int32_t)row->tokens[i + 1];
        pos[t] = (int32_t)(i - doc_start);
        weights[t] = (row->flags & DSK_ROW_MASK) ? (float)row->mask[i + 1] : 1.0f;
    }
}

void dsk_batch_fill_row(int32_t *tokens, int32_t *targets, int32_t *pos, float *weights, int T, const dsk_row *row,
                        int doc_mask)
{
    dsk_batch_fill_window(tokens, targets, pos, weights, T, row, 0, doc_mask);
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
