/* A "cuda" backend made with one environment variable set for its
 * creation only (the backend reads its DSK_CUDA_* settings then), for the
 * tests of those settings. */
#ifndef DSK_TESTS_GPU_CUDA_WITH_H
#define DSK_TESTS_GPU_CUDA_WITH_H

#include <stdlib.h>

#include "core/err.h"
#include "ops/backend.h"

/* NULL, with *err filled, when the backend refuses the value (or there is
 * no device). */
static inline dsk_backend *cuda_with(const char *var, const char *value, dsk_err *err)
{
    setenv(var, value, 1);
    dsk_backend *be = dsk_backend_new("cuda", 0, err);
    unsetenv(var);
    return be;
}

#endif
