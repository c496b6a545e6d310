/* What the GPU checks share (tests/gpu/test_cuda_gemm_*.c): results
 * brought to the host and the error measure, max |got - want| over
 * max |want|. */
#ifndef DSK_TESTS_GPU_COMPARE_H
#define DSK_TESTS_GPU_COMPARE_H

#include <math.h>
#include <stdlib.h>

#include "ops/backend.h"

/* n floats of device memory in a new host array (the caller frees it). */
static inline float *get(dsk_backend *be, const void *dev, size_t n)
{
    float *h = malloc((n ? n : 1) * sizeof *h);
    be->download(be, h, dev, n * sizeof *h);
    return h;
}

/* Relative to the largest wanted value; INFINITY when either side has a
 * NaN or an infinity (an output left poisoned shows up). */
static inline double rel_err(const float *got, const float *want, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(want[i]))
            return INFINITY;
        double d = fabs((double)got[i] - (double)want[i]);
        num = d > num ? d : num;
        den = fabs((double)want[i]) > den ? fabs((double)want[i]) : den;
    }
    return n == 0 ? 0 : den > 0 ? num / den : num;
}

#endif
