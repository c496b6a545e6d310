#include "core/u64map.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Fibonacci hashing: the top bits of key * 2^64/phi, so keys that are not
 * already hashes (pairs of small ids, say) still spread over the table. */
static inline size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

static size_t cap_for(size_t expected)
{
    size_t cap = 16;
    while (cap < expected * 2)
        cap *= 2;
    return cap;
}

void dsk_u64map_init(dsk_u64map *m, size_t expected)
{
    m->cap = cap_for(expected);
    m->keys = dsk_xcalloc(m->cap, sizeof *m->keys);
    m->vals = dsk_xmalloc(m->cap * sizeof *m->vals);
    m->count = 0;
}

void dsk_u64map_free(dsk_u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void dsk_u64map_clear(dsk_u64map *m, size_t expected)
{
    size_t want = cap_for(expected);
    if (!m->keys || want > m->cap || (m->cap > 4096 && want * 8 < m->cap)) {
        dsk_u64map_free(m);
        dsk_u64map_init(m, expected);
        return;
    }
    memset(m->keys, 0, m->cap * sizeof *m->keys);
    m->count = 0;
}

static void grow(dsk_u64map *m)
{
    dsk_u64map old = *m;
    m->cap *= 2;
    m->keys = dsk_xcalloc(m->cap, sizeof *m->keys);
    m->vals = dsk_xmalloc(m->cap * sizeof *m->vals);
    size_t mask = m->cap - 1;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i])
            continue;
        size_t j = slot_of(old.keys[i], m->cap);
        while (m->keys[j])
            j = (j + 1) & mask;
        m->keys[j] = old.keys[i];
        m->vals[j] = old.vals[i];
    }
    free(old.keys);
    free(old.vals);
}

uint64_t *dsk_u64map_upsert(dsk_u64map *m, uint64_t key, int *is_new)
{
    if (!key)
        key = 1;
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    size_t mask = m->cap - 1;
    size_t j = slot_of(key, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == key) {
            if (is_new)
                *is_new = 0;
            return &m->vals[j];
        }
        j = (j + 1) & mask;
    }
    m->keys[j] = key;
    m->vals[j] = 0;
    m->count++;
    if (is_new)
        *is_new = 1;
    return &m->vals[j];
}

uint64_t *dsk_u64map_find(const dsk_u64map *m, uint64_t key)
{
    if (!key)
        key = 1;
    size_t mask = m->cap - 1;
    size_t j = slot_of(key, m->cap);
    while (m->keys[j]) {
        if (m->keys[j] == key)
            return &m->vals[j];
        j = (j + 1) & mask;
    }
    return NULL;
}

size_t dsk_u64map_bytes(const dsk_u64map *m) { return m->cap * (sizeof *m->keys + sizeof *m->vals); }
