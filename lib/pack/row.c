#include "pack/row.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "core/tokens.h"

static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* Bytes of the uncompressed payload for these counts. */
static size_t payload_bytes(unsigned flags, unsigned token_bytes, uint32_t n, uint32_t nb)
{
    return (size_t)n * token_bytes + ((flags & DSK_ROW_MASK) ? ((size_t)n + 7) / 8 : 0) +
           ((flags & DSK_ROW_BOUNDARIES) ? (size_t)nb * 4 : 0);
}

void dsk_row_codec_free(dsk_row_codec *c)
{
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    dsk_buf_free(&c->raw);
    c->cctx = c->dctx = NULL;
}

int dsk_row_payload(const dsk_row *row, unsigned token_bytes, dsk_buf *out, dsk_err *err)
{
    if (token_bytes != 2 && token_bytes != 4)
        return dsk_fail(err, EX_SOFTWARE, "token width %u", token_bytes);
    if (row->n_tokens > DSK_ROW_MAX_TOKENS)
        return dsk_fail(err, EX_DATAERR, "a row of %u tokens is over the limit of %u", row->n_tokens,
                        DSK_ROW_MAX_TOKENS);
    uint32_t nb = (row->flags & DSK_ROW_BOUNDARIES) ? row->n_boundaries : 0;
    size_t raw = payload_bytes(row->flags, token_bytes, row->n_tokens, nb);
    dsk_buf_reserve(out, raw + 1);
    uint8_t *q = (uint8_t *)out->data + out->len;
    uint32_t largest = dsk_tokens_narrow(q, row->tokens, row->n_tokens, token_bytes);
    if (token_bytes == 2 && largest > 0xFFFF)
        return dsk_fail(err, EX_DATAERR, "token %u does not fit in 2 bytes", largest);
    q += (size_t)row->n_tokens * token_bytes;
    if (row->flags & DSK_ROW_MASK) {
        memset(q, 0, ((size_t)row->n_tokens + 7) / 8);
        for (uint32_t i = 0; i < row->n_tokens; i++)
            if (row->mask[i])
                q[i / 8] |= (uint8_t)(1u << (i % 8));
        q += ((size_t)row->n_tokens + 7) / 8;
    }
    for (uint32_t i = 0; i < nb; i++, q += 4)
        put32(q, row->boundaries[i]);
    out->len += raw;
    return 0;
}

int dsk_row_encode(dsk_row_codec *c, const dsk_row *row, unsigned token_bytes, dsk_buf *out, dsk_err *err)
{
    unsigned flags = row->flags & (DSK_ROW_MASK | DSK_ROW_BOUNDARIES | DSK_ROW_PAIR);
    flags |= c->level == 0 ? DSK_ROW_RAW : c->cdict ? DSK_ROW_DICT : 0;
    uint32_t nb = (flags & DSK_ROW_BOUNDARIES) ? row->n_boundaries : 0;
    uint8_t h[DSK_ROW_HEADER_BYTES] = {DSK_ROW_VERSION, (uint8_t)flags, (uint8_t)token_bytes, 0};
    put32(h + 4, row->n_tokens);
    put32(h + 8, nb);
    put32(h + 12, (flags & DSK_ROW_PAIR) ? row->split : 0);
    if (flags & DSK_ROW_RAW) {
        size_t start = out->len;
        dsk_buf_add(out, h, sizeof h);
        int rc = dsk_row_payload(row, token_bytes, out, err);
        if (rc)
            out->len = start;
        return rc;
    }
    dsk_buf_clear(&c->raw);
    int rc = dsk_row_payload(row, token_bytes, &c->raw, err);
    if (rc)
        return rc;
    dsk_buf_add(out, h, sizeof h);
    if (!c->cctx) {
        /* Sticky parameters: no dictionary id in the frame (the row header
         * says a dictionary was used), no checksum (LMDB pages and MD5SUMS
         * already guard the bytes). */
        c->cctx = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, c->level);
        ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_dictIDFlag, 0);
        ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0);
        if (c->cdict)
            ZSTD_CCtx_refCDict(c->cctx, c->cdict);
    }
    size_t bound = ZSTD_compressBound(c->raw.len);
    dsk_buf_reserve(out, bound);
    size_t z = ZSTD_compress2(c->cctx, out->data + out->len, bound, c->raw.data, c->raw.len);
    if (ZSTD_isError(z))
        return dsk_fail(err, EX_SOFTWARE, "zstd: %s", ZSTD_getErrorName(z));
    out->len += z;
    return 0;
}

void dsk_row_reserve(dsk_row *row, uint32_t n, uint32_t nb)
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

int dsk_row_decode(dsk_row_codec *c, const void *value, size_t len, uint32_t vocab_size, dsk_row *row, dsk_err *err)
{
    const uint8_t *v = value;
    if (len < DSK_ROW_HEADER_BYTES)
        return dsk_fail(err, EX_DATAERR, "row of %zu bytes is shorter than its header", len);
    unsigned flags = v[1], tb = v[2];
    uint32_t n = get32(v + 4), nb = get32(v + 8), split = get32(v + 12);
    if (v[0] != DSK_ROW_VERSION || (flags & ~31u) || ((flags & DSK_ROW_RAW) && (flags & DSK_ROW_DICT)) ||
        (tb != 2 && tb != 4) || v[3] || n > DSK_ROW_MAX_TOKENS || nb > n || (!(flags & DSK_ROW_BOUNDARIES) && nb) ||
        (!(flags & DSK_ROW_PAIR) && split) || split > n)
        return dsk_fail(err, EX_DATAERR, "bad row header");
    if ((flags & DSK_ROW_DICT) && !c->ddict)
        return dsk_fail(err, EX_DATAERR, "row compressed with a dictionary the dataset does not have");
    size_t raw = payload_bytes(flags, tb, n, nb);
    const uint8_t *src = v + DSK_ROW_HEADER_BYTES;
    size_t src_len = len - DSK_ROW_HEADER_BYTES;
    const uint8_t *q = src;  /* the payload: in place when stored raw */
    if (flags & DSK_ROW_RAW) {
        if (src_len != raw)
            return dsk_fail(err, EX_DATAERR, "row payload is %zu bytes, the header says %zu", src_len, raw);
    } else {
        dsk_buf_clear(&c->raw);
        dsk_buf_reserve(&c->raw, raw + 1);
        unsigned long long frame = ZSTD_getFrameContentSize(src, src_len);
        if (frame != raw)
            return dsk_fail(err, EX_DATAERR, "row payload is %llu bytes, the header says %zu", frame, raw);
        if (!c->dctx)
            c->dctx = ZSTD_createDCtx();
        size_t got = (flags & DSK_ROW_DICT)
                         ? ZSTD_decompress_usingDDict(c->dctx, c->raw.data, raw + 1, src, src_len, c->ddict)
                         : ZSTD_decompressDCtx(c->dctx, c->raw.data, raw + 1, src, src_len);
        if (ZSTD_isError(got) || got != raw)
            return dsk_fail(err, EX_DATAERR, "row payload: %s",
                            ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short");
        q = (const uint8_t *)c->raw.data;
    }
    dsk_row_reserve(row, n, nb);
    uint32_t largest = dsk_tokens_widen(row->tokens, q, n, tb);
    q += (size_t)n * tb;
    if (n && largest >= vocab_size)
        for (uint32_t i = 0; i < n; i++)
            if (row->tokens[i] >= vocab_size)
                return dsk_fail(err, EX_DATAERR, "token %u at position %u is not below the vocab size %u",
                                row->tokens[i], i, vocab_size);
    if (flags & DSK_ROW_MASK) {
        for (uint32_t i = 0; i < n; i++)
            row->mask[i] = (q[i / 8] >> (i % 8)) & 1;
        q += ((size_t)n + 7) / 8;
    } else {
        memset(row->mask, 1, n);
    }
    for (uint32_t i = 0; i < nb; i++, q += 4) {
        row->boundaries[i] = get32(q);
        if (row->boundaries[i] >= n || (i && row->boundaries[i] <= row->boundaries[i - 1]))
            return dsk_fail(err, EX_DATAERR, "document boundaries out of order or out of the row");
    }
    row->n_tokens = n;
    row->n_boundaries = nb;
    row->split = split;
    row->flags = flags & ~(unsigned)(DSK_ROW_DICT | DSK_ROW_RAW);
    return 0;
}

void dsk_row_free(dsk_row *row)
{
    free(row->tokens);
    free(row->mask);
    free(row->boundaries);
    memset(row, 0, sizeof *row);
}
