/* The dsk-clean engine: documents in (JSONL or plain-text records), cleaned
 * and filtered documents out, every drop counted by rule.
 *
 * Per document, in this order: UTF-8 check/repair, normalization (escape
 * sequences and controls removed, NFC/NFKC, whitespace), --replace rules,
 * empty check, --drop/--keep rules, Gopher repetition, Gopher quality, C4
 * (may remove lines), FineWeb, length limits, then exact and MinHash
 * deduplication (first occurrence wins) and the split.  Chat and preference
 * records get normalization, replace rules, drop/keep rules and dedup over
 * their joined text, but not the prose quality filters.
 *
 * Work is spread over threads in batches; dedup, counting and output
 * happen in input order, so the output is the same for any thread count. */
#ifndef DSK_CLEAN_CLEAN_H
#define DSK_CLEAN_CLEAN_H

#include <stdint.h>
#include <stdio.h>

#include "clean/filters.h"
#include "clean/rules.h"
#include "core/err.h"
#include "text/normalize.h"
#include "text/records.h"

enum {
    DSK_FILTER_GOPHER_REPETITION = 1,
    DSK_FILTER_GOPHER_QUALITY = 2,
    DSK_FILTER_C4 = 4,
    DSK_FILTER_FINEWEB = 8,
    DSK_FILTER_ALL = 15,
};

enum { DSK_DEDUP_EXACT = 1, DSK_DEDUP_MINHASH = 2 };

typedef enum { DSK_UTF8_FAIL, DSK_UTF8_REPLACE, DSK_UTF8_DROP } dsk_utf8_mode;

typedef struct dsk_clean_config {
    dsk_records_spec records;
    const char *field;  /* JSONL text field, default "text" */
    dsk_utf8_mode utf8;
    dsk_normalize_opts normalize;
    dsk_rules rules;
    unsigned filters;  /* DSK_FILTER_* bits */
    dsk_filter_params params;
    unsigned dedup;    /* DSK_DEDUP_* bits */
    int minhash_ngram, minhash_bands, minhash_rows;
    const char *dedup_db;
    uint64_t dedup_memory;
    double split[3];   /* train, val, test weights */
    uint64_t seed;
    int skip_errors;   /* --on-error skip */
    int threads;
    size_t max_record;
    int quiet;
} dsk_clean_config;

void dsk_clean_config_default(dsk_clean_config *c);
void dsk_clean_config_free(dsk_clean_config *c);

/* Parses "gopher-quality,c4", "all", "none", "-c4" (all but), "+minhash"... */
int dsk_parse_filter_list(const char *arg, unsigned *filters, dsk_err *err);
int dsk_parse_dedup_list(const char *arg, unsigned *dedup, dsk_err *err);

typedef struct dsk_clean_stats dsk_clean_stats;

/* Cleans every input (NULL-terminated list; empty means stdin) to out and,
 * when rejects is not NULL, writes each dropped document there with the
 * rule that dropped it.  Returns 0 or an error code with err set.  *stats
 * is allocated and must be freed with dsk_clean_stats_free.
 * commit_outputs (may be NULL), called once the documents are all
 * written, makes the outputs final; the dedup database (--dedup-db) keeps
 * this run's documents as seen only when it succeeds too. */
typedef int (*dsk_clean_commit_fn)(void *arg, const dsk_clean_stats *stats, dsk_err *err);
int dsk_clean_run(const dsk_clean_config *c, const char *const *inputs, FILE *out, FILE *rejects,
                  dsk_clean_stats **stats, dsk_clean_commit_fn commit_outputs, void *commit_arg, dsk_err *err);

/* Writes the stats as one JSON object (with a trailing newline). */
int dsk_clean_stats_write_json(const dsk_clean_stats *s, FILE *f);
/* The one-paragraph summary for stderr. */
void dsk_clean_stats_print_summary(const dsk_clean_stats *s, FILE *f);
void dsk_clean_stats_free(dsk_clean_stats *s);

#endif
