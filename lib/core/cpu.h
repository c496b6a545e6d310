/* What this CPU's vector units run, for choosing a kernel at run time
 * (the library is built for the baseline x86-64; kernels for more carry
 * their own target attributes).  0 off x86-64. */
#ifndef DSK_CORE_CPU_H
#define DSK_CORE_CPU_H

int dsk_cpu_avx2_fma(void);   /* AVX2 and FMA */
int dsk_cpu_avx512f(void);    /* AVX-512 F, with AVX2 and FMA */

#endif
