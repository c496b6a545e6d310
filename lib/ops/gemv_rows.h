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

/* The most rows the kernel takes; past this gemm's packing pays off. */
enum { DSK_GEMV_MAX_ROWS = 8 };

/* Whether this CPU runs the vector kernel (AVX2 and FMA); without it the
 * caller keeps to BLAS. */
int dsk_gemv_rows_available(void);

/* X [M,K], W [N,K], Y [M,N], 1 <= M <= DSK_GEMV_MAX_ROWS.  The vector
 * kernel when available, else a plain loop (the reference in tests). */
void dsk_gemv_rows_f32(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate);

/* The plain loop, always: what tests compare the vector kernel with. */
void dsk_gemv_rows_f32_portable(const float *X, int M, const float *W, int N, int K, float *Y, int accumulate);

#endif
