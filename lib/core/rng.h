/* A small seeded generator (xoshiro256**, seeded through splitmix64):
 * weight initialisation, sampling and router noise draw from it, and its
 * state is four integers a checkpoint can save. */
#ifndef DSK_CORE_RNG_H
#define DSK_CORE_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct dsk_rng {
    uint64_t s[4];
} dsk_rng;

void dsk_rng_seed(dsk_rng *r, uint64_t seed);
uint64_t dsk_rng_next(dsk_rng *r);
double dsk_rng_uniform(dsk_rng *r);   /* [0, 1) with 53 random bits */
double dsk_rng_normal(dsk_rng *r);    /* standard normal (Box-Muller, one draw per call) */
/* n standard normals times scale, as n calls of dsk_rng_normal would give
 * them (the same bits, in the same order, and r left in the same state),
 * rounded to float: the uniforms drawn in order, the transforms (log,
 * sqrt, cos: most of the time) spread over OpenMP's threads. */
void dsk_rng_normal_fill(dsk_rng *r, float *out, size_t n, double scale);

#endif
