/* Shared between the dsk-clean engine's files: the batch that travels
 * through the ordered pipeline and the per-thread worker state. */
#ifndef DSK_CLEAN_INTERNAL_H
#define DSK_CLEAN_INTERNAL_H

#include "core/split.h"
#include "clean/clean.h"
#include "clean/minhash.h"
#include "core/buf.h"
#include "text/words.h"

enum { DOC_KEEP, DOC_DROP, DOC_FAIL };
enum { KIND_PLAIN, KIND_CHAT, KIND_PREFERENCE };
enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST };

typedef struct doc_slot {
    /* input */
    const char *source;
    uint64_t line_no;
    size_t raw_off, raw_len;  /* in batch.raw */
    /* results */
    int status, kind, split;
    const char *rule;         /* the rule that dropped it (static or a rule's name) */
    size_t msg_off;           /* DOC_FAIL: the message, in batch.msgs */
    size_t out_off, out_len;  /* the serialized document in batch.out */
    size_t text_bytes;        /* cleaned text bytes (kept documents) */
    uint64_t hash_lo, hash_hi;
    size_t bands_off;         /* in batch.bands; has_bands says if set */
    int has_bands;
    int utf8_repaired;
    uint32_t escapes, controls, c4_lines, replacements;
} doc_slot;

typedef struct clean_batch {
    dsk_record_batch in;  /* the raw records */
    doc_slot *docs;       /* one per record */
    size_t n, cap;
    dsk_buf out;
    dsk_buf msgs;  /* error messages, each NUL-terminated */
    uint64_t *bands;
    size_t cap_bands;
    uint64_t bytes_done;  /* input bytes read when this batch was produced */
} clean_batch;

typedef struct clean_worker {
    dsk_buf repaired, scratch, text, c4_out, joined, field, repl;
    size_t content_bytes;   /* of a chat or preference record's strings, after cleaning */
    dsk_text_view view, view_c4;  /* the second holds C4's output, then they swap */
    int view_current;  /* view describes the current document's text */
    dsk_filter_scratch fscratch;
    dsk_rules_matcher matcher;
    uint32_t *sig;       /* MinHash signature */
    uint64_t *shingles;
    size_t cap_shingles;
} clean_worker;

typedef struct clean_ctx {
    const dsk_clean_config *cfg;
    dsk_minhash minhash;
    int want_rejects;
} clean_ctx;

void clean_worker_init(clean_worker *w, const clean_ctx *ctx);
void clean_worker_free(clean_worker *w);
/* Does all per-document work that does not depend on other documents. */
void clean_doc(clean_worker *w, const clean_ctx *ctx, clean_batch *b, doc_slot *d);


#endif
