/* An open-addressing hash map from 64-bit keys (already hashes) to 64-bit
 * values, with linear probing.  Key 0 is reserved internally: a caller's 0
 * is stored as 1, which for hash keys only merges two of 2^64 values.
 * Clearing is O(capacity); filters reuse one map per thread. */
#ifndef DSK_CORE_U64MAP_H
#define DSK_CORE_U64MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct dsk_u64map {
    uint64_t *keys;
    uint64_t *vals;
    size_t cap;  /* power of two */
    size_t count;
} dsk_u64map;

void dsk_u64map_init(dsk_u64map *m, size_t expected);
void dsk_u64map_free(dsk_u64map *m);
void dsk_u64map_clear(dsk_u64map *m, size_t expected);
/* Returns a pointer to the value for key, inserting 0 if absent; *is_new
 * (when given) says which. */
uint64_t *dsk_u64map_upsert(dsk_u64map *m, uint64_t key, int *is_new);
/* Returns the value pointer or NULL. */
uint64_t *dsk_u64map_find(const dsk_u64map *m, uint64_t key);
size_t dsk_u64map_bytes(const dsk_u64map *m);

#endif
