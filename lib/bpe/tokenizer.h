/* A byte-level BPE tokenizer: the vocabulary (id -> bytes), a hash index
 * (bytes -> id), special tokens, and the pre-tokenizer regex.
 *
 * Merge priority is the id: a lower id was merged earlier.  That holds for
 * tiktoken rank files (rank = id), GPT-2's encoder.json and the tokenizers
 * dsk-bpe trains, and is what makes encoding identical to tiktoken's:
 * within each pre-token, repeatedly merge the adjacent pair whose
 * concatenation has the lowest id, leftmost first on ties. */
#ifndef DSK_BPE_TOKENIZER_H
#define DSK_BPE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define DSK_BPE_MAX_VOCAB (1u << 24)
#define DSK_BPE_NO_TOKEN UINT32_MAX

typedef struct dsk_bpe_special {
    char *text;
    uint32_t id;
} dsk_bpe_special;

typedef struct dsk_tokenizer {
    uint32_t n_vocab;     /* ids are 0 .. n_vocab-1; some may be unused */
    uint32_t cap_vocab;   /* allocated entries of tok and is_special */
    char *pool;           /* token bytes, back to back */
    size_t pool_len, pool_cap;
    uint64_t *tok;        /* per id: offset << 24 | length; 0 = unused */
    uint8_t *is_special;  /* per id */
    struct dsk_bpe_slot *index;  /* bytes -> id for tokens of 3 bytes or more (tokenizer.c) */
    size_t index_cap;
    uint32_t byte_id[256];
    uint32_t *pair_id;    /* 65536: the id of the 2-byte token b0 | b1 << 8, or DSK_BPE_NO_TOKEN */
    dsk_bpe_special *specials;  /* longest text first */
    size_t n_specials;
    char *pattern;        /* pre-tokenizer regex */
    void *re;             /* pcre2_code_8 */
    int re_jit;           /* re is JIT-compiled: matched through pcre2_jit_match */
    char *name;
} dsk_tokenizer;

void dsk_tokenizer_init(dsk_tokenizer *t);
void dsk_tokenizer_free(dsk_tokenizer *t);

/* Building: add tokens with their ids, then specials, then the pattern,
 * then dsk_tokenizer_finish checks completeness (all 256 bytes present). */
int dsk_tokenizer_add(dsk_tokenizer *t, uint32_t id, const void *bytes, size_t len, dsk_err *err);
int dsk_tokenizer_add_special(dsk_tokenizer *t, uint32_t id, const char *text, dsk_err *err);
int dsk_tokenizer_set_pattern(dsk_tokenizer *t, const char *pattern, dsk_err *err);
int dsk_tokenizer_finish(dsk_tokenizer *t, dsk_err *err);

/* The named pre-tokenizer patterns: "gpt2", "cl100k", "o200k"; NULL if unknown. */
const char *dsk_bpe_named_pattern(const char *name);

/* id of the token with these bytes, or DSK_BPE_NO_TOKEN. */
uint32_t dsk_tokenizer_lookup(const dsk_tokenizer *t, const void *bytes, size_t len);
/* id of the special token with this text, or DSK_BPE_NO_TOKEN. */
uint32_t dsk_tokenizer_special(const dsk_tokenizer *t, const char *text);

static inline const char *dsk_tokenizer_bytes(const dsk_tokenizer *t, uint32_t id, size_t *len)
{
    uint64_t e = id < t->n_vocab ? t->tok[id] : 0;
    *len = (size_t)(e & 0xFFFFFF);
    return t->pool + (e >> 24);
}

/* Per-thread encoding state. */
typedef struct dsk_bpe_encoder {
    void *match_data;
    uint32_t *ids;
    size_t n_ids, cap_ids;
    void *work;  /* merge scratch */
    size_t work_cap;
    struct dsk_bpe_cached_piece *piece_cache;  /* pieces that merge into several tokens (tokenizer.c) */
    size_t n_merged;                           /* pieces merged before the cache was made */
} dsk_bpe_encoder;

void dsk_bpe_encoder_init(dsk_bpe_encoder *e, const dsk_tokenizer *t);
void dsk_bpe_encoder_free(dsk_bpe_encoder *e);

/* Encodes UTF-8 text, appending to e->ids (invalid UTF-8 is an error,
 * EX_DATAERR).  With allow_special, special-token text becomes the
 * special id; otherwise it is plain text. */
int dsk_bpe_encode(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len, int allow_special,
                   dsk_err *err);

/* Where the last pre-token of UTF-8 text begins (the pattern's last
 * match): the pieces before it are, but for the pattern's look-aheads,
 * those of any text that goes on from this one; the last may grow into
 * what follows.  0 for invalid UTF-8. */
size_t dsk_bpe_last_piece(const dsk_tokenizer *t, dsk_bpe_encoder *e, const char *text, size_t len);

/* Encodes one pre-token with the merge rule: a quadratic scan for short
 * pieces, a heap for long ones (n > 128), so 1 MB without a pre-token
 * boundary stays O(n log n).  The _with form picks the method (tests). */
void dsk_bpe_encode_piece(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n);
void dsk_bpe_encode_piece_with(const dsk_tokenizer *t, dsk_bpe_encoder *e, const uint8_t *p, size_t n, int use_heap);

/* Appends the bytes of ids to out; an unknown id is an error. */
int dsk_bpe_decode(const dsk_tokenizer *t, const uint32_t *ids, size_t n, dsk_buf *out, dsk_err *err);

/* A hash of the canonical content (tokens with ids, specials, pattern),
 * as 32 hex digits: the same tokenizer always has the same fingerprint. */
void dsk_tokenizer_fingerprint(const dsk_tokenizer *t, char out[33]);
/* The bytes of text token id stands for (0 for special tokens): bits per
 * byte divide by these. */
static inline uint32_t dsk_tokenizer_text_bytes(const dsk_tokenizer *t, uint32_t id)
{
    return id < t->n_vocab && !t->is_special[id] ? (uint32_t)(t->tok[id] & 0xffffff) : 0;
}
static inline int dsk_tokenizer_is_special(const dsk_tokenizer *t, uint32_t id)
{
    return id < t->n_vocab && t->is_special[id];
}

#endif
