/* Packing documents into training rows (dsk-pack(1), dsk-dataset(5)).
 *
 * A row holds row_len = seq_len + 1 tokens: the model reads tokens [0, L-1)
 * and predicts tokens [1, L).  The loss mask marks targets: mask[i] = 1
 * means the prediction of token i counts.  Boundaries are the offsets where
 * a document (or a piece of one) starts, so training can restart positions
 * and attention there.
 *
 * Plain documents (pretraining) become segments "<|endoftext|> doc": the
 * separator opens each document, so the first token of a document is
 * predicted from the separator alone and the last one predicts the next
 * separator (the model learns to stop).
 *   concat   segments back to back, cut every row_len tokens: every token
 *            appears exactly once; only the final row is padded.
 *   bestfit  segments longer than a row are cut into row-sized pieces (or
 *            cropped with crop_long), then pieces are placed best-fit
 *            decreasing into rows within a window of buffered tokens, so
 *            no document is cut except those longer than a row.
 * Chat records (SFT) are one conversation per row, cropped to row_len and
 * padded, or with bestfit placed whole (cropped alike) as bestfit places
 * segments, several to a row; their mask comes from the record.  Preference records (DPO) are
 * one row of 2 * row_len tokens: prompt + chosen, then prompt + rejected,
 * each cropped (the prompt from the left, keeping at least half a row for
 * the answer) and padded; the mask is 1 on the answers.
 *
 * Padding is the separator token with mask 0, except that the first padding
 * token after a document that ended there is a target (end of document). */
#ifndef DSK_PACK_PACK_H
#define DSK_PACK_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "bpe/dskt.h"
#include "core/err.h"
#include "core/split.h"
#include "pack/row.h"

enum { DSK_PACK_CONCAT, DSK_PACK_BESTFIT };
enum { DSK_KIND_NONE, DSK_KIND_PRETRAIN, DSK_KIND_SFT, DSK_KIND_DPO };
const char *dsk_kind_name(int kind);                    /* pretrain, sft, dpo */
const char *dsk_pack_mode_name(int kind, int mode);     /* concat, bestfit, conversation, pair */

typedef struct dsk_pack_opts {
    int mode;               /* DSK_PACK_CONCAT or DSK_PACK_BESTFIT (plain documents; chat records: one a
                               row, or bestfit) */
    uint32_t row_len;       /* seq_len + 1 */
    uint32_t eot;           /* the separator and padding token */
    int crop_long;          /* bestfit: crop documents longer than a row instead of cutting them */
    uint64_t window_tokens; /* bestfit: tokens buffered per placement round */
} dsk_pack_opts;

typedef struct dsk_pack_stats {
    uint64_t documents, document_tokens;  /* as read, separators not counted */
    uint64_t rows, row_tokens;            /* as written, padding included */
    uint64_t padding, cropped;            /* padding tokens; tokens dropped by cropping */
    uint64_t cut_documents;               /* documents not whole in one row: cut across rows, or cropped */
} dsk_pack_stats;

/* Receives each finished row in output order; non-zero stops packing. */
typedef int (*dsk_pack_emit_fn)(void *ctx, int split, const dsk_row *row, dsk_err *err);

typedef struct dsk_packer dsk_packer;

dsk_packer *dsk_packer_new(const dsk_pack_opts *o, dsk_pack_emit_fn emit, void *ctx);
/* Adds one record.  The first record fixes the dataset kind; a record of
 * another kind is an error. */
int dsk_packer_add(dsk_packer *p, const dskt_record *rec, dsk_err *err);
/* Emits everything still buffered (the last, padded rows). */
int dsk_packer_finish(dsk_packer *p, dsk_err *err);
int dsk_packer_kind(const dsk_packer *p);
const dsk_pack_stats *dsk_packer_stats(const dsk_packer *p, int split);
void dsk_packer_free(dsk_packer *p);

#endif
