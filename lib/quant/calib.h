/* Calibration for GPTQ and AWQ: rows of a dataset run through the model
 * one block at a time, the statistics of each linear layer's input
 * gathered from the real activations.  The block's input is kept on the
 * host between passes, so when block l's weights change (quantized) the
 * blocks after it see the outputs of the quantized block, as GPTQ's
 * sequential quantization wants. */
#ifndef DSK_QUANT_CALIB_H
#define DSK_QUANT_CALIB_H

#include "model/model.h"

/* What a linear layer's input is, per token. */
typedef struct dsk_act_stats {
    int cols;
    double *H;          /* [cols][cols]: 2 Σ x xᵀ */
    double *absmean;    /* [cols]: mean |x| */
    double tokens;
} dsk_act_stats;

void dsk_act_stats_init(dsk_act_stats *s, int cols);
void dsk_act_stats_free(dsk_act_stats *s);
/* Adds n tokens' inputs X [n][cols]. */
void dsk_act_stats_add(dsk_act_stats *s, const float *X, long n);

typedef struct dsk_calib {
    dsk_model *m;
    int B, T, n_batches;
    int *rows;                   /* per batch */
    int32_t **tok, **tgt, **pos;
    float **resid;               /* per batch: the current block's input, host [rows*T*d] */
    float *host;                 /* scratch [B*T*max(d, d_ff, q_dim)] */
    long tokens;
} dsk_calib;

/* Reads the first `rows` rows of split (0: all) and embeds them; the
 * dataset must have been made with the tokenizer whose fingerprint is
 * given (NULL: not checked). */
int dsk_calib_open(dsk_calib *c, dsk_model *m, const char *data, const char *fingerprint, int split, long rows,
                   int batch, dsk_err *err);
void dsk_calib_close(dsk_calib *c);

/* Where in block l an input is taken. */
enum { DSK_CALIB_ATTN_IN, DSK_CALIB_ATTN_OUT, DSK_CALIB_FFN_IN, DSK_CALIB_FFN_ACT };

/* Runs block l over every batch and adds the input `where` to s. */
void dsk_calib_capture(dsk_calib *c, int l, int where, dsk_act_stats *s);
/* Runs block l (now final) and keeps its output as block l+1's input. */
void dsk_calib_advance(dsk_calib *c, int l);
/* Runs block l and calls fn with the FFN input of each batch, [n][d] on
 * the host (MoE experts: their inputs are computed from it). */
void dsk_calib_each_ffn_input(dsk_calib *c, int l, void (*fn)(void *ctx, const float *h, long n), void *ctx);

#endif
