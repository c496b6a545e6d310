/* Products of a few rows against a weight that no longer changes (a
 * loaded checkpoint's, for decoding), Y = X Wᵀ, from a copy of W laid out
 * for them: panels of 32 output rows, each stored [K][32], so that one
 * AVX-512 pass of a panel multiplies two loaded weight vectors by each of
 * up to 12 broadcast inputs (AVX2: four by each of 3), with no horizontal
 * sums (the row kernels,
 * gemv_rows.h, reduce every dot product across lanes; BLAS's gemm packs
 * the whole of W on every call).
 *
 * Y[m][n] is the sum over k, in order, of X[m][k] W[n][k], one fused
 * multiply-add at a time: the same bits for a row whatever the other rows
 * of X, the batch, the thread count and the kernel (AVX-512 or AVX2). */
#ifndef DSK_OPS_GEMM_PACKED_H
#define DSK_OPS_GEMM_PACKED_H

#include <stddef.h>

/* The most rows the cpu backend sends to the panels: past them BLAS's
 * gemm (its packing of W paid over many rows) is as fast. */
enum { DSK_PACKED_MAX_ROWS = 64 };
/* The panels cost as much memory as the weights again: a model's are
 * made when they total at most this much, else none (decoding a bigger
 * model waits on memory bandwidth, where the layout gains little). */
#define DSK_PACKED_BUDGET ((size_t)1 << 30)

typedef struct dsk_packed_weight {
    int N, K;
    float *panels;   /* ceil(N / 32) panels of K x 32 floats (rows past N are zeros), 64-byte aligned */
} dsk_packed_weight;

/* Whether this CPU runs the packed products (AVX2 and FMA). */
int dsk_packed_available(void);

/* The panels of W [N,K] (N, K >= 1), or 0 and nothing allocated when the
 * CPU lacks AVX2 and FMA or the memory cannot be had. */
int dsk_packed_make(dsk_packed_weight *p, const float *W, int N, int K);
void dsk_packed_free(dsk_packed_weight *p);
size_t dsk_packed_bytes(int N, int K);

/* X [M,K] (M >= 1), Y [M,N]: Y = X Wᵀ, or Y += X Wᵀ when accumulate. */
void dsk_packed_gemm(const dsk_packed_weight *p, const float *X, int M, float *Y, int accumulate);

/* Tests: on (1), the AVX2 kernel even where AVX-512 is there. */
void dsk_packed_force_avx2(int on);

#endif
