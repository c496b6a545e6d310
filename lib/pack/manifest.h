/* The dataset MANIFEST (dsk-dataset(5)): what the rows are, where they
 * live, and what made them.  The parser checks every field a reader relies
 * on (sizes, shard names, counts), so a hostile MANIFEST is an error. */
#ifndef DSK_PACK_MANIFEST_H
#define DSK_PACK_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "pack/pack.h"

#define DSK_DATASET_FORMAT "dsk-dataset"
#define DSK_DATASET_VERSION 1
#define DSK_MAX_SHARDS 100000

typedef struct dsk_shard_info {
    char file[32];                  /* shard-NNNNN.mdb */
    uint64_t bytes;
    uint64_t first[DSK_SPLITS];     /* global index of the shard's first row, per split */
    uint64_t rows[DSK_SPLITS];
} dsk_shard_info;

typedef struct dsk_manifest {
    int kind;                       /* DSK_KIND_* */
    int pack_mode;                  /* DSK_PACK_*: concat or bestfit for pretraining data */
    uint32_t seq_len, row_tokens;   /* row_tokens: seq_len + 1, twice that for DPO pairs */
    uint32_t vocab_size, token_bytes, eot;
    char fingerprint[33];
    int zstd_level;
    uint32_t dict_bytes;            /* 0: no dictionary */
    uint64_t rows[DSK_SPLITS];
    dsk_pack_stats stats[DSK_SPLITS];
    int no_stats;                   /* read from a MANIFEST without "stats" (they are optional) */
    dsk_shard_info *shards;
    size_t n_shards;
    char *tokenizer;                /* file name in the directory, or NULL */
    char *command, *created_by;
} dsk_manifest;

/* Appends the MANIFEST text (pretty JSON, one trailing newline). */
void dsk_manifest_write(const dsk_manifest *m, dsk_buf *out);
int dsk_manifest_parse(dsk_manifest *m, const char *text, size_t len, const char *name, dsk_err *err);
/* 0 when DIR holds a MANIFEST; else EX_NOINPUT naming what DIR is (missing,
 * not a directory, or without one). */
int dsk_manifest_present(const char *dir, dsk_err *err);
int dsk_manifest_load(dsk_manifest *m, const char *dir, dsk_err *err);
void dsk_manifest_free(dsk_manifest *m);

#endif
