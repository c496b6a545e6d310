#include "core/cpu.h"

int dsk_cpu_avx2_fma(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

int dsk_cpu_avx512f(void)
{
#if defined(__x86_64__)
    return __builtin_cpu_supports("avx512f") && dsk_cpu_avx2_fma();
#else
    return 0;
#endif
}
