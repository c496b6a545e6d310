/* One training row as dsk-pack stores it: the tokens of a packed sequence,
 * an optional loss mask (chat rows), optional document-start offsets (so
 * training can restart positions and attention at each document), and for
 * preference rows the split between chosen and rejected.
 *
 * Encoded value: a 16-byte header (version, flags, token width, token
 * count, boundary count, the preference split) and a zstd frame holding the
 * tokens, the mask bits and the boundaries.  The decoder checks every size
 * against the header and every token against the vocab size, so a damaged
 * or hostile value is an error, never a crash. */
#ifndef DSK_PACK_ROW_H
#define DSK_PACK_ROW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define DSK_ROW_VERSION 1
#define DSK_ROW_HEADER_BYTES 16
#define DSK_ROW_MAX_TOKENS (1u << 24)

enum { DSK_ROW_MASK = 1, DSK_ROW_BOUNDARIES = 2, DSK_ROW_PAIR = 4 };

typedef struct dsk_row {
    uint32_t *tokens;
    uint32_t n_tokens;
    uint8_t *mask;         /* n_tokens bytes, 0 or 1, when flags has DSK_ROW_MASK */
    uint32_t *boundaries;  /* document starts, increasing, when DSK_ROW_BOUNDARIES */
    uint32_t n_boundaries;
    uint32_t split;        /* DSK_ROW_PAIR: tokens [0, split) chosen, [split, n) rejected */
    unsigned flags;
    size_t cap_tokens, cap_boundaries;
} dsk_row;

/* Appends the encoded row to out; token_bytes is 2 or 4. */
int dsk_row_encode(const dsk_row *row, unsigned token_bytes, int zstd_level, void *zstd_cctx, dsk_buf *out,
                   dsk_err *err);
/* Decodes value into row (its buffers are reused); tokens must be below vocab_size. */
int dsk_row_decode(const void *value, size_t len, uint32_t vocab_size, void *zstd_dctx, dsk_row *row,
                   dsk_buf *scratch, dsk_err *err);
void dsk_row_free(dsk_row *row);

#endif
