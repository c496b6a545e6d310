/* Hashing: xxHash's XXH3 (libxxhash), inlined for speed. */
#ifndef DSK_CORE_HASH_H
#define DSK_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

static inline uint64_t dsk_hash64(const void *p, size_t n) { return XXH3_64bits(p, n); }
static inline uint64_t dsk_hash64_seed(const void *p, size_t n, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, n, seed);
}

/* Combines an ordered sequence of hashes (n-grams of word hashes). */
static inline uint64_t dsk_hash_combine(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ull + (h << 12) + (h >> 4);
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 32);
}

#endif
