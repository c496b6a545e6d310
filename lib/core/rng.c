#include <math.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void dsk_rng_seed(dsk_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t dsk_rng_next(dsk_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dsk_rng_uniform(dsk_rng *r) { return (double)(dsk_rng_next(r) >> 11) * 0x1.0p-53; }

/* Box-Muller's cosine half, from two uniforms. */
static double box_muller(double u1, double u2)
{
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double dsk_rng_normal(dsk_rng *r)
{
    double u1 = dsk_rng_uniform(r), u2 = dsk_rng_uniform(r);
    return box_muller(u1, u2);
}

void dsk_rng_normal_fill(dsk_rng *r, float *out, size_t n, double scale)
{
    enum { CHUNK = 1 << 18 };
    double *u = dsk_xmalloc(2 * (size_t)CHUNK * sizeof *u);
    for (size_t at = 0; at < n; at += CHUNK) {
        size_t len = n - at < CHUNK ? n - at : CHUNK;
        for (size_t i = 0; i < 2 * len; i++)
            u[i] = dsk_rng_uniform(r);
#pragma omp parallel for schedule(static) if (len >= 4096)
        for (size_t i = 0; i < len; i++)
            out[at + i] = (float)(scale * box_muller(u[2 * i], u[2 * i + 1]));
    }
    free(u);
}
