/* BPE training: pre-token (word) counting, then merges.
 *
 * Counting splits each document with the pre-tokenizer regex and counts
 * each distinct pre-token with a 64-bit count.  Memory is bounded by
 * max_words distinct pre-tokens: when the table fills, the rarest half is
 * pruned, and the total pruned is reported as an error bound (a surviving
 * word's count is low by at most prune_error).  Counts from several shards
 * (dsk-bpe count) add up exactly.
 *
 * Training starts from the 256 bytes (ids 0-255, in byte order) and merges
 * the most frequent adjacent pair, over all words weighted by their counts,
 * until the vocabulary is full; merged tokens take ids 256, 257, ... in
 * merge order, and special tokens take the ids after the last merge.  Ties
 * go to the pair with the smaller left id, then the smaller right id, so
 * the result depends only on the counts, never on threads or input order. */
#ifndef DSK_BPE_TRAIN_H
#define DSK_BPE_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "bpe/tokenizer.h"

typedef struct dsk_bpe_counts {
    char *pool;
    size_t pool_len, pool_cap;
    uint64_t *off;    /* per word: offset << 24 | length */
    uint64_t *count;
    size_t n, cap;
    uint32_t *table;  /* open addressing: word index + 1 */
    uint64_t *table_hash;
    size_t table_cap;
    size_t max_words;
    uint64_t pruned_words, pruned_occurrences, prune_error;
} dsk_bpe_counts;

void dsk_bpe_counts_init(dsk_bpe_counts *c, size_t max_words);
void dsk_bpe_counts_free(dsk_bpe_counts *c);
void dsk_bpe_counts_add(dsk_bpe_counts *c, const char *word, size_t len, uint64_t count);
/* Splits valid UTF-8 text with the tokenizer's pattern (t->re) and counts the
 * pieces; an empty match counts the character at it. */
int dsk_bpe_counts_add_text(dsk_bpe_counts *c, const void *re, void *match_data, const char *text, size_t len,
                            dsk_err *err);

/* counts.bin (see dsk-bpe(1)): magic, the pattern, words and counts,
 * pruning statistics, a checksum. */
int dsk_bpe_counts_write(const dsk_bpe_counts *c, const char *pattern, FILE *f, dsk_err *err);
/* Adds the counts in path; *pattern receives its pattern (caller frees). */
int dsk_bpe_counts_read(dsk_bpe_counts *c, const char *path, char **pattern, dsk_err *err);

typedef struct dsk_bpe_train_opts {
    uint32_t vocab_size;      /* including the 256 bytes and the specials */
    uint64_t min_frequency;   /* stop when the best pair is rarer */
    const char *const *specials;
    size_t n_specials;
    const char *pattern;
    int verbose;              /* progress on stderr */
} dsk_bpe_train_opts;

int dsk_bpe_train(const dsk_bpe_counts *c, const dsk_bpe_train_opts *o, dsk_tokenizer *out, dsk_err *err);

#endif
