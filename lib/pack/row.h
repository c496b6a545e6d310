/* One training row as dsk-pack stores it: the tokens of a packed sequence,
 * an optional loss mask (chat rows), optional document-start offsets (so
 * training can restart positions and attention at each document), and for
 * preference rows the split between chosen and rejected.
 *
 * Encoded value (dsk-dataset(5)): a 16-byte header (version, flags, token
 * width, token count, boundary count, the preference split) and a zstd
 * frame holding the payload: the tokens little-endian at the token width,
 * the mask bits, the boundaries.  A dataset may carry a zstd dictionary
 * trained on its first rows; rows compressed with it have DSK_ROW_DICT set.
 * At level 0 the payload is stored as it is (DSK_ROW_RAW), for datasets
 * read faster than they are stored small.
 * The decoder checks every size against the header and every token against
 * the vocab size, so a damaged or hostile value is an error, never a crash. */
#ifndef DSK_PACK_ROW_H
#define DSK_PACK_ROW_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define DSK_ROW_VERSION 1
#define DSK_ROW_HEADER_BYTES 16
#define DSK_ROW_MAX_TOKENS (1u << 24)

/* RAW: the payload follows the header as it is, not in a zstd frame (level 0). */
enum { DSK_ROW_MASK = 1, DSK_ROW_BOUNDARIES = 2, DSK_ROW_PAIR = 4, DSK_ROW_DICT = 8, DSK_ROW_RAW = 16 };

typedef struct dsk_row {
    uint32_t *tokens;
    uint32_t n_tokens;
    uint8_t *mask;         /* n_tokens bytes, 0 or 1: 1 = a training target */
    uint32_t *boundaries;  /* document starts, increasing, when DSK_ROW_BOUNDARIES */
    uint32_t n_boundaries;
    uint32_t split;        /* DSK_ROW_PAIR: tokens [0, split) chosen, [split, n) rejected */
    unsigned flags;
    size_t cap_tokens, cap_boundaries;
} dsk_row;

/* Compression state for one thread.  cdict/ddict are the dataset's
 * dictionary (ZSTD_CDict / ZSTD_DDict, shared, not owned) or NULL; level
 * (0: store the payload uncompressed) and cdict are read when the first
 * row is encoded. */
typedef struct dsk_row_codec {
    void *cctx, *dctx;
    const void *cdict, *ddict;
    int level;
    dsk_buf raw;
} dsk_row_codec;

void dsk_row_codec_free(dsk_row_codec *c);

/* The uncompressed payload of row (what a dictionary is trained on). */
int dsk_row_payload(const dsk_row *row, unsigned token_bytes, dsk_buf *out, dsk_err *err);
/* Appends the encoded row to out; token_bytes is 2 or 4. */
int dsk_row_encode(dsk_row_codec *c, const dsk_row *row, unsigned token_bytes, dsk_buf *out, dsk_err *err);
/* Decodes value into row (its buffers are reused); tokens must be below vocab_size. */
int dsk_row_decode(dsk_row_codec *c, const void *value, size_t len, uint32_t vocab_size, dsk_row *row,
                   dsk_err *err);
/* Makes room for n tokens and nb boundaries in row's own buffers. */
void dsk_row_reserve(dsk_row *row, uint32_t n, uint32_t nb);
void dsk_row_free(dsk_row *row);

#endif
