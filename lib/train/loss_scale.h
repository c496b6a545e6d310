/* Loss scaling for mixed-precision training (--dtype, --loss-scale).
 *
 * The gradient of the loss is multiplied by the scale before the
 * backward pass, so that small gradients survive the rounding of gemm's
 * operands to fp16 (whose subnormals end at 2^-24), and divided out
 * again before clipping and the AdamW step (dsk_optimizer's loss_scale).
 *
 * fp16 scales dynamically, as PyTorch's GradScaler and DeepSpeed do: a
 * step whose gradient norm is not finite (an operand overflowed 65504)
 * is skipped and the scale halved; after `window` good steps in a row
 * it doubles.  Such a back-off is not a failure: only once the scale has
 * fallen below 1 does an overflow count as a bad step (--max-bad-steps).
 * bf16 has float32's range and fp32 needs no help: their scale is static
 * (1 unless given), and every non-finite step is a bad one. */
#ifndef DSK_TRAIN_LOSS_SCALE_H
#define DSK_TRAIN_LOSS_SCALE_H

typedef struct dsk_loss_scale {
    double scale;     /* what the loss gradient is multiplied by now */
    int dynamic;      /* fp16: halve on overflow, grow after window good steps */
    long window;      /* good steps in a row before the scale doubles */
    long good;        /* good steps in a row since the last change */
} dsk_loss_scale;

/* The first scale of fp16 when none is given: 2^16. */
#define DSK_LOSS_SCALE_FP16_START 65536.0
/* The scale never grows past this (float32's range) nor halves below 2^-24. */
#define DSK_LOSS_SCALE_MAX 0x1p100
#define DSK_LOSS_SCALE_MIN 0x1p-24

/* dtype: DSK_DTYPE_*; start <= 0: the default (2^16 for fp16, else 1);
 * window <= 0: 1000. */
void dsk_loss_scale_init(dsk_loss_scale *ls, int dtype, double start, long window);

/* How a step ended, as every rank sees it. */
enum {
    DSK_STEP_GOOD,            /* finite loss and gradient norm: the update was made */
    DSK_STEP_GRAD_NONFINITE,  /* finite loss, non-finite gradient norm: skipped */
    DSK_STEP_LOSS_NONFINITE,  /* the forward pass itself failed: skipped */
};
/* What the scaler made of it. */
enum {
    DSK_LS_KEPT,              /* scale unchanged, nothing to report */
    DSK_LS_GREW,              /* a good step completed the window: the scale doubled */
    DSK_LS_BACKED_OFF,        /* an overflow: the scale halved; not a bad step */
    DSK_LS_BAD,               /* a non-finite step that counts for --max-bad-steps */
};
int dsk_loss_scale_update(dsk_loss_scale *ls, int outcome);

#endif
