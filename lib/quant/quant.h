/* dsk-quant: weight-only 4-bit quantization of a checkpoint's linear
 * layers by round-to-nearest (RTN), GPTQ or AWQ, written in the GPTQ
 * checkpoint layout.
 *
 * A quantized matrix is held unpacked while it is made (dsk_qmat: one
 * 4-bit code per weight, a zero point and an fp16-exact scale per row and
 * group of input columns) and packed into lib/quant/int4.h's layout when
 * it is saved.  W[j][i] = scale[g][j] * (code[j][i] - zero[g][j]) with
 * g = g_idx[i]. */
#ifndef DSK_QUANT_QUANT_H
#define DSK_QUANT_QUANT_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

enum { DSK_QUANT_RTN, DSK_QUANT_GPTQ, DSK_QUANT_AWQ };

typedef struct dsk_qmat {
    int rows, cols;          /* out features, in features */
    int group_size, n_groups;
    uint8_t *codes;          /* [rows][cols], 0..15 */
    uint8_t *zeros;          /* [n_groups][rows], 1..15 (see dsk_quant_params) */
    float *scales;           /* [n_groups][rows], each exactly an fp16 value */
    int32_t *g_idx;          /* [cols]: the group of each input column */
} dsk_qmat;

void dsk_qmat_init(dsk_qmat *q, int rows, int cols, int group_size);
void dsk_qmat_free(dsk_qmat *q);
void dsk_qmat_dequantize(const dsk_qmat *q, float *W);

/* The scale and zero point of one row's group w[0..n) (stride apart),
 * as GPTQ's quantizer finds them: the range is widened to include 0;
 * asymmetric: scale = (max - min) / 15, zero = round(-min / scale);
 * symmetric: zero 8, scale = 2 max|w| / 15.  The scale is rounded to
 * fp16 (what the checkpoint stores).  The GPTQ layout stores zero - 1 in
 * 4 bits, so zero 0 (a group with no negative weight) cannot be stored:
 * it becomes 1 with the scale recomputed for the 14 steps above it. */
void dsk_quant_params(const float *w, long stride, int n, int sym, float *scale, uint8_t *zero);
/* The same over the range shrunk by ratio (AWQ's clipping search). */
void dsk_quant_params_clip(const float *w, long stride, int n, int sym, float ratio, float *scale, uint8_t *zero);
/* The range shrunk by the ratio of 1, 0.99, ... 0.21 whose quantization
 * gives the group the smallest squared error: the search of the GPTQ
 * reference's quantizer (mse=True: a grid of 100, maxshrink 0.8, i.e.
 * shrinking by up to 80%),
 * with the squared error for its norm 2.4.  Ratio 1 is dsk_quant_params,
 * so the error is never larger; a group with an outlier trades it for
 * finer steps everywhere else. */
void dsk_quant_params_search(const float *w, long stride, int n, int sym, float *scale, uint8_t *zero);
static inline uint8_t dsk_quant_code(float w, float scale, uint8_t zero)
{
    float q = __builtin_nearbyintf(w / scale) + zero;
    return (uint8_t)(q < 0 ? 0 : q > 15 ? 15 : q);
}

/* Round to nearest: W[rows][cols] quantized group by group, each
 * group's range by dsk_quant_params_search (search) or its min and max. */
void dsk_quant_rtn(const float *W, int sym, int search, dsk_qmat *q);

typedef struct dsk_gptq_opts {
    double damp;      /* fraction of the mean diagonal added to H (default 0.01) */
    int act_order;    /* columns in order of decreasing H diagonal */
    int block;        /* lazy-update block width (default 128) */
    int sym;
    int search;       /* each group's range by dsk_quant_params_search, else its min and max */
} dsk_gptq_opts;

/* GPTQ (Frantar et al. 2022): quantizes the columns of W one at a time,
 * spreading each column's error over the columns not yet quantized
 * through the inverse Hessian's Cholesky factor, in blocks whose
 * trailing update is one matrix product.  H is [cols][cols] = 2 XᵀX
 * summed over the calibration inputs X; it is changed (damped, permuted).
 * Dead columns (H[i][i] = 0: an input that is always zero) quantize
 * the weight as 0.  Returns 0, or EX_SOFTWARE when H stays singular
 * after 10x more damping (the message says which). */
int dsk_quant_gptq(const float *W, double *H, const dsk_gptq_opts *o, dsk_qmat *q, dsk_err *err);

/* sum over the rows of (W - Q) H (W - Q)ᵀ / sum of W H Wᵀ: the relative
 * error of the layer's output on the calibration inputs whose 2XᵀX is H
 * (or plain relative squared error of the weights when H is NULL). */
/* AWQ (Lin et al. 2023).  The scales s[i] = m[i]^α / sqrt(max·min) of
 * the input channels' mean magnitudes m, α on a grid of `grid` points in
 * [0, 1): the α whose RTN quantization of W·diag(s), scaled back,
 * gives the smallest output error Σ tr(E H Eᵀ) over the n matrices that
 * share this input (channels that must share a scale get equal m from
 * the caller).  Writes s[cols] and returns the chosen α. */
double dsk_awq_search(float *const *W, const int *rows, int n, int cols, const double *H, const double *absmean,
                      int group, int sym, int grid, float *s);
/* RTN with the clipping ratio per row and group chosen from `grid`
 * ratios in (0.5, 1] to minimise the group's output error eᵀ H_gg e. */
void dsk_awq_quantize_clipped(const float *W, const double *H, int sym, int grid, dsk_qmat *q);

/* tr(E H Eᵀ) with E = W - Wq (Wq NULL: zero): the summed squared error
 * of the layer's outputs on the inputs whose 2XᵀX is H (the summed
 * squared weight error when H is NULL). */
double dsk_quant_output_sq_error(const float *W, const float *Wq, int rows, int cols, const double *H);
double dsk_quant_output_error(const float *W, const float *Wq, int rows, int cols, const double *H);

/* ---- a whole model ---- */

typedef struct dsk_model dsk_model;

typedef struct dsk_quant_opts {
    int method;               /* DSK_QUANT_* */
    int group_size;           /* default 128 */
    int sym;
    double damp;              /* GPTQ */
    int act_order, block;     /* GPTQ */
    int grid;                 /* AWQ: grid points (20) */
    int clip;                 /* the clipping searches: AWQ's on the output error, RTN's and GPTQ's
                               * on the weights' (dsk_quant_params_search) */
    const char *calib;        /* dataset for GPTQ/AWQ (and RTN's report) */
    const char *calib_tokenizer;   /* the checkpoint's tokenizer fingerprint, checked against it */
    int calib_split;
    long calib_rows;          /* default 128 */
    int calib_batch;
    FILE *progress;           /* a line per layer, or NULL */
} dsk_quant_opts;

typedef struct dsk_quant_layer {
    int tensor;               /* index into the model's tensor table */
    dsk_qmat q;
    double err;               /* relative output error on the calibration inputs (weight error without) */
    double rtn_err;           /* the same for plain RTN of the original weight, for comparison */
    double alpha;             /* AWQ's chosen exponent */
} dsk_quant_layer;

typedef struct dsk_quantized {
    dsk_quant_layer *layer;
    int n;
    long calib_tokens;
} dsk_quantized;

/* Quantizes every linear layer of the blocks (attention projections,
 * FFN and expert projections; not the embedding, the LM head, the
 * router or the norms), layer by layer, leaving the model's parameters
 * holding the dequantized weights (and AWQ's folded scales), so the
 * model in memory computes what the quantized checkpoint will. */
int dsk_quantize_model(dsk_model *m, const dsk_quant_opts *o, dsk_quantized *out, dsk_err *err);
void dsk_quantized_free(dsk_quantized *q);

/* A name ending in "_proj.weight" on a 2-D tensor: the layers quantized. */
int dsk_quant_is_linear(const char *name, int ndim);

#endif
