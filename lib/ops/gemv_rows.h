/* A few rows times a weight matrix stored [N,K] (row n is output n's
 * weights): Y[m][n] = dot(X[m], W[n]) (+ Y[m][n] when accumulate).
 *
 * What a decoding step does with an fp32 weight, above all the LM head:
 * one to a few token rows against a matrix read once.  BLAS's gemv is
 * slower here on every CPU it does not recognise (OpenBLAS 0.3.21 runs
 * its SSE3 "Prescott" kernel on Emerald Rapids), and its gemm packs the
 * whole matrix first. */
#ifndef DSK_OPS_GEMV_ROWS_H
#define DSK_OPS_GEMV_ROWS_H

/* The most rows each vector kernel takes; past them gemm's packing of
 * the weight pays off (measured on the shapes of a decoding step). */
enum { DSK_GEMV_MAX_ROWS = 8, DSK_GEMV_MAX_ROWS_512 = 32 };
enum { DSK_GEMV_PORTABLE, DSK_GEMV_AVX2, DSK_GEMV_AVX512 };

/* The most rows to give dsk_gemv_rows_f32 with the kernel in use (0: no
 * vector kernel, AVX2 and FMA at least: the caller keeps to BLAS). */
int dsk_gemv_rows_max(void);

/* Tests: run this kernel (DSK_GEMV_*), or -1 for the CPU's best; -1
 * returned when the CPU lacks it. */
int dsk_gemv_rows_force(int kernel);

/* X [M,K], W [N,K], Y [M,N], M >= 1: the best vector kernel the CPU has
 * (AVX-512, else AVX2), else a plain loop. */
void dsk_gemv_rows_f32(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate);

/* The plain loop, always: what tests compare the vector kernel with. */
void dsk_gemv_rows_f32_portable(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate);

#endif
