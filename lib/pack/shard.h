/* One dataset shard: an LMDB environment in a single file (MDB_NOSUBDIR)
 * with the named databases meta, train, val and test.  Row keys are the
 * row's index within its split, 8 bytes big-endian, so a shard holds a
 * contiguous range of each split and LMDB's append mode fills pages whole.
 *
 * Writers use no lock file (one process writes a shard, in a temporary
 * directory) and sync once at the end.  Readers open read-only with
 * MDB_NOTLS (read transactions are not tied to threads), MDB_NOLOCK (a
 * finished dataset never changes, so it works on read-only and shared
 * filesystems) and MDB_NORDAHEAD (rows are read at random). */
#ifndef DSK_PACK_SHARD_H
#define DSK_PACK_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "pack/pack.h"

typedef struct dsk_shard {
    void *env;              /* MDB_env */
    void *txn;              /* writer: the open write transaction */
    unsigned dbi[1 + DSK_SPLITS];  /* meta, train, val, test */
    char *path;
    uint64_t committed_bytes, pending_bytes;  /* writer: size estimate */
    unsigned page_size;
    const void *map;        /* reader: the file's map, which every value must lie in (NULL: not found, unchecked) */
    size_t map_bytes;
} dsk_shard;

int dsk_shard_create(dsk_shard *s, const char *path, uint64_t map_size, dsk_err *err);
int dsk_shard_put(dsk_shard *s, int split, uint64_t index, const void *value, size_t len, dsk_err *err);
int dsk_shard_put_meta(dsk_shard *s, const char *key, const void *value, size_t len, dsk_err *err);
/* Bytes the shard's file will take, rows pending included (an estimate). */
uint64_t dsk_shard_size_estimate(const dsk_shard *s);
/* Commits, syncs and closes; *bytes gets the file size. */
int dsk_shard_finish(dsk_shard *s, uint64_t *bytes, dsk_err *err);
void dsk_shard_abort(dsk_shard *s);

int dsk_shard_open(dsk_shard *s, const char *path, dsk_err *err);
/* A read transaction for one thread (MDB_txn *). */
int dsk_shard_begin(dsk_shard *s, void **txn, dsk_err *err);
void dsk_shard_end(void *txn);
/* Looks up a row (split >= 0) or a meta key (split = -1, key as text);
 * returns 0 with value pointing into the map, EX_DATAERR if missing. */
int dsk_shard_get(dsk_shard *s, void *txn, int split, uint64_t index, const char *meta_key, const void **value,
                  size_t *len, dsk_err *err);
/* Rows of a split in this shard, and its first and last keys (0 rows: 0). */
int dsk_shard_range(dsk_shard *s, void *txn, int split, uint64_t *rows, uint64_t *first, uint64_t *last,
                    dsk_err *err);
void dsk_shard_close(dsk_shard *s);

#endif
