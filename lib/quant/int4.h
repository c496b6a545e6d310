/* int4 weights in the GPTQ checkpoint layout, and the CPU kernels that
 * multiply by them.
 *
 * A linear layer W [rows = out_features][cols = in_features] (y = W x, the
 * PyTorch nn.Linear convention) is quantized per group of G input columns
 * (G = group_size, dividing cols; G = cols is one group per row, which is
 * what a GPTQ config's "group_size": -1 means).  Column i belongs to group
 * g_idx[i]: i / G normally, any mapping into 0..cols/G-1 with GPTQ's
 * act-order (desc_act).  Each weight is
 *
 *     W[j][i] = scale[g][j] * (q[j][i] - zero[g][j]),   g = g_idx[i]
 *
 * with a 4-bit code q in 0..15.  The four arrays are exactly the tensors
 * AutoGPTQ and Hugging Face transformers save for bits = 4,
 * checkpoint_format "gptq" (little-endian int32 words on disk, host order
 * here; every dsk host is little-endian):
 *
 *   qweight int32 [cols/8][rows]    bits 4*(i%8) of qweight[i/8][j] hold q[j][i]
 *   qzeros  int32 [cols/G][rows/8]  bits 4*(j%8) of qzeros[g][j/8] hold zero[g][j] - 1
 *   scales  fp16  [cols/G][rows]    IEEE half, kept as uint16_t
 *   g_idx   int32 [cols]            group of input column i
 *
 * The zero convention ("GPTQ v1"): qzeros stores zero - 1, and readers add
 * the 1 back, so a nibble n decodes as zero n + 1, in 1..16.  That is the
 * rule of AutoGPTQ's kernels and of the v1->v2 conversion in transformers
 * and GPTQModel (which add 0x11111111 to every qzeros word).  A zero point
 * of 0 cannot be stored: AutoGPTQ's own packer writes it as -1 and corrupts
 * the neighbouring nibbles, which is why GPTQModel introduced the "v2"
 * format.  dsk_q4_pack therefore takes zero points in 1..16 and refuses 0;
 * quantizers should clamp to 1..15 (GPTQ's symmetric mode always uses 8).
 *
 * Both dimensions must be multiples of 8 (the packing unit of both int32
 * tensors).  The layer is validated once (dsk_q4_check, called by pack
 * and prepare); the other functions trust a validated layer. */
#ifndef DSK_QUANT_INT4_H
#define DSK_QUANT_INT4_H

#include <stdint.h>

#include "core/err.h"
#include "ops/half.h"   /* dsk_f16_to_f32, dsk_f32_to_f16: the scales' format */

typedef struct dsk_q4_linear {
    int rows, cols, group_size;
    /* The checkpoint tensors (see above).  g_idx may be NULL: i / G. */
    int32_t *qweight, *qzeros, *g_idx;
    uint16_t *scales;
    /* Set by dsk_q4_pack: dsk_q4_free frees the four arrays.  Leave it 0
     * when the arrays belong to someone else (a memory-mapped file). */
    int owns_packed;

    /* ---- runtime layout, built by dsk_q4_prepare (all NULL before) ----
     * Input columns are reordered so that each group's columns are
     * contiguous (act-order sorts them by group), and each group's run is
     * padded with zero codes to a multiple of 8 so that no 8-column block
     * straddles two groups.  kcols counts the columns of that order;
     * group_start[g] is where group g begins (a multiple of 8) and perm[k]
     * the input column at position k (-1 for padding), or NULL when the
     * order is the identity (g_idx = i / G with G a multiple of 8).
     *
     * Rows are cut into panels of DSK_Q4_PANEL rows (the last may be
     * shorter, a multiple of 8).  A panel of h rows starting at row r0
     * keeps its codes at panel_codes + r0 * kcols/8 as [kcols/8][h]
     * words: word (o, r) holds q[r0 + r][column 8o + c] in bits 4c (the
     * same nibble order as qweight, so one aligned 8-word load gives the
     * 8x8 block of codes for 8 rows), and its per-group floats at
     * panel_meta + r0 * ngroups * 2 as [ngroups][2][h]: h scales, then h
     * zero points.  Each thread then streams a contiguous stretch of
     * memory, which is what the hardware prefetcher wants.  The runtime
     * copy is about as large as qweight; the checkpoint arrays are still
     * needed by dsk_q4_unpack and dsk_q4_dequantize only. */
    int ngroups, kcols;
    int32_t *group_start; /* [ngroups + 1] */
    int32_t *perm;        /* [kcols] or NULL */
    uint32_t *panel_codes;
    float *panel_meta;
} dsk_q4_linear;

enum { DSK_Q4_PANEL = 32 };


/* Check shape, pointers, g_idx range and that every scale is finite.
 * Returns 0 or EX_DATAERR with a message naming the bad element. */
int dsk_q4_check(const dsk_q4_linear *L, dsk_err *err);

/* Pack a quantized layer: L->rows, cols and group_size set by the caller,
 * the array pointers NULL (or dsk_q4_free'd).  codes [rows][cols] in
 * 0..15, zeros [cols/G][rows] in 1..16, scales [cols/G][rows] (rounded to
 * fp16; must stay finite), g_idx [cols] or NULL for i / G.  Allocates the
 * four arrays (owns_packed = 1; g_idx is always filled in).  It does not
 * build the runtime layout, which a tool that only writes checkpoints
 * does not need: call dsk_q4_prepare before dsk_q4_matmul.  Returns 0,
 * or EX_DATAERR with L unchanged when an input is out of range. */
int dsk_q4_pack(dsk_q4_linear *L, const uint8_t *codes, const uint8_t *zeros, const float *scales,
                const int32_t *g_idx, dsk_err *err);

/* The inverse of pack: codes [rows][cols], zeros [cols/G][rows] (1..16),
 * scales [cols/G][rows] as floats.  Any output may be NULL. */
void dsk_q4_unpack(const dsk_q4_linear *L, uint8_t *codes, uint8_t *zeros, float *scales);

/* W [rows][cols] in fp32 (exact: an fp16 scale times a small integer). */
void dsk_q4_dequantize(const dsk_q4_linear *L, float *W);

/* Validate L (dsk_q4_check) and build the runtime layout; may be called
 * again (it rebuilds).  Returns 0, or EX_DATAERR and no runtime layout. */
int dsk_q4_prepare(dsk_q4_linear *L, dsk_err *err);

/* y [n][rows] = x [n][cols] W^T, on a prepared layer (calling it on an
 * unprepared one is a bug: it dies with EX_SOFTWARE).  Reentrant: it
 * allocates its own scratch (n * (kcols + ngroups) floats).  Parallel over
 * output rows with OpenMP; each output is computed by one thread in a
 * fixed order, so results do not depend on the thread count.  Per group
 * it sums q * x, subtracts zero * sum(x) and multiplies by the scale once;
 * a batch (n > 1) decodes each block of codes once for up to 8 rows of x. */
void dsk_q4_matmul(const dsk_q4_linear *L, const float *x, int n, float *y);

/* Free the runtime layout, and the checkpoint arrays if owns_packed;
 * keeps rows, cols and group_size. */
void dsk_q4_free(dsk_q4_linear *L);

/* Which kernel dsk_q4_matmul uses: AUTO picks AVX2+FMA when the CPU has
 * them (x86-64 builds), else the portable C one.  For tests and benches;
 * not thread-safe against running matmuls.  Returns 0, or -1 (and changes
 * nothing) when the CPU or build cannot run the kernel asked for. */
enum { DSK_Q4_KERNEL_AUTO, DSK_Q4_KERNEL_PORTABLE, DSK_Q4_KERNEL_AVX2 };
int dsk_q4_set_kernel(int kind);
const char *dsk_q4_kernel_name(void); /* "avx2" or "portable": the one dsk_q4_matmul uses now */

#endif
