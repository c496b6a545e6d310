#include <limits.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "ops/blas_kernels.h"

/* OpenBLAS's own, not in its cblas.h everywhere. */
char *openblas_get_corename(void);

const char *dsk_blas_kernels(void) { return openblas_get_corename(); }

const char *dsk_blas_better_kernels(void)
{
    const char *now = openblas_get_corename();
    /* A real Prescott (2004) has no AVX2: on a CPU with it, "Prescott"
     * is OpenBLAS's fallback for a model it does not know. */
    if (!now || strcasecmp(now, "Prescott") != 0)
        return NULL;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return __builtin_cpu_supports("avx512bf16") ? "Cooperlake" : "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "Haswell";
#endif
    return NULL;
}

void dsk_blas_choose_kernels(char **argv)
{
    const char *keep = getenv("DSK_BLAS_KEEP");
    if (getenv("OPENBLAS_CORETYPE") || (keep && *keep && *keep != '0'))
        return;
    const char *better = dsk_blas_better_kernels();
    if (!better)
        return;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1)
        return;
    self[n] = 0;
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0)
        return;
    execv(self, argv);
    unsetenv("OPENBLAS_CORETYPE");   /* no new start: carry on as we are */
}
