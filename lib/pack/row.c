#include "pack/row.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Bytes of the uncompressed payload for these counts. */
static size_t payload_bytes(unsigned flags, unsigned token_bytes, uint32_t n, uint32_t nb)
{
    return (size_t)n * token_bytes + ((flags & DSK_ROW_MASK) ? ((size_t)n + 7) / 8 : 0) +
           ((flags & DSK_ROW_BOUNDARIES) ? (size_t)nb * 4 : 0);
}

int dsk_row_encode(const dsk_row *row, unsigned token_bytes, int zstd_level, void *cctx, dsk_buf *out, dsk_err *err)
{
    if (token_bytes != 2 && token_bytes != 4)
        return dsk_fail(err, EX_SOFTWARE, "token width %u", token_bytes);
    if (row->n_tokens > DSK_ROW_MAX_TOKENS)
        return dsk_fail(err, EX_DATAERR, "a row of %u tokens is over the limit of %u", row->n_tokens,
                        DSK_ROW_MAX_TOKENS);
    uint32_t nb = (row->flags & DSK_ROW_BOUNDARIES) ? row->n_boundaries : 0;
    size_t raw = payload_bytes(row->flags, token_bytes, row->n_tokens, nb);
    uint8_t *p = dsk_xmalloc(raw + 1);
    uint8_t *q = p;
    for (uint32_t i = 0; i < row->n_tokens; i++) {
        uint32_t t = row->tokens[i];
        if (token_bytes == 2 && t > 0xFFFF) {
            free(p);
            return dsk_fail(err, EX_DATAERR, "token %u does not fit in 2 bytes", t);
        }
        for (unsigned k = 0; k < token_bytes; k++)
            *q++ = (uint8_t)(t >> (8 * k));
    }
    if (row->flags & DSK_ROW_MASK) {
        memset(q, 0, ((size_t)row->n_tokens + 7) / 8);
        for (uint32_t i = 0; i < row->n_tokens; i++)
            if (row->mask[i])
                q[i / 8] |= (uint8_t)(1u << (i % 8));
        q += ((size_t)row->n_tokens + 7) / 8;
    }
    for (uint32_t i = 0; i < nb; i++, q += 4)
        put32(q, row->boundaries[i]);

    uint8_t h[DSK_ROW_HEADER_BYTES] = {DSK_ROW_VERSION, (uint8_t)row->flags, (uint8_t)token_bytes, 0};
    put32(h + 4, row->n_tokens);
    put32(h + 8, nb);
    put32(h + 12, (row->flags & DSK_ROW_PAIR) ? row->split : 0);
    dsk_buf_add(out, h, sizeof h);
    size_t bound = ZSTD_compressBound(raw);
    dsk_buf_reserve(out, bound);
    size_t z = cctx ? ZSTD_compressCCtx(cctx, out->data + out->len, bound, p, raw, zstd_level)
                    : ZSTD_compress(out->data + out->len, bound, p, raw, zstd_level);
    free(p);
    if (ZSTD_isError(z))
        return dsk_fail(err, EX_SOFTWARE, "zstd: %s", ZSTD_getErrorName(z));
    out->len += z;
    return 0;
}

static void reserve(dsk_row *row, uint32_t n, uint32_t nb)
{
    if (row->cap_tokens < n || !row->tokens) {
        row->cap_tokens = n ? n : 1;
        row->tokens = dsk_xrealloc(row->tokens, row->cap_tokens * sizeof *row->tokens);
        row->mask = dsk_xrealloc(row->mask, row->cap_tokens);
    }
    if (row->cap_boundaries < nb || !row->boundaries) {
        row->cap_boundaries = nb ? nb : 1;
        row->boundaries = dsk_xrealloc(row->boundaries, row->cap_boundaries * sizeof *row->boundaries);
    }
}

int dsk_row_decode(const void *value, size_t len, uint32_t vocab_size, void *dctx, dsk_row *row, dsk_buf *scratch,
                   dsk_err *err)
{
    const uint8_t *v = value;
    if (len < DSK_ROW_HEADER_BYTES)
        return dsk_fail(err, EX_DATAERR, "row of %zu bytes is shorter than its header", len);
    unsigned flags = v[1], tb = v[2];
    uint32_t n = get32(v + 4), nb = get32(v + 8), split = get32(v + 12);
    if (v[0] != DSK_ROW_VERSION || (flags & ~7u) || (tb != 2 && tb != 4) || v[3] || n > DSK_ROW_MAX_TOKENS ||
        nb > n || (!(flags & DSK_ROW_BOUNDARIES) && nb) || (!(flags & DSK_ROW_PAIR) && split) || split > n)
        return dsk_fail(err, EX_DATAERR, "bad row header");
    size_t raw = payload_bytes(flags, tb, n, nb);
    dsk_buf_clear(scratch);
    dsk_buf_reserve(scratch, raw + 1);
    unsigned long long frame = ZSTD_getFrameContentSize(v + DSK_ROW_HEADER_BYTES, len - DSK_ROW_HEADER_BYTES);
    if (frame != raw)
        return dsk_fail(err, EX_DATAERR, "row payload is %llu bytes, the header says %zu", frame, raw);
    size_t got = dctx ? ZSTD_decompressDCtx(dctx, scratch->data, raw + 1, v + DSK_ROW_HEADER_BYTES,
                                             len - DSK_ROW_HEADER_BYTES)
                      : ZSTD_decompress(scratch->data, raw + 1, v + DSK_ROW_HEADER_BYTES, len - DSK_ROW_HEADER_BYTES);
    if (ZSTD_isError(got) || got != raw)
        return dsk_fail(err, EX_DATAERR, "row payload: %s", ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
    reserve(row, n, nb);
    const uint8_t *q = (const uint8_t *)scratch->data;
    for (uint32_t i = 0; i < n; i++, q += tb) {
        uint32_t t = tb == 2 ? (uint32_t)q[0] | (uint32_t)q[1] << 8 : get32(q);
        if (t >= vocab_size)
            return dsk_fail(err, EX_DATAERR, "token %u at position %u is not below the vocab size %u", t, i,
                            vocab_size);
        row->tokens[i] = t;
    }
    for (uint32_t i = 0; i < n; i++)
        row->mask[i] = (flags & DSK_ROW_MASK) ? (q[i / 8] >> (i % 8)) & 1 : 1;
    if (flags & DSK_ROW_MASK)
        q += ((size_t)n + 7) / 8;
    for (uint32_t i = 0; i < nb; i++, q += 4) {
        row->boundaries[i] = get32(q);
        if (row->boundaries[i] >= n || (i && row->boundaries[i] <= row->boundaries[i - 1]))
            return dsk_fail(err, EX_DATAERR, "document boundaries out of order or out of the row");
    }
    row->n_tokens = n;
    row->n_boundaries = nb;
    row->split = split;
    row->flags = flags;
    return 0;
}

void dsk_row_free(dsk_row *row)
{
    free(row->tokens);
    free(row->mask);
    free(row->boundaries);
    memset(row, 0, sizeof *row);
}
