/* cuDNN, loaded at the first use of DSK_CUDA_ATTN=cudnn (dlopen, as
 * cublas_load.cu loads cuBLAS): the entry points attention_cudnn.cu's
 * graphs go through, from libcudnn.so.9 (the graph API's C functions, in
 * libcudnn's small dispatching library; its engines load themselves).
 * A library older than 9.16 is refused (below).  Built without cuDNN's
 * headers (DSK_NO_CUDNN: the Makefile finds no cudnn_graph.h), it says so
 * instead. */
#include <stdio.h>

#ifdef DSK_NO_CUDNN
#include "cuda_internal.cuh"

int dsk_cudnn_load(char *why, size_t why_len)
{
    if (why)
        snprintf(why, why_len, "cannot load libcudnn: dsk was built without cuDNN's headers (cudnn_graph.h)");
    return 0;
}
#else
#include <dlfcn.h>
#include <pthread.h>

#include "cudnn_api.cuh"

dsk_cudnn_api dsk_cudnn;
static pthread_once_t dnn_once = PTHREAD_ONCE_INIT;
static char dnn_error[512];

#define CUDNN_STR_(x) #x
#define CUDNN_STR(x) CUDNN_STR_(x)
#define CUDNN_SONAME "libcudnn.so." CUDNN_STR(CUDNN_MAJOR)

static void dnn_load(void)
{
    void *h = dsk_cuda_dlopen(CUDNN_SONAME, dnn_error, sizeof dnn_error);
    if (!h)
        return;
    struct {
        const char *name;
        void **fn;
    } syms[] = {
        {"cudnnGetVersion", (void **)&dsk_cudnn.GetVersion},
        {"cudnnCreate", (void **)&dsk_cudnn.Create},
        {"cudnnDestroy", (void **)&dsk_cudnn.Destroy},
        {"cudnnSetStream", (void **)&dsk_cudnn.SetStream},
        {"cudnnGetErrorString", (void **)&dsk_cudnn.GetErrorString},
        {"cudnnGetLastErrorString", (void **)&dsk_cudnn.GetLastErrorString},
        {"cudnnBackendCreateDescriptor", (void **)&dsk_cudnn.CreateDescriptor},
        {"cudnnBackendDestroyDescriptor", (void **)&dsk_cudnn.DestroyDescriptor},
        {"cudnnBackendFinalize", (void **)&dsk_cudnn.Finalize},
        {"cudnnBackendSetAttribute", (void **)&dsk_cudnn.SetAttribute},
        {"cudnnBackendGetAttribute", (void **)&dsk_cudnn.GetAttribute},
        {"cudnnBackendExecute", (void **)&dsk_cudnn.Execute},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        *syms[i].fn = dlsym(h, syms[i].name);
        if (!*syms[i].fn) {
            snprintf(dnn_error, sizeof dnn_error, "%s has no %s", CUDNN_SONAME, syms[i].name);
            dlclose(h);
            return;
        }
    }
    /* attention_cudnn.cu's graphs are the ones the frontend writes for 9.16 to 9.20
     * (from 9.21 it writes masks and softmax as single operations, which
     * these still express); before 9.16 it works around the library's
     * bugs in ways these graphs do not (a zeroed dQ accumulator below 9.6,
     * an extra padding mask for rows not a multiple of 128 up to 9.15, no
     * bf16 attention at all in 9.10.0 and 9.10.1), so an older libcudnn.so.9
     * met first on the library path (a Python wheel's, say) is refused. */
    size_t v = dsk_cudnn.GetVersion();
    if (v < 91600) {
        snprintf(dnn_error, sizeof dnn_error, "%s is version %zu.%zu.%zu; 9.16 or later is needed", CUDNN_SONAME,
                 v / 10000, v / 100 % 100, v % 100);
        dlclose(h);
        return;
    }
    dsk_cudnn.loaded = 1;
}

int dsk_cudnn_load(char *why, size_t why_len)
{
    pthread_once(&dnn_once, dnn_load);
    if (!dsk_cudnn.loaded && why)
        snprintf(why, why_len, "%s", dnn_error);
    return dsk_cudnn.loaded;
}
#endif
