/* MinHash signatures and LSH band keys for near-duplicate detection.
 *
 * Shingles are n-grams of words (default 5), each word lowercased (ASCII)
 * without its surrounding punctuation; punctuation-only words are skipped;
 * a document shorter than n words is one shingle.  Each of bands*rows hash
 * functions is h_i(x) = a_i*x + b_i mod 2^32 (a_i odd) over the low 32
 * bits of the shingle's hash (a mix of all 64), and the signature keeps
 * each function's minimum.  32 bits, as datatrove's: the minima of 8
 * functions take three AVX2 instructions a shingle, where 64-bit ones took
 * a scalar multiply each (MinHash was a quarter of dsk-clean's time).  The
 * coefficients come from a fixed seed, so signatures from separate runs
 * agree (which --dedup-db relies on; DSK_MINHASH_PARAMS names the
 * function family in its settings). */
#ifndef DSK_CLEAN_MINHASH_H
#define DSK_CLEAN_MINHASH_H

#include <stddef.h>
#include <stdint.h>

#include "text/words.h"

#define DSK_MINHASH_MAX_BANDS 64
#define DSK_MINHASH_MAX_ROWS 32
/* What --dedup-db records besides ngram, bands and rows: a database made
 * with other hash functions is refused. */
#define DSK_MINHASH_PARAMS "hash=mul32"

typedef struct dsk_minhash {
    int ngram, bands, rows;
    uint32_t *a, *b;  /* bands*rows coefficients */
} dsk_minhash;

int dsk_minhash_init(dsk_minhash *mh, int ngram, int bands, int rows);
void dsk_minhash_free(dsk_minhash *mh);

/* sig must hold bands*rows values; scratch grows as needed. */
void dsk_minhash_signature(const dsk_minhash *mh, const dsk_text_view *v, uint32_t *sig, uint64_t **scratch,
                           size_t *scratch_cap);
/* One key per band: a hash of the band index and its rows. */
void dsk_minhash_band_keys(const dsk_minhash *mh, const uint32_t *sig, uint64_t *keys);
/* Fraction of equal signature entries: an estimate of Jaccard similarity. */
double dsk_minhash_similarity(const dsk_minhash *mh, const uint32_t *sig_a, const uint32_t *sig_b);
/* 0: the portable loop even where AVX2 is there (tests compare the two;
 * the signatures are the same bits); 1: AVX2 where the CPU has it. */
void dsk_minhash_set_simd(int on);

#endif
