/* Choosing a backend by name: "cpu", or "cuda" (optionally "cuda:N")
 * when the build found nvcc (DSK_HAVE_CUDA, set by the Makefile for this
 * file only, so the sanitizer and fuzz builds stay CPU-only). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "ops/backend.h"
#ifdef DSK_HAVE_CUDA
#include "../../cuda/cuda_backend.h"
#endif

dsk_backend *dsk_backend_new(const char *name, int threads, dsk_err *err)
{
    if (!strcmp(name, "cpu"))
        return dsk_backend_cpu(threads);
    if (!strncmp(name, "cuda", 4) && (name[4] == '\0' || name[4] == ':')) {
#ifdef DSK_HAVE_CUDA
        int device = 0;
        if (name[4] == ':') {
            char *end;
            long d = strtol(name + 5, &end, 10);
            if (end == name + 5 || *end || d < 0 || d > 1024) {
                dsk_fail(err, EX_USAGE, "backend '%s': want cuda or cuda:N (N a device index)", name);
                return NULL;
            }
            device = (int)d;
        }
        return dsk_cuda_backend_new(device, err);
#else
        dsk_fail(err, EX_UNAVAILABLE, "backend '%s': built without CUDA (nvcc was not found at build time)", name);
        return NULL;
#endif
    }
    dsk_fail(err, EX_USAGE, "unknown backend '%s' (known: cpu, cuda)", name);
    return NULL;
}

dsk_backend *dsk_backend_open(const char *name, int threads, char *err, size_t err_len)
{
    dsk_err e = {0};
    dsk_backend *be = dsk_backend_new(name, threads, &e);
    if (!be)
        snprintf(err, err_len, "%s", e.msg);
    return be;
}

const char *dsk_backend_default(void)
{
#ifdef DSK_HAVE_CUDA
    static int cached = -1;
    if (cached < 0)
        cached = dsk_cuda_available(NULL, 0);
    return cached ? "cuda" : "cpu";
#else
    return "cpu";
#endif
}
