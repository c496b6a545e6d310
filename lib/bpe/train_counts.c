/* Pre-token counting for BPE training, with bounded memory. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "bpe/train.h"
#include "core/hash.h"

void dsk_bpe_counts_init(dsk_bpe_counts *c, size_t max_words)
{
    memset(c, 0, sizeof *c);
    c->max_words = max_words < 1024 ? 1024 : max_words;
}

void dsk_bpe_counts_free(dsk_bpe_counts *c)
{
    free(c->pool);
    free(c->off);
    free(c->count);
    free(c->table);
    free(c->table_hash);
    memset(c, 0, sizeof *c);
}

static const char *word_bytes(const dsk_bpe_counts *c, size_t i, size_t *len)
{
    *len = (size_t)(c->off[i] & 0xFFFFFF);
    return c->pool + (c->off[i] >> 24);
}

static void table_rebuild(dsk_bpe_counts *c, size_t cap)
{
    free(c->table);
    free(c->table_hash);
    c->table_cap = cap;
    c->table = dsk_xcalloc(cap, sizeof *c->table);
    c->table_hash = dsk_xmalloc(cap * sizeof *c->table_hash);
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        const char *w = word_bytes(c, i, &len);
        uint64_t h = dsk_hash64(w, len);
        size_t j = (size_t)h & (cap - 1);
        while (c->table[j])
            j = (j + 1) & (cap - 1);
        c->table[j] = (uint32_t)i + 1;
        c->table_hash[j] = h;
    }
}

static int by_count(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Drops the rarer half: every word with a count <= the median.  When
 * the median is the largest count (more than half share it, and that
 * would drop every word), the words below it go, and of those at it the
 * ones with the smaller content hashes, until half are gone: neither
 * everything, nor the words that came last. */
static void prune(dsk_bpe_counts *c)
{
    uint64_t *sorted = dsk_xmalloc(c->n * sizeof *sorted);
    memcpy(sorted, c->count, c->n * sizeof *sorted);
    qsort(sorted, c->n, sizeof *sorted, by_count);
    uint64_t threshold = sorted[c->n / 2], largest = sorted[c->n - 1];
    free(sorted);
    /* A word at the threshold goes when its hash is at most tie_cut
     * (every such word, unless they are all the largest). */
    uint64_t tie_cut = UINT64_MAX;
    int ties_by_hash = threshold == largest;
    if (ties_by_hash) {
        size_t below = 0, tied = 0;
        uint64_t *h = dsk_xmalloc(c->n * sizeof *h);
        for (size_t i = 0; i < c->n; i++) {
            size_t len;
            const char *w = word_bytes(c, i, &len);
            if (c->count[i] < threshold)
                below++;
            else
                h[tied++] = dsk_hash64(w, len);
        }
        qsort(h, tied, sizeof *h, by_count);
        size_t drop = c->n / 2 > below ? c->n / 2 - below : 0;   /* ties to drop, 0 <= drop < tied */
        if (!drop)
            ties_by_hash = 0, threshold--;   /* the words below are half already: only they go */
        else
            tie_cut = h[drop - 1];
        free(h);
    }
    size_t kept = 0, pool_len = 0;
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        const char *w = word_bytes(c, i, &len);
        int drop = c->count[i] < threshold ||
                   (c->count[i] == threshold && (!ties_by_hash || dsk_hash64(w, len) <= tie_cut));
        if (drop) {
            c->pruned_words++;
            c->pruned_occurrences += c->count[i];
            continue;
        }
        memmove(c->pool + pool_len, w, len);
        c->off[kept] = (uint64_t)pool_len << 24 | len;
        c->count[kept++] = c->count[i];
        pool_len += len;
    }
    c->n = kept;
    c->pool_len = pool_len;
    c->prune_error += threshold;
    table_rebuild(c, c->table_cap);
}

void dsk_bpe_counts_add(dsk_bpe_counts *c, const char *word, size_t len, uint64_t count)
{
    if (len == 0 || len >= (1u << 24))
        return;  /* an empty piece has no pairs; a 16 MiB one is split by the caller (count_piece) */
    if (c->table_cap < 2 * (c->n + 1))
        table_rebuild(c, c->table_cap ? c->table_cap * 2 : 4096);
    uint64_t h = dsk_hash64(word, len);
    size_t j = (size_t)h & (c->table_cap - 1);
    for (uint32_t e; (e = c->table[j]) != 0; j = (j + 1) & (c->table_cap - 1)) {
        size_t l;
        if (c->table_hash[j] == h && memcmp(word_bytes(c, e - 1, &l), word, len) == 0 && l == len) {
            c->count[e - 1] += count;
            return;
        }
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->off = dsk_xrealloc(c->off, c->cap * sizeof *c->off);
        c->count = dsk_xrealloc(c->count, c->cap * sizeof *c->count);
    }
    if (c->pool_len + len > c->pool_cap) {
        c->pool_cap = (c->pool_len + len) * 2 + 65536;
        c->pool = dsk_xrealloc(c->pool, c->pool_cap);
    }
    memcpy(c->pool + c->pool_len, word, len);
    c->off[c->n] = (uint64_t)c->pool_len << 24 | len;
    c->count[c->n] = count;
    c->pool_len += len;
    c->table[j] = (uint32_t)++c->n;
    c->table_hash[j] = h;
    if (c->n > c->max_words)
        prune(c);
}

/* A piece of 16 MiB or more (a very long run of one character, say) is
 * counted in parts that end on character boundaries: the table holds
 * lengths below 2^24, and its pairs are nearly all the piece's anyway. */
static void count_piece(dsk_bpe_counts *c, const char *p, size_t n)
{
    const size_t most = ((size_t)1 << 24) - 1;
    while (n > most) {
        size_t part = most;
        while (part > 0 && ((uint8_t)p[part] & 0xC0) == 0x80)
            part--;
        dsk_bpe_counts_add(c, p, part, 1);
        p += part;
        n -= part;
    }
    dsk_bpe_counts_add(c, p, n, 1);
}

int dsk_bpe_counts_add_text(dsk_bpe_counts *c, const void *re, void *match_data, const char *text, size_t len,
                            dsk_err *err)
{
    size_t off = 0;
    while (off < len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)text, len, off, PCRE2_NO_UTF_CHECK, match_data, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {   /* text the pattern skips is a piece, as encoding takes it */
            count_piece(c, text + off, len - off);
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return dsk_fail(err, EX_DATAERR, "pre-tokenizer: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(match_data);
        size_t end = ov[1];
        if (ov[0] > off)
            count_piece(c, text + off, ov[0] - off);
        if (end == ov[0]) {   /* an empty match: one whole character, as encoding takes it */
            end = ov[0] + 1;
            while (end < len && ((uint8_t)text[end] & 0xC0) == 0x80)
                end++;
        }
        count_piece(c, text + ov[0], end - ov[0]);
        off = end;
    }
    return 0;
}

/* ---- counts.bin ------------------------------------------------------------------- */

static int put(FILE *f, XXH3_state_t *st, const void *p, size_t n)
{
    XXH3_64bits_update(st, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

static void le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint64_t rd64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

int dsk_bpe_counts_write(const dsk_bpe_counts *c, const char *pattern, FILE *f, dsk_err *err)
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    uint8_t head[48];
    memcpy(head, "DSKC", 4);
    size_t plen = strlen(pattern);
    head[4] = 1; head[5] = head[6] = head[7] = 0;       /* version 1 */
    le64(head + 8, plen);
    le64(head + 16, c->n);
    le64(head + 24, c->pruned_words);
    le64(head + 32, c->pruned_occurrences);
    le64(head + 40, c->prune_error);
    int bad = put(f, st, head, sizeof head) || put(f, st, pattern, plen);
    for (size_t i = 0; i < c->n && !bad; i++) {
        size_t len;
        const char *w = word_bytes(c, i, &len);
        uint8_t rec[16];
        le64(rec, c->count[i]);
        le64(rec + 8, len);
        bad = put(f, st, rec, sizeof rec) || put(f, st, w, len);
    }
    uint8_t tail[12];
    le64(tail, XXH3_64bits_digest(st));
    memcpy(tail + 8, "CKSD", 4);
    XXH3_freeState(st);
    if (bad || fwrite(tail, 1, sizeof tail, f) != sizeof tail)
        return dsk_fail(err, EX_IOERR, "write error on the counts file");
    return 0;
}

int dsk_bpe_counts_read(dsk_bpe_counts *c, const char *path, char **pattern, dsk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dsk_fail(err, EX_NOINPUT, "%s: cannot open", path);
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    uint8_t head[48];
    char *buf = NULL;
    int rc = 0;
    uint64_t offset = 0;
#define TAKE(p, n, what)                                                                                      \
    do {                                                                                                      \
        if (fread((p), 1, (n), f) != (n)) {                                                                   \
            rc = dsk_fail(err, EX_DATAERR, "%s: truncated at offset %llu (in %s)", path,                      \
                          (unsigned long long)offset, what);                                                  \
            goto done;                                                                                        \
        }                                                                                                     \
        XXH3_64bits_update(st, (p), (n));                                                                     \
        offset += (n);                                                                                        \
    } while (0)
    TAKE(head, sizeof head, "the header");
    if (memcmp(head, "DSKC", 4) != 0 || head[4] != 1) {
        rc = dsk_fail(err, EX_DATAERR, "%s: not a dsk-bpe counts file (version 1)", path);
        goto done;
    }
    uint64_t plen = rd64(head + 8), n = rd64(head + 16);
    if (plen > 65536) {
        rc = dsk_fail(err, EX_DATAERR, "%s: pattern length %llu is over the limit", path, (unsigned long long)plen);
        goto done;
    }
    *pattern = dsk_xmalloc(plen + 1);
    TAKE(*pattern, plen, "the pattern");
    (*pattern)[plen] = '\0';
    c->pruned_words += rd64(head + 24);
    c->pruned_occurrences += rd64(head + 32);
    c->prune_error += rd64(head + 40);
    size_t cap = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t rec[16];
        TAKE(rec, sizeof rec, "a word");
        uint64_t count = rd64(rec), len = rd64(rec + 8);
        if (len == 0 || len >= (1u << 24)) {
            rc = dsk_fail(err, EX_DATAERR, "%s: word %llu has length %llu", path, (unsigned long long)i,
                          (unsigned long long)len);
            goto done;
        }
        if (cap < len) {
            cap = len * 2;
            buf = dsk_xrealloc(buf, cap);
        }
        TAKE(buf, len, "a word");
        dsk_bpe_counts_add(c, buf, len, count);
    }
    uint8_t tail[12];
    if (fread(tail, 1, sizeof tail, f) != sizeof tail || memcmp(tail + 8, "CKSD", 4) != 0) {
        rc = dsk_fail(err, EX_DATAERR, "%s: truncated at offset %llu: no trailer", path, (unsigned long long)offset);
        goto done;
    }
    if (rd64(tail) != XXH3_64bits_digest(st))
        rc = dsk_fail(err, EX_DATAERR, "%s: checksum mismatch: the file is corrupt", path);
    else if (fgetc(f) != EOF)
        rc = dsk_fail(err, EX_DATAERR, "%s: data after the trailer", path);
#undef TAKE
done:
    XXH3_freeState(st);
    free(buf);
    fclose(f);
    return rc;
}
