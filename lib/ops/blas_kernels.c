#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/cpu.h"
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
    if (dsk_cpu_avx2_fma())
        return "Haswell";
#endif
    return NULL;
}

static int set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

/* Whether the OpenMP runtime has already bound this thread to one place
 * (it does so at load time when asked to bind): the binding outlives
 * exec, and the new image would see one CPU. */
static int omp_binds(void)
{
    const char *bind = getenv("OMP_PROC_BIND");
    if (bind && *bind && strcasecmp(bind, "false") != 0)
        return 1;
    return set("OMP_PLACES") || set("GOMP_CPU_AFFINITY") || set("KMP_AFFINITY");
}

void dsk_blas_choose_kernels(char **argv)
{
    const char *keep = getenv("DSK_BLAS_KEEP");
    if (getenv("OPENBLAS_CORETYPE") || (keep && *keep && *keep != '0') || omp_binds())
        return;
    /* Started as "ld.so PROGRAM ARGS": /proc/self/exe is the loader,
     * which would read our arguments as its own. */
    if (getauxval(AT_BASE) == 0)
        return;
    const char *better = dsk_blas_better_kernels();
    if (!better)
        return;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0 || (size_t)n >= sizeof self - 1)
        return;
    self[n] = 0;
    /* argv[0] itself when it names this file (through a link, say), so
     * the process keeps the name it was started by. */
    const char *path = self;
    struct stat a, b;
    if (argv[0] && strchr(argv[0], '/') && stat(argv[0], &a) == 0 && stat(self, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
        path = argv[0];
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0)
        return;
    execv(path, argv);
    unsetenv("OPENBLAS_CORETYPE");   /* no new start: carry on as we are */
}
