/* cuBLAS, loaded when a cuda backend is first made (dlopen), not linked:
 * libcublas pulls in libcublasLt (half a gigabyte), whose loading would
 * cost every run of a tool ~0.15 s and ~200 MiB of resident memory even
 * on the CPU backend.  The CUDA runtime itself is linked statically
 * (libcudart_static: it finds the driver, libcuda.so.1, at run time), so
 * a binary built with CUDA starts on a machine without any of it. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "cuda_internal.cuh"

dsk_cublas_api dsk_cublas;

#define STR_(x) #x
#define STR(x) STR_(x)   /* after macro expansion: cublasSgemm is cublasSgemm_v2 */
#define LIBNAME "libcublas.so." STR(CUBLAS_VER_MAJOR)

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[512];

static void load(void)
{
    /* The binary's run path (the toolkit the build used) first, then the
     * system's library path. */
    void *h = dlopen(LIBNAME, RTLD_NOW | RTLD_LOCAL);
#ifdef DSK_CUDA_LIBDIR
    if (!h)
        h = dlopen(DSK_CUDA_LIBDIR "/" LIBNAME, RTLD_NOW | RTLD_LOCAL);
#endif
    if (!h) {
        snprintf(load_error, sizeof load_error, "cannot load %s: %s", LIBNAME, dlerror());
        return;
    }
    int ok = 1;
#define SYM(field, fn)                                                                              \
    do {                                                                                            \
        *(void **)&dsk_cublas.field = dlsym(h, STR(fn));                                            \
        if (!dsk_cublas.field && ok) {                                                              \
            snprintf(load_error, sizeof load_error, "%s has no %s", LIBNAME, STR(fn));              \
            ok = 0;                                                                                 \
        }                                                                                           \
    } while (0)
    SYM(Create, cublasCreate);
    SYM(Destroy, cublasDestroy);
    SYM(SetStream, cublasSetStream);
    SYM(SetMathMode, cublasSetMathMode);
    SYM(Sgemm, cublasSgemm);
    SYM(GemmEx, cublasGemmEx);
    SYM(GetStatusString, cublasGetStatusString);
#undef SYM
    if (ok)
        dsk_cublas.loaded = 1;
    /* The handle stays open for the life of the process. */
}

int dsk_cublas_load(char *why, size_t why_len)
{
    pthread_once(&once, load);
    if (!dsk_cublas.loaded && why)
        snprintf(why, why_len, "%s", load_error);
    return dsk_cublas.loaded;
}
