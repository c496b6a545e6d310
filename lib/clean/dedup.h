/* The deduplication index: exact (128-bit hash of the normalized text) and
 * near (MinHash LSH band keys).  In memory by default, bounded by a byte
 * budget; or in an LMDB file shared by several runs (--dedup-db), so shards
 * cleaned separately dedup against each other.  The first document seen
 * wins; a near duplicate's bands are not added, so clusters do not chain.
 *
 * In LMDB each key's value is the id of the run that added it, and the
 * "runs" table holds the runs not known to have succeeded ('R' running,
 * with its boot id, pid and process start time; 'F' failed): a key of a
 * failed run, or of one whose process is gone, counts as absent (and is
 * taken over), so a run that fails or is killed leaves no documents marked
 * as seen that reached no output.  A run that succeeds deletes its entry;
 * keys of older files (no run id) count as present. */
#ifndef DSK_CLEAN_DEDUP_H
#define DSK_CLEAN_DEDUP_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/u64map.h"

typedef struct dsk_dedup {
    /* memory */
    dsk_u64map exact, bands;
    uint64_t max_bytes;
    /* LMDB */
    void *env, *txn;
    unsigned dbi_exact, dbi_bands, dbi_runs;
    char *path;
    uint64_t run_id;
    dsk_u64map run_state;   /* run id -> whether its keys count (1) or not (0), as found */
} dsk_dedup;

int dsk_dedup_open_memory(dsk_dedup *d, uint64_t max_bytes);
/* params describes the MinHash settings; a database made with different
 * settings is refused. */
int dsk_dedup_open_lmdb(dsk_dedup *d, const char *path, const char *params, dsk_err *err);
/* ok: the run succeeded (its outputs are committed), so its keys stay in
 * effect; else its open batch is dropped and its keys stop counting. */
int dsk_dedup_close(dsk_dedup *d, int ok, dsk_err *err);

/* LMDB work is grouped in one write transaction per batch. */
int dsk_dedup_begin(dsk_dedup *d, dsk_err *err);
int dsk_dedup_commit(dsk_dedup *d, dsk_err *err);

/* Each returns 1 if seen before, 0 if new (and records it), or -1 with err. */
int dsk_dedup_exact(dsk_dedup *d, uint64_t hash_lo, uint64_t hash_hi, dsk_err *err);
/* Near: seen if any band key is known; otherwise all are recorded. */
int dsk_dedup_near(dsk_dedup *d, const uint64_t *band_keys, int n_bands, dsk_err *err);

uint64_t dsk_dedup_memory_bytes(const dsk_dedup *d);

#endif
