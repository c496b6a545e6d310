/* cuBLAS, loaded when a cuda backend is first made (dlopen), not linked:
 * libcublas pulls in libcublasLt (half a gigabyte), whose loading would
 * cost every run of a tool ~0.15 s and ~200 MiB of resident memory even
 * on the CPU backend.  The CUDA runtime itself is linked statically
 * (libcudart_static: it finds the driver, libcuda.so.1, at run time), so
 * a binary built with CUDA starts on a machine without any of it.
 * cuBLASLt (the backend's gemm, gemm_lt.cu) comes the same way. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "cuda_internal.cuh"

dsk_cublas_api dsk_cublas;

#define STR_(x) #x
#define STR(x) STR_(x)   /* after macro expansion: cublasSgemm is cublasSgemm_v2 */
#define LIBNAME "libcublas.so." STR(CUBLAS_VER_MAJOR)
#define LTNAME "libcublasLt.so." STR(CUBLAS_VER_MAJOR)

/* One entry point to look up: where it goes, and whether the library
 * is unusable without it. */
typedef struct lib_sym {
    const char *name;
    void **fn;
    int required;
} lib_sym;

/* Opens soname and fills the table: 1, or 0 with the reason in err (the
 * first missing symbol).  The handle stays open for the life of the
 * process. */
static int load_lib(const char *soname, const lib_sym *syms, size_t n, char *err, size_t err_len)
{
    void *h = dsk_cuda_dlopen(soname, err, err_len);
    if (!h)
        return 0;
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        *syms[i].fn = dlsym(h, syms[i].name);
        if (!*syms[i].fn && syms[i].required && ok) {
            snprintf(err, err_len, "%s has no %s", soname, syms[i].name);
            ok = 0;
        }
    }
    return ok;
}

/* A load's outcome for its caller: 1, or 0 and the reason in why. */
static int outcome(int ok, const char *err, char *why, size_t why_len)
{
    if (!ok && why)
        snprintf(why, why_len, "%s", err);
    return ok;
}

#define SYM(api, field, fn, required) {STR(fn), (void **)&api.field, required}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[512];

static void load(void)
{
    const lib_sym syms[] = {
        SYM(dsk_cublas, Create, cublasCreate, 1),
        SYM(dsk_cublas, Destroy, cublasDestroy, 1),
        SYM(dsk_cublas, SetStream, cublasSetStream, 1),
        SYM(dsk_cublas, SetMathMode, cublasSetMathMode, 1),
        SYM(dsk_cublas, Sgemm, cublasSgemm, 1),
        SYM(dsk_cublas, GemmEx, cublasGemmEx, 1),
        SYM(dsk_cublas, GetStatusString, cublasGetStatusString, 1),
        SYM(dsk_cublas, GemmGroupedBatchedEx, cublasGemmGroupedBatchedEx, 0),   /* 12.5+ */
    };
    dsk_cublas.loaded = load_lib(LIBNAME, syms, sizeof syms / sizeof *syms, load_error, sizeof load_error);
}

int dsk_cublas_load(char *why, size_t why_len)
{
    pthread_once(&once, load);
    return outcome(dsk_cublas.loaded, load_error, why, why_len);
}

/* cuBLASLt: libcublas has loaded it already (it is built on it), so this
 * costs a look-up; without it the products stay with cuBLAS. */
dsk_cublaslt_api dsk_cublaslt;
static pthread_once_t lt_once = PTHREAD_ONCE_INIT;
static char lt_error[512];

static void load_lt(void)
{
    const lib_sym syms[] = {
        SYM(dsk_cublaslt, Create, cublasLtCreate, 1),
        SYM(dsk_cublaslt, Destroy, cublasLtDestroy, 1),
        SYM(dsk_cublaslt, MatmulDescCreate, cublasLtMatmulDescCreate, 1),
        SYM(dsk_cublaslt, MatmulDescSetAttribute, cublasLtMatmulDescSetAttribute, 1),
        SYM(dsk_cublaslt, MatmulDescDestroy, cublasLtMatmulDescDestroy, 1),
        SYM(dsk_cublaslt, MatrixLayoutCreate, cublasLtMatrixLayoutCreate, 1),
        SYM(dsk_cublaslt, MatrixLayoutDestroy, cublasLtMatrixLayoutDestroy, 1),
        SYM(dsk_cublaslt, MatmulPreferenceCreate, cublasLtMatmulPreferenceCreate, 1),
        SYM(dsk_cublaslt, MatmulPreferenceSetAttribute, cublasLtMatmulPreferenceSetAttribute, 1),
        SYM(dsk_cublaslt, MatmulPreferenceDestroy, cublasLtMatmulPreferenceDestroy, 1),
        SYM(dsk_cublaslt, MatmulAlgoGetHeuristic, cublasLtMatmulAlgoGetHeuristic, 1),
        SYM(dsk_cublaslt, Matmul, cublasLtMatmul, 1),
    };
    dsk_cublaslt.loaded = load_lib(LTNAME, syms, sizeof syms / sizeof *syms, lt_error, sizeof lt_error);
}

int dsk_cublaslt_load(char *why, size_t why_len)
{
    pthread_once(&lt_once, load_lt);
    return outcome(dsk_cublaslt.loaded, lt_error, why, why_len);
}
