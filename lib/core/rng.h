/* A small seeded generator (xoshiro256**, seeded through splitmix64):
 * weight initialisation, sampling and router noise draw from it, and its
 * state is four integers a checkpoint can save. */
#ifndef DSK_CORE_RNG_H
#define DSK_CORE_RNG_H

#include <stdint.h>

typedef struct dsk_rng {
    uint64_t s[4];
} dsk_rng;

void dsk_rng_seed(dsk_rng *r, uint64_t seed);
uint64_t dsk_rng_next(dsk_rng *r);
double dsk_rng_uniform(dsk_rng *r);   /* [0, 1) with 53 random bits */
double dsk_rng_normal(dsk_rng *r);    /* standard normal (Box-Muller, one draw per call) */

#endif
