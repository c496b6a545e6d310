/* Opening the CUDA libraries cuda/ loads at run time (cuBLAS, cuBLASLt:
 * cublas_load.cu; NCCL: comm_nccl.cu), each by its versioned soname so
 * that a run only needs the libraries it uses. */
#include <dlfcn.h>
#include <stdio.h>

#include "cuda_internal.cuh"

void *dsk_cuda_dlopen(const char *soname, char *why, size_t why_len)
{
    /* The binary's run path (the toolkit the build used) and the system's
     * library path, then the toolkit's library directory, for a binary
     * linked without the run path. */
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (h)
        return h;
    char first[384];   /* dlerror() of the search by name says the most */
    const char *e = dlerror();
    snprintf(first, sizeof first, "%s", e ? e : "not found");
#ifdef DSK_CUDA_LIBDIR
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", DSK_CUDA_LIBDIR, soname);
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h)
        return h;
#endif
    if (why)
        snprintf(why, why_len, "cannot load %s: %s", soname, first);
    return NULL;
}
