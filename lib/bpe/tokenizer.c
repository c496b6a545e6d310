#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe/tokenizer.h"
#include "text/utf8.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/hash.h"

/* The published pre-tokenizer regexes (tiktoken's), by name. */
static const struct {
    const char *name, *pattern;
} named_patterns[] = {
    {"gpt2", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    {"cl100k", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"o200k", "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
              "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
              "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|"
              "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

const char *dsk_bpe_named_pattern(const char *name)
{
    for (size_t i = 0; i < sizeof named_patterns / sizeof named_patterns[0]; i++)
        if (strcasecmp(name, named_patterns[i].name) == 0)   /* CL100K is the name, not a regex of its letters */
            return named_patterns[i].pattern;
    return NULL;
}

void dsk_tokenizer_init(dsk_tokenizer *t)
{
    memset(t, 0, sizeof *t);
    for (int i = 0; i < 256; i++)
        t->byte_id[i] = DSK_BPE_NO_TOKEN;
}

void dsk_tokenizer_free(dsk_tokenizer *t)
{
    free(t->pool);
    free(t->tok);
    free(t->is_special);
    free(t->index);
    free(t->pair_id);
    for (size_t i = 0; i < t->n_specials; i++)
        free(t->specials[i].text);
    free(t->specials);
    free(t->pattern);
    free(t->name);
    if (t->re)
        pcre2_code_free(t->re);
    memset(t, 0, sizeof *t);
}

/* The index, bytes -> id.  Encoding spends most of its time here (a
 * lookup for every pair a merge considers), so:
 *   - 1-byte tokens are byte_id[] and 2-byte ones pair_id[] (256 KB,
 *     mostly in L2: a word's merges start with all its byte pairs);
 *   - longer ones are in a hash table, open addressing over 16-byte
 *     slots, at most half full.  A token of at most 8 bytes, most of
 *     them, is its own key: its bytes, zero-padded, beside its length,
 *     and its lookup reads one slot and nothing else.  A longer token's
 *     key is its 64-bit hash, confirmed against its bytes in the pool. */
typedef struct dsk_bpe_slot {
    uint64_t key;
    uint32_t len;
    uint32_t id_plus1;  /* 0: empty */
} dsk_bpe_slot;

enum { INLINE_KEY_BYTES = 8 };

/* The first n <= 8 bytes at p as a little-endian word, zero above them,
 * without reading past p + n: two overlapping loads (the bytes they share
 * land in the same place in both). */
static inline uint64_t short_key(const uint8_t *p, size_t n)
{
    if (n >= 4) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + n - 4, 4);
        return lo | (uint64_t)hi << (8 * (n - 4));
    }
    if (n == 0)
        return 0;
    return p[0] | (uint64_t)p[n / 2] << (8 * (n / 2)) | (uint64_t)p[n - 1] << (8 * (n - 1));
}

static inline uint64_t key_of(const void *bytes, size_t len)
{
    return len <= INLINE_KEY_BYTES ? short_key(bytes, len) : dsk_hash64(bytes, len);
}

/* A short key is not yet mixed: multiply and fold (the high bits of the
 * product depend on every bit of the key). */
static inline size_t slot_of(uint64_t key, size_t len, size_t cap)
{
    uint64_t h = (key ^ len) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ h >> 29) & (cap - 1);
}

static void index_insert(dsk_tokenizer *t, uint32_t id)
{
    size_t len;
    const char *b = dsk_tokenizer_bytes(t, id, &len);
    if (len == 1)
        return;  /* byte_id */
    if (len == 2) {
        if (!t->pair_id) {
            t->pair_id = dsk_xmalloc(65536 * sizeof *t->pair_id);
            memset(t->pair_id, 0xFF, 65536 * sizeof *t->pair_id);
        }
        t->pair_id[short_key((const uint8_t *)b, 2)] = id;
        return;
    }
    uint64_t key = key_of(b, len);
    size_t j = slot_of(key, len, t->index_cap);
    while (t->index[j].id_plus1)
        j = (j + 1) & (t->index_cap - 1);
    t->index[j] = (dsk_bpe_slot){key, (uint32_t)len, id + 1};
}

static void index_grow(dsk_tokenizer *t, size_t want)
{
    size_t cap = 1024;
    while (cap < want * 2)
        cap *= 2;
    if (cap <= t->index_cap)
        return;
    free(t->index);
    t->index = dsk_xcalloc(cap, sizeof *t->index);
    t->index_cap = cap;
    for (uint32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id] && !t->is_special[id])
            index_insert(t, id);
}

uint32_t dsk_tokenizer_special(const dsk_tokenizer *t, const char *text)
{
    for (size_t i = 0; i < t->n_specials; i++)
        if (strcmp(t->specials[i].text, text) == 0)
            return t->specials[i].id;
    return DSK_BPE_NO_TOKEN;
}

/* The id of the token of len >= 3 bytes. */
static uint32_t index_find(const dsk_tokenizer *t, const void *bytes, size_t len)
{
    if (!t->index_cap)
        return DSK_BPE_NO_TOKEN;
    uint64_t key = key_of(bytes, len);
    for (size_t j = slot_of(key, len, t->index_cap);; j = (j + 1) & (t->index_cap - 1)) {
        const dsk_bpe_slot *e = &t->index[j];
        if (!e->id_plus1)
            return DSK_BPE_NO_TOKEN;
        if (e->key != key || e->len != len)
            continue;
        if (len <= INLINE_KEY_BYTES)
            return e->id_plus1 - 1;
        size_t l;
        const char *b = dsk_tokenizer_bytes(t, e->id_plus1 - 1, &l);
        if (memcmp(b, bytes, len) == 0)
            return e->id_plus1 - 1;
    }
}

uint32_t dsk_tokenizer_lookup(const dsk_tokenizer *t, const void *bytes, size_t len)
{
    const uint8_t *b = bytes;
    if (len == 1)
        return t->byte_id[b[0]];
    if (len == 2)
        return t->pair_id ? t->pair_id[short_key(b, 2)] : DSK_BPE_NO_TOKEN;
    return len ? index_find(t, bytes, len) : DSK_BPE_NO_TOKEN;
}

static int add_entry(dsk_tokenizer *t, uint32_t id, const void *bytes, size_t len, int special, dsk_err *err)
{
    if (id >= DSK_BPE_MAX_VOCAB)
        return dsk_fail(err, EX_DATAERR, "token id %u is over the limit of %u", id, DSK_BPE_MAX_VOCAB);
    if (len == 0 || len >= (1u << 24))
        return dsk_fail(err, EX_DATAERR, "token %u has length %zu", id, len);
    if (id >= t->n_vocab) {
        uint32_t n = id + 1;
        if (n > t->cap_vocab) {  /* grow geometrically: ids usually arrive one by one */
            uint32_t cap = t->cap_vocab ? t->cap_vocab : 1024;
            while (cap < n)
                cap *= 2;
            t->tok = dsk_xrealloc(t->tok, cap * sizeof *t->tok);
            t->is_special = dsk_xrealloc(t->is_special, cap);
            t->cap_vocab = cap;
        }
        memset(t->tok + t->n_vocab, 0, (n - t->n_vocab) * sizeof *t->tok);
        memset(t->is_special + t->n_vocab, 0, n - t->n_vocab);
        t->n_vocab = n;
    }
    if (t->tok[id])
        return dsk_fail(err, EX_DATAERR, "token id %u appears twice", id);
    if (!special && dsk_tokenizer_lookup(t, bytes, len) != DSK_BPE_NO_TOKEN)
        return dsk_fail(err, EX_DATAERR, "token %u repeats the bytes of token %u", id,
                        dsk_tokenizer_lookup(t, bytes, len));
    if (t->pool_len + len > t->pool_cap) {
        t->pool_cap = (t->pool_len + len) * 2 + 4096;
        t->pool = dsk_xrealloc(t->pool, t->pool_cap);
    }
    memcpy(t->pool + t->pool_len, bytes, len);
    t->tok[id] = (uint64_t)t->pool_len << 24 | len;
    t->pool_len += len;
    t->is_special[id] = (uint8_t)special;
    if (!special) {
        if (len == 1)
            t->byte_id[*(const uint8_t *)bytes] = id;
        index_grow(t, t->n_vocab);
        index_insert(t, id);
    }
    return 0;
}

int dsk_tokenizer_add(dsk_tokenizer *t, uint32_t id, const void *bytes, size_t len, dsk_err *err)
{
    return add_entry(t, id, bytes, len, 0, err);
}

int dsk_tokenizer_add_special(dsk_tokenizer *t, uint32_t id, const char *text, dsk_err *err)
{
    /* Its text is matched in UTF-8 text and written into tokenizer.json. */
    if (dsk_utf8_find_invalid(text, strlen(text)) < strlen(text))
        return dsk_fail(err, EX_DATAERR, "special token %u is not UTF-8 text", id);
    for (size_t i = 0; i < t->n_specials; i++)   /* one text, one id: else encoding would pick one */
        if (strcmp(t->specials[i].text, text) == 0)
            return dsk_fail(err, EX_DATAERR, "special token '%s' has two ids, %u and %u", text, t->specials[i].id, id);
    int rc = add_entry(t, id, text, strlen(text), 1, err);
    if (rc)
        return rc;
    t->specials = dsk_xrealloc(t->specials, (t->n_specials + 1) * sizeof *t->specials);
    /* keep the longest first, so matching prefers "<|a|b|>" over "<|a|" */
    size_t i = t->n_specials++;
    while (i > 0 && strlen(t->specials[i - 1].text) < strlen(text)) {
        t->specials[i] = t->specials[i - 1];
        i--;
    }
    t->specials[i] = (dsk_bpe_special){dsk_xstrdup(text), id};
    return 0;
}

int dsk_tokenizer_set_pattern(dsk_tokenizer *t, const char *pattern, dsk_err *err)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code, &off,
                                   NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return dsk_fail(err, EX_USAGE, "bad pre-tokenizer pattern: %s at offset %zu", (char *)msg, (size_t)off);
    }
    /* JIT-compiled unless the pattern says (*NO_JIT): then compiling
     * "succeeds" with no code, and only pcre2_match can run it. */
    size_t jit_size = 0;
    t->re_jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0 &&
                pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &jit_size) == 0 && jit_size > 0;
    if (t->re)
        pcre2_code_free(t->re);
    free(t->pattern);
    t->re = re;
    t->pattern = dsk_xstrdup(pattern);
    return 0;
}

int dsk_tokenizer_finish(dsk_tokenizer *t, dsk_err *err)
{
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] == DSK_BPE_NO_TOKEN)
            return dsk_fail(err, EX_DATAERR, "the vocabulary has no token for byte 0x%02X: not a byte-level BPE", b);
    if (!t->re)
        return dsk_fail(err, EX_DATAERR, "the tokenizer has no pre-tokenizer pattern");
    return 0;
}

/* ---- encoding ------------------------------------------------------------------ */

void dsk_bpe_encoder_init(dsk_bpe_encoder *e, const dsk_tokenizer *t)
{
    memset(e, 0, sizeof *e);
    e->match_data = pcre2_match_data_create(4, NULL);
    if (!e->match_data)
        dsk_die(EX_OSERR, "out of memory");
}

void dsk_bpe_encoder_free(dsk_bpe_encoder *e)
{
    pcre2_match_data_free(e->match_data);
    free(e->ids);
    free(e->work);
    free(e->piece_cache);
    memset(e, 0, sizeof *e);
}

static void push_id(dsk_bpe_encoder *e, uint32_t id)
{
    if (e->n_ids == e->cap_ids) {
        e->cap_ids = e->cap_ids ? e->cap_ids * 2 : 1024;
        e->ids = dsk_xrealloc(e->ids, e->cap_ids * sizeof *e->ids);
    }
    e->ids[e->n_ids++] = id;
}

static void *work_space(dsk_bpe_encoder *e, size_t bytes)
{
    if (e->work_cap < bytes) {
        e->work_cap = bytes * 2;
        free(e->work);
        e->work = dsk_xmalloc(e->work_cap);
    }
    return e->work;
}

static uint32_t rank_of(const dsk_tokenizer *t, const uint8_t *p, size_t a, size_t b)
{
    return dsk_tokenizer_lookup(t, p + a, b - a);
}

/* tiktoken's loop for short pieces: boundaries in pos[], rank of the pair
 * starting at part i in rank[i]; merge the lowest, leftmost on ties. */
static void merge_linear(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n)
{
    /* pos: part boundaries; rank[i]: id of parts i and i+1 merged; id[i]: part i's token */
    size_t *pos = work_space(e, (n + 1) * (sizeof(size_t) + 2 * sizeof(uint32_t)));
    uint32_t *rank = (uint32_t *)(pos + n + 1), *id = rank + n + 1;
    size_t parts = n;
    for (size_t i = 0; i <= n; i++)
        pos[i] = i;
    for (size_t i = 0; i < n; i++)
        id[i] = t->byte_id[p[i]];
    for (size_t i = 0; i + 1 < parts; i++)
        rank[i] = rank_of(t, p, pos[i], pos[i + 2]);
    while (parts > 1) {
        size_t best = 0;
        uint32_t best_rank = DSK_BPE_NO_TOKEN;
        for (size_t i = 0; i + 1 < parts; i++)
            if (rank[i] < best_rank) {
                best_rank = rank[i];
                best = i;
            }
        if (best_rank == DSK_BPE_NO_TOKEN)
            break;
        /* drop boundary best+1; part best becomes the merged token */
        id[best] = best_rank;
        memmove(pos + best + 1, pos + best + 2, (parts - best - 1) * sizeof *pos);
        memmove(id + best + 1, id + best + 2, (parts - best > 2 ? parts - best - 2 : 0) * sizeof *id);
        memmove(rank + best + 1, rank + best + 2,
                (parts - best > 2 ? parts - best - 2 : 0) * sizeof *rank);
        parts--;
        if (best + 1 < parts)
            rank[best] = rank_of(t, p, pos[best], pos[best + 2]);
        if (best > 0)
            rank[best - 1] = rank_of(t, p, pos[best - 1], pos[best + 1]);
    }
    for (size_t i = 0; i < parts; i++)
        push_id(e, id[i]);
}

/* The same merges in O(n log n) for long pieces: symbols in a linked list
 * over byte positions, candidate pairs in a min-heap keyed by (rank,
 * position) so ties go to the leftmost, stale entries skipped on pop. */
typedef struct heap {
    uint64_t *a;
    size_t n;
} heap;

static void heap_push(heap *h, uint64_t k)
{
    size_t i = h->n++;
    while (i > 0 && h->a[(i - 1) / 2] > k) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = k;
}

static uint64_t heap_pop(heap *h)
{
    uint64_t top = h->a[0], last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->a[c + 1] < h->a[c])
            c++;
        if (h->a[c] >= last)
            break;
        h->a[i] = h->a[c];
        i = c;
    }
    h->a[i] = last;
    return top;
}

static void merge_heap(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n)
{
    /* per byte position: next/prev symbol start, pair rank; then the heap */
    size_t per = 3 * sizeof(uint32_t);
    uint32_t *next = work_space(e, (n + 1) * per + 3 * n * sizeof(uint64_t) + 16);
    uint32_t *prev = next + n + 1, *pair = prev + n + 1;
    heap h = {(uint64_t *)(((uintptr_t)(pair + n + 1) + 7) & ~(uintptr_t)7), 0};
    for (size_t i = 0; i < n; i++) {
        next[i] = (uint32_t)(i + 1);
        prev[i] = (uint32_t)(i - 1);  /* wraps for i = 0: never read */
    }
    for (size_t i = 0; i + 1 < n; i++) {
        pair[i] = rank_of(t, p, i, i + 2);
        if (pair[i] != DSK_BPE_NO_TOKEN)
            heap_push(&h, (uint64_t)pair[i] << 40 | i);
    }
    pair[n - 1] = DSK_BPE_NO_TOKEN;
    while (h.n) {
        uint64_t k = heap_pop(&h);
        uint32_t r = (uint32_t)(k >> 40);
        size_t left = (size_t)(k & ((1ull << 40) - 1));
        if (pair[left] != r)
            continue;  /* stale: this pair was merged or changed */
        size_t right = next[left], after = next[right];
        next[left] = (uint32_t)after;
        if (after < n)
            prev[after] = (uint32_t)left;
        pair[right] = DSK_BPE_NO_TOKEN;
        pair[left] = after < n ? rank_of(t, p, left, next[after]) : DSK_BPE_NO_TOKEN;
        if (pair[left] != DSK_BPE_NO_TOKEN)
            heap_push(&h, (uint64_t)pair[left] << 40 | left);
        if (left > 0) {
            size_t before = prev[left];
            pair[before] = rank_of(t, p, before, after);
            if (pair[before] != DSK_BPE_NO_TOKEN)
                heap_push(&h, (uint64_t)pair[before] << 40 | before);
        }
    }
    for (size_t i = 0; i < n; i = next[i])
        push_id(e, rank_of(t, p, i, next[i]));
}

void dsk_bpe_encode_piece_with(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n, int use_heap)
{
    if (n == 1)
        push_id(e, t->byte_id[p[0]]);
    else if (use_heap)
        merge_heap(t, e, p, n);
    else
        merge_linear(t, e, p, n);
}

/* The encoder's cache of pieces that are not one token.  Merging a word
 * costs about three index lookups a byte, each likely a cache miss (the
 * index of cl100k is 4 MB), and the same words come back: a hit costs one
 * line.  Direct-mapped by the piece's hash; a piece of at most
 * PIECE_CACHE_BYTES that merges into at most PIECE_CACHE_IDS tokens is
 * kept with its bytes, so a hit is exact.  One 64-byte line an entry.
 * The cache (1 MiB) is made once an encoder has merged PIECE_CACHE_AFTER
 * pieces: one that encodes a short prompt and is freed never needs it. */
enum { PIECE_CACHE_SLOTS = 16384, PIECE_CACHE_BYTES = 30, PIECE_CACHE_IDS = 8, PIECE_CACHE_AFTER = 256 };

typedef struct dsk_bpe_cached_piece {
    uint32_t ids[PIECE_CACHE_IDS];
    uint8_t bytes[PIECE_CACHE_BYTES];
    uint8_t len;  /* 0: empty */
    uint8_t n_ids;
} dsk_bpe_cached_piece;

/* Merges a piece of 2 .. PIECE_CACHE_BYTES bytes, through the cache. */
static void merge_cached(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n)
{
    if (!e->piece_cache)
        e->piece_cache = dsk_xcalloc(PIECE_CACHE_SLOTS, sizeof *e->piece_cache);
    dsk_bpe_cached_piece *c = &e->piece_cache[dsk_hash64(p, n) & (PIECE_CACHE_SLOTS - 1)];
    if (c->len == n && memcmp(c->bytes, p, n) == 0) {
        for (unsigned i = 0; i < c->n_ids; i++)
            push_id(e, c->ids[i]);
        return;
    }
    size_t first = e->n_ids;
    merge_linear(t, e, p, n);
    size_t got = e->n_ids - first;
    if (got <= PIECE_CACHE_IDS) {
        memcpy(c->ids, e->ids + first, got * sizeof *c->ids);
        memcpy(c->bytes, p, n);
        c->len = (uint8_t)n;
        c->n_ids = (uint8_t)got;
    }
}

void dsk_bpe_encode_piece(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n)
{
    if (n == 0)
        return;
    uint32_t whole = dsk_tokenizer_lookup(t, p, n);
    if (whole != DSK_BPE_NO_TOKEN)
        push_id(e, whole);
    else if (n <= PIECE_CACHE_BYTES && (e->piece_cache || ++e->n_merged > PIECE_CACHE_AFTER))
        merge_cached(t, e, p, n);
    else if (n <= 128)
        merge_linear(t, e, p, n);
    else
        merge_heap(t, e, p, n);
}

static void push_bytes(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        push_id(e, t->byte_id[(uint8_t)text[i]]);
}

static int encode_ordinary(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len, dsk_err *err)
{
    size_t off = 0;
    while (off < len) {
        /* pcre2_jit_match: the same match without pcre2_match's checks, a
         * few percent of encoding when pieces are a word each */
        int rc = t->re_jit ? pcre2_jit_match(t->re, (PCRE2_SPTR)text, len, off, 0, e->match_data, NULL)
                           : pcre2_match(t->re, (PCRE2_SPTR)text, len, off, PCRE2_NO_UTF_CHECK, e->match_data, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) {
            /* The published patterns match everything; a custom one may
             * not.  Text between matches is a piece too, as Hugging Face's
             * Split (Isolated) that dsk's tokenizer.json names makes it. */
            dsk_bpe_encode_piece(t, e, (const uint8_t *)text + off, len - off);
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return dsk_fail(err, EX_DATAERR, "pre-tokenizer: %s", (char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->match_data);
        size_t start = ov[0], end = ov[1];
        dsk_bpe_encode_piece(t, e, (const uint8_t *)text + off, start - off);   /* text the pattern skipped */
        if (end == start) {  /* an empty match: take one character as it is */
            end = start + 1;
            while (end < len && ((uint8_t)text[end] & 0xC0) == 0x80)
                end++;
            push_bytes(t, e, text, start, end);
        } else {
            dsk_bpe_encode_piece(t, e, (const uint8_t *)text + start, end - start);
        }
        off = end;
    }
    return 0;
}

size_t dsk_bpe_last_piece(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len)
{
    if (dsk_utf8_find_invalid(text, len) < len)   /* the match below reads valid UTF-8 only */
        return 0;
    size_t off = 0, last = 0;
    while (off < len) {
        int rc = t->re_jit ? pcre2_jit_match(t->re, (PCRE2_SPTR)text, len, off, 0, e->match_data, NULL)
                           : pcre2_match(t->re, (PCRE2_SPTR)text, len, off, PCRE2_NO_UTF_CHECK, e->match_data, NULL);
        if (rc < 0)   /* no match: the rest is one piece (encode_ordinary); an error: all */
            return rc == PCRE2_ERROR_NOMATCH ? off : 0;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->match_data);
        size_t start = ov[0], end = ov[1];
        if (end == start) {   /* an empty match: one character */
            end = start + 1;
            while (end < len && ((uint8_t)text[end] & 0xC0) == 0x80)
                end++;
        }
        last = start;
        off = end;
    }
    return last;
}

int dsk_bpe_encode(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len, int allow_special,
                   dsk_err *err)
{
    /* The pattern is matched without UTF-8 checks (pcre2_jit_match, or
     * PCRE2_NO_UTF_CHECK), which on invalid UTF-8 may read out of bounds:
     * the one check is here, for every caller. */
    size_t bad = dsk_utf8_find_invalid(text, len);
    if (bad < len)
        return dsk_fail(err, EX_DATAERR, "invalid UTF-8 at byte %zu of the text", bad);
    if (!allow_special || !t->n_specials)
        return encode_ordinary(t, e, text, len, err);
    size_t off = 0;
    while (off < len) {
        /* the earliest special, the longest one at that position */
        const char *hit = NULL;
        const dsk_bpe_special *which = NULL;
        for (size_t i = 0; i < t->n_specials; i++) {
            size_t sl = strlen(t->specials[i].text);
            const char *h = memmem(text + off, len - off, t->specials[i].text, sl);
            if (h && (!hit || h < hit)) {
                hit = h;
                which = &t->specials[i];
            }
        }
        size_t stop = hit ? (size_t)(hit - text) : len;
        int rc = encode_ordinary(t, e, text + off, stop - off, err);
        if (rc)
            return rc;
        if (!hit)
            break;
        push_id(e, which->id);
        off = stop + strlen(which->text);
    }
    return 0;
}

int dsk_bpe_decode(const dsk_tokenizer *t, const uint32_t *ids, size_t n, dsk_buf *out, dsk_err *err)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *b = dsk_tokenizer_bytes(t, ids[i], &len);
        if (!len)
            return dsk_fail(err, EX_DATAERR, "token id %u is not in the vocabulary (%u ids)", ids[i], t->n_vocab);
        dsk_buf_add(out, b, len);
    }
    return 0;
}

void dsk_tokenizer_fingerprint(const dsk_tokenizer *t, char out[33])
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_128bits_reset(st);
    for (uint32_t id = 0; id < t->n_vocab; id++) {
        size_t len;
        const char *b = dsk_tokenizer_bytes(t, id, &len);
        if (!len)
            continue;
        uint8_t head[9];
        for (int k = 0; k < 4; k++) {
            head[k] = (uint8_t)(id >> (8 * k));
            head[4 + k] = (uint8_t)(len >> (8 * k));
        }
        head[8] = t->is_special[id];
        XXH3_128bits_update(st, head, sizeof head);
        XXH3_128bits_update(st, b, len);
    }
    if (t->pattern)
        XXH3_128bits_update(st, t->pattern, strlen(t->pattern));
    XXH128_hash_t h = XXH3_128bits_digest(st);
    XXH3_freeState(st);
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h.high64, (unsigned long long)h.low64);
}
