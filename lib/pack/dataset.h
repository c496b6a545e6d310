/* Reading a dataset (dsk-dataset(5)): what dsk-train, dsk-eval and
 * dsk-quant use.
 *
 *   dsk_dataset_open   checks the MANIFEST against every shard's own
 *                      record and opens the shards read-only, mapped
 *   dsk_dataset_read   row i of a split (one reader per thread)
 *   dsk_loader_*       the rows of a split in a deterministic shuffled
 *                      order per epoch, partitioned over data-parallel
 *                      ranks, decoded ahead on background threads, with a
 *                      cursor a checkpoint saves and restores exactly */
#ifndef DSK_PACK_DATASET_H
#define DSK_PACK_DATASET_H

#include <stdint.h>

#include "core/err.h"
#include "pack/manifest.h"
#include "pack/row.h"
#include "pack/shard.h"

typedef struct dsk_dataset {
    char *dir;
    dsk_manifest m;
    dsk_shard *shards;
    void *ddict;            /* ZSTD_DDict, or NULL without a dictionary */
} dsk_dataset;

int dsk_dataset_open(dsk_dataset *ds, const char *dir, dsk_err *err);
/* Fails unless the dataset was made with this tokenizer. */
int dsk_dataset_check_tokenizer(const dsk_dataset *ds, const char *fingerprint_hex, uint32_t vocab_size,
                                dsk_err *err);
void dsk_dataset_close(dsk_dataset *ds);

/* Per-thread read state: a read transaction per shard and a decoder. */
typedef struct dsk_dataset_reader {
    const dsk_dataset *ds;
    void **txns;
    dsk_row_codec codec;
} dsk_dataset_reader;

void dsk_dataset_reader_init(dsk_dataset_reader *r, const dsk_dataset *ds);
/* The stored value of a row (valid while the reader lives). */
int dsk_dataset_raw(dsk_dataset_reader *r, int split, uint64_t index, const void **value, size_t *len,
                    dsk_err *err);
/* Row index of split, decoded and checked (tokens < vocab, row_tokens long). */
int dsk_dataset_read(dsk_dataset_reader *r, int split, uint64_t index, dsk_row *row, dsk_err *err);
void dsk_dataset_reader_free(dsk_dataset_reader *r);

/* ---- ordered reading --------------------------------------------------------------------- */

/* Where a loader is: the next row it returns is position pos of epoch
 * epoch in this rank's order. */
typedef struct dsk_data_cursor {
    uint64_t epoch, pos;
} dsk_data_cursor;

typedef struct dsk_loader_opts {
    int split;
    int shuffle;            /* 0: rows in stored order */
    uint64_t seed;
    unsigned rank, world;   /* data-parallel rank of world (world 0 means 1) */
    unsigned prefetch;      /* rows decoded ahead (0: decode on the caller's thread) */
    unsigned threads;       /* decoding threads when prefetching (0 means 1) */
} dsk_loader_opts;

typedef struct dsk_loader dsk_loader;

/* at: where to start (NULL: epoch 0, position 0). */
int dsk_loader_open(dsk_loader **l, const dsk_dataset *ds, const dsk_loader_opts *o, const dsk_data_cursor *at,
                    dsk_err *err);
/* The next row (swapped into *row: keep passing the same dsk_row) and its
 * index in the split; epochs follow one another without end. */
int dsk_loader_next(dsk_loader *l, dsk_row *row, uint64_t *index, dsk_err *err);
dsk_data_cursor dsk_loader_cursor(const dsk_loader *l);
/* Rows each rank reads per epoch: rows / world (the permuted remainder,
 * different every epoch, is left out so every rank takes the same steps). */
uint64_t dsk_loader_epoch_rows(const dsk_loader *l);
void dsk_loader_close(dsk_loader *l);

/* Position i of a seeded permutation of [0, n) for one epoch: a keyed
 * Feistel network with cycle walking, so no table is ever built. */
uint64_t dsk_permute(uint64_t i, uint64_t n, uint64_t seed, uint64_t epoch);

#endif
