/* Batched decoding over many sequences, the engine under continuous
 * batching (dsk-serve): a fixed set of sequence slots, each with its own
 * KV cache, and a step that runs any mix of rows, (slot, token) pairs,
 * through the model as one forward pass.  The matrix products see all
 * rows at once; attention runs per row against its own slot's cache.
 *
 * A slot given several rows in one step gets them at consecutive
 * positions, in order: that is a prefill chunk (causal within the step,
 * since every row's key and value reach the cache before attention).  A
 * slot given one row is a decode step.  Both can share a step, so a long
 * prompt is prefilled in chunks between other sequences' decode steps. */
#ifndef DSK_MODEL_DECODE_BATCH_H
#define DSK_MODEL_DECODE_BATCH_H

#include "model/model.h"

typedef struct dsk_batch_decoder {
    dsk_model *m;
    int n_slots, max_len, max_rows;
    int *len;                          /* tokens in each slot's cache */
    float **k_cache, **v_cache;        /* device, per layer [n_slots][max_len][KV*hd] */
    float *x, *h, *rstd, *q, *k, *v, *att, *g, *u, *act, *logits;   /* device, [max_rows][...] */
    int32_t *tok, *pos, *slot;         /* device [max_rows]: each row's token, position, sequence */
    int32_t *host_pos;                 /* [max_rows] */
    float *host_logits;                /* [max_rows][vocab]: the wanted rows' logits after a step, in row order */
    int *logit_row;                    /* [max_rows]: row i's logits are host_logits + logit_row[i] * vocab, -1: none */
    dsk_moe_bufs moe;
} dsk_batch_decoder;

/* max_len 0: the model's max_position_embeddings. */
dsk_batch_decoder *dsk_batch_decoder_new(dsk_model *m, int n_slots, int max_len, int max_rows);
void dsk_batch_decoder_free(dsk_batch_decoder *d);
/* Empties a slot (a finished or cancelled sequence). */
void dsk_batch_decoder_reset(dsk_batch_decoder *d, int slot);
/* Slot `to` starts as the first n tokens of slot `from` (n <= its
 * length): their keys and values copied, for a prompt that begins the
 * same way (a key or value depends only on the tokens up to it). */
void dsk_batch_decoder_share(dsk_batch_decoder *d, int from, int to, int n);
/* Feeds tokens[i] to slots[i] for i < n (n <= max_rows).  The LM head
 * runs only on the rows with want[i] nonzero (all rows when want is
 * NULL): a prompt row whose next token is already known needs no logits,
 * and at a large vocabulary the head is most of a small model's work.
 * host_logits + logit_row[i] * vocab then holds the next-token logits
 * after row i (logit_row[i] is -1 for a row not wanted).  EX_DATAERR
 * (nothing changed) when a slot would overflow or a token is out of
 * range; EX_SOFTWARE for a bad slot or n. */
int dsk_batch_decoder_step(dsk_batch_decoder *d, const int *slots, const int32_t *tokens, int n,
                           const unsigned char *want, dsk_err *err);

#endif
