#include "bpe/dskt.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/hash.h"
#include "core/tokens.h"

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void dskt_fingerprint_hex(const uint8_t fp[16], char out[33])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = digits[fp[i] >> 4];
        out[2 * i + 1] = digits[fp[i] & 15];
    }
    out[32] = '\0';
}

static uint8_t *room(uint8_t **buf, size_t *cap, size_t n)
{
    if (*cap < n) {
        *cap = n * 2;
        *buf = dsk_xrealloc(*buf, *cap);
    }
    return *buf;
}

/* ---- writer --------------------------------------------------------------------- */

static int emit(dskt_writer *w, const void *p, size_t n, dsk_err *err)
{
    XXH3_64bits_update(w->hash, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        return dsk_fail(err, EX_IOERR, "write error on the token stream");
    return 0;
}

int dskt_writer_open(dskt_writer *w, FILE *f, uint32_t vocab_size, const char fingerprint_hex[33], dsk_err *err)
{
    memset(w, 0, sizeof *w);
    w->f = f;
    w->h.version = DSKT_VERSION;
    w->h.token_bytes = vocab_size <= 65536 ? 2 : 4;
    w->h.vocab_size = vocab_size;
    for (int i = 0; i < 16; i++)
        w->h.fingerprint[i] = (uint8_t)(hexval(fingerprint_hex[2 * i]) << 4 | hexval(fingerprint_hex[2 * i + 1]));
    w->hash = XXH3_createState();
    XXH3_64bits_reset(w->hash);
    uint8_t h[DSKT_HEADER_BYTES] = {0};
    memcpy(h, DSKT_MAGIC, 4);
    put16(h + 4, DSKT_VERSION);
    h[6] = (uint8_t)w->h.token_bytes;
    put32(h + 8, vocab_size);
    memcpy(h + 12, w->h.fingerprint, 16);
    return emit(w, h, sizeof h, err);
}

int dskt_write(dskt_writer *w, const dskt_record *r, dsk_err *err)
{
    if (r->n_tokens > DSKT_MAX_RECORD_TOKENS)
        return dsk_fail(err, EX_DATAERR, "a document of %u tokens is over the %u-token record limit", r->n_tokens,
                        DSKT_MAX_RECORD_TOKENS);
    size_t tb = w->h.token_bytes, extra = r->kind == DSKT_CHAT ? (r->n_tokens + 7) / 8
                                         : r->kind == DSKT_PREFERENCE ? 8 : 0;
    size_t n = 8 + extra + (size_t)r->n_tokens * tb;
    uint8_t *p = room(&w->buf, &w->cap, n);
    p[0] = (uint8_t)r->kind;
    p[1] = (uint8_t)r->split;
    put16(p + 2, 0);
    put32(p + 4, r->n_tokens);
    uint8_t *q = p + 8;
    if (r->kind == DSKT_PREFERENCE) {
        put32(q, r->n_prompt);
        put32(q + 4, r->n_chosen);
        q += 8;
    }
    if (r->n_tokens && dsk_tokens_narrow(q, r->tokens, r->n_tokens, (unsigned)tb) >= w->h.vocab_size)
        for (uint32_t i = 0; i < r->n_tokens; i++)
            if (r->tokens[i] >= w->h.vocab_size)
                return dsk_fail(err, EX_DATAERR, "token %u is not below the vocab size %u", r->tokens[i],
                                w->h.vocab_size);
    q += (size_t)r->n_tokens * tb;
    if (r->kind == DSKT_CHAT) {  /* the mask, one bit a token, low bit first */
        memset(q, 0, extra);
        for (uint32_t i = 0; i < r->n_tokens; i++)
            if (r->mask[i])
                q[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    w->records++;
    w->tokens += r->n_tokens;
    return emit(w, p, n, err);
}

void dskt_writer_abort(dskt_writer *w)
{
    if (w->hash)
        XXH3_freeState(w->hash);
    free(w->buf);
    w->hash = NULL;
    w->buf = NULL;
}

int dskt_writer_close(dskt_writer *w, dsk_err *err)
{
    uint8_t t[40] = {0};
    t[0] = DSKT_END;
    put64(t + 8, w->records);
    put64(t + 16, w->tokens);
    int rc = emit(w, t, 24, err);  /* the checksum covers the trailer's counts too */
    put64(t + 24, XXH3_64bits_digest(w->hash));
    memcpy(t + 32, "TKSD", 4);
    if (!rc && fwrite(t + 24, 1, 16, w->f) != 16)
        rc = dsk_fail(err, EX_IOERR, "write error on the token stream");
    dskt_writer_abort(w);  /* frees the writer; the trailer is out */
    return rc;
}

/* ---- reader --------------------------------------------------------------------- */

static int take(dskt_reader *r, void *p, size_t n, const char *what, dsk_err *err)
{
    size_t got = fread_unlocked(p, 1, n, r->f);   /* one reader per stream: no lock per call */
    if (got != n)
        return dsk_fail(err, ferror(r->f) ? EX_IOERR : EX_DATAERR,
                        "%s: truncated at offset %llu (in %s)", r->name,
                        (unsigned long long)(r->offset + got), what);
    XXH3_64bits_update(r->hash, p, n);
    r->offset += n;
    return 0;
}

int dskt_reader_open(dskt_reader *r, FILE *f, const char *name, dsk_err *err)
{
    memset(r, 0, sizeof *r);
    r->f = f;
    r->name = name;
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode))   /* read() would say EISDIR: not a cut stream */
        return dsk_fail(err, EX_NOINPUT, "%s: is a directory", name);
    r->hash = XXH3_createState();
    XXH3_64bits_reset(r->hash);
    uint8_t h[DSKT_HEADER_BYTES];
    int rc = take(r, h, 4, "the header", err);
    if (!rc && memcmp(h, DSKT_MAGIC, 4) != 0)
        rc = dsk_fail(err, EX_DATAERR, "%s: not a .dskt token stream (bad magic)", name);
    if (!rc)
        rc = take(r, h + 4, sizeof h - 4, "the header", err);
    if (rc)
        return rc;
    r->h.version = get16(h + 4);
    r->h.token_bytes = h[6];
    r->h.vocab_size = get32(h + 8);
    memcpy(r->h.fingerprint, h + 12, 16);
    if (r->h.version != DSKT_VERSION)
        return dsk_fail(err, EX_DATAERR, "%s: .dskt version %u is not supported (this reader knows %u)", name,
                        r->h.version, DSKT_VERSION);
    if ((r->h.token_bytes != 2 && r->h.token_bytes != 4) || r->h.vocab_size == 0 ||
        (r->h.token_bytes == 2 && r->h.vocab_size > 65536))
        return dsk_fail(err, EX_DATAERR, "%s: bad header (token width %u, vocab size %u)", name, r->h.token_bytes,
                        r->h.vocab_size);
    return 0;
}

static void reserve_tokens(dskt_record *rec, uint32_t n)
{
    if (rec->cap_tokens < n) {
        rec->cap_tokens = n;
        rec->tokens = dsk_xrealloc(rec->tokens, n * sizeof *rec->tokens);
        rec->mask = dsk_xrealloc(rec->mask, n);
    }
}

int dskt_read(dskt_reader *r, dskt_record *rec, dsk_err *err)
{
    if (r->done)
        return 0;
    uint8_t head[8];
    uint64_t at = r->offset;
    int rc = take(r, head, 8, "a record header", err);
    if (rc)
        return rc == EX_DATAERR ? dsk_fail(err, EX_DATAERR, "%s: truncated at offset %llu: no trailer", r->name,
                                           (unsigned long long)at)
                                : rc;
    if (head[0] == DSKT_END) {
        uint8_t t[32];
        if ((rc = take(r, t, 16, "the trailer", err)))
            return rc;
        uint64_t sum = XXH3_64bits_digest(r->hash);
        size_t got = fread(t + 16, 1, 16, r->f);
        if (got != 16)
            return dsk_fail(err, EX_DATAERR, "%s: truncated at offset %llu (in the trailer)", r->name,
                            (unsigned long long)(r->offset + got));
        if (get64(t) != r->records || get64(t + 8) != r->tokens)
            return dsk_fail(err, EX_DATAERR, "%s: trailer counts %llu records, %llu tokens; the stream has %llu, %llu",
                            r->name, (unsigned long long)get64(t), (unsigned long long)get64(t + 8),
                            (unsigned long long)r->records, (unsigned long long)r->tokens);
        if (memcmp(t + 24, "TKSD\0\0\0\0", 8) != 0)   /* the end mark, and 4 bytes that are 0 */
            return dsk_fail(err, EX_DATAERR, "%s: the trailer does not end with \"TKSD\" and four zero bytes: "
                            "the stream is corrupt", r->name);
        if (get64(t + 16) != sum)
            return dsk_fail(err, EX_DATAERR, "%s: checksum mismatch: the stream is corrupt", r->name);
        if (fgetc(r->f) != EOF)
            return dsk_fail(err, EX_DATAERR, "%s: data after the trailer at offset %llu", r->name,
                            (unsigned long long)(r->offset + 16));
        r->done = 1;
        return 0;
    }
    rec->kind = head[0];
    rec->split = head[1];
    rec->n_tokens = get32(head + 4);
    if (rec->kind < DSKT_PLAIN || rec->kind > DSKT_PREFERENCE || rec->split > DSKT_TEST || get16(head + 2))
        return dsk_fail(err, EX_DATAERR, "%s: bad record header at offset %llu", r->name, (unsigned long long)at);
    if (rec->n_tokens > DSKT_MAX_RECORD_TOKENS)
        return dsk_fail(err, EX_DATAERR, "%s: record at offset %llu claims %u tokens, over the limit of %u", r->name,
                        (unsigned long long)at, rec->n_tokens, DSKT_MAX_RECORD_TOKENS);
    rec->n_prompt = rec->n_chosen = 0;
    if (rec->kind == DSKT_PREFERENCE) {
        uint8_t pc[8];
        if ((rc = take(r, pc, 8, "a record header", err)))
            return rc;
        rec->n_prompt = get32(pc);
        rec->n_chosen = get32(pc + 4);
        if ((uint64_t)rec->n_prompt + rec->n_chosen > rec->n_tokens)
            return dsk_fail(err, EX_DATAERR, "%s: preference record at offset %llu has bad part lengths", r->name,
                            (unsigned long long)at);
    }
    size_t tb = r->h.token_bytes, n = (size_t)rec->n_tokens * tb;
    size_t mask_bytes = rec->kind == DSKT_CHAT ? (rec->n_tokens + 7) / 8 : 0;
    reserve_tokens(rec, rec->n_tokens ? rec->n_tokens : 1);
    uint8_t *p = room(&r->buf, &r->cap, n + mask_bytes + 1);
    if ((rc = take(r, p, n + mask_bytes, "a record", err)))
        return rc;
    if (rec->n_tokens && dsk_tokens_widen(rec->tokens, p, rec->n_tokens, (unsigned)tb) >= r->h.vocab_size)
        for (uint32_t i = 0; i < rec->n_tokens; i++)
            if (rec->tokens[i] >= r->h.vocab_size)
                return dsk_fail(err, EX_DATAERR, "%s: token %u at offset %llu is not below the vocab size %u",
                                r->name, rec->tokens[i], (unsigned long long)(at + 8 + i * tb), r->h.vocab_size);
    if (mask_bytes)
        for (uint32_t i = 0; i < rec->n_tokens; i++)
            rec->mask[i] = (p[n + i / 8] >> (i % 8)) & 1;
    else
        memset(rec->mask, 0, rec->n_tokens);
    r->records++;
    r->tokens += rec->n_tokens;
    return 1;
}

void dskt_reader_close(dskt_reader *r)
{
    if (r->hash)
        XXH3_freeState(r->hash);
    free(r->buf);
    r->hash = NULL;
    r->buf = NULL;
}

void dskt_record_free(dskt_record *rec)
{
    free(rec->tokens);
    free(rec->mask);
    memset(rec, 0, sizeof *rec);
}
