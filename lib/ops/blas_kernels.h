/* Which of OpenBLAS's kernels the matrix products run.
 *
 * OpenBLAS built with DYNAMIC_ARCH (every distribution's) picks its
 * kernels for the CPU it finds, once, when the library loads.  A CPU
 * newer than the library (Emerald Rapids under Debian 12's 0.3.21) is
 * "unknown" to it and gets the SSE3 "Prescott" kernels: sgemm 3-5x
 * slower than the AVX-512 ones the CPU runs.  Only the environment
 * variable OPENBLAS_CORETYPE, read at load time, chooses others. */
#ifndef DSK_OPS_BLAS_KERNELS_H
#define DSK_OPS_BLAS_KERNELS_H

/* The kernel set OpenBLAS runs ("Prescott", "SkylakeX", ...). */
const char *dsk_blas_kernels(void);

/* The kernel set this CPU should run when OpenBLAS fell back to Prescott
 * on a CPU with AVX2 (NULL when it did not, or the CPU lacks AVX2). */
const char *dsk_blas_better_kernels(void);

/* First thing in a tool's main: when OPENBLAS_CORETYPE is unset and
 * dsk_blas_better_kernels() names a set, set the variable to it and
 * execute this program again with the same arguments (same process, so
 * a launcher such as mpirun sees nothing).  It returns when there is
 * nothing to do, or the new start failed or would go wrong, and the tool
 * runs on the slower kernels: with DSK_BLAS_KEEP=1 (the user asks for
 * that), with OpenMP thread binding asked for (OMP_PROC_BIND, OMP_PLACES,
 * GOMP_CPU_AFFINITY, KMP_AFFINITY: the runtime has bound this thread to
 * one CPU already, and exec keeps that), when started through the
 * dynamic loader, or without /proc. */
void dsk_blas_choose_kernels(char **argv);

#endif
