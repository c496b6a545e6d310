#include "ops/backend.h"
#include "train/loss_scale.h"

void dsk_loss_scale_init(dsk_loss_scale *ls, int dtype, double start, long window)
{
    ls->dynamic = dtype == DSK_DTYPE_FP16;
    ls->scale = start > 0 ? start : ls->dynamic ? DSK_LOSS_SCALE_FP16_START : 1.0;
    ls->window = window > 0 ? window : 1000;
    ls->good = 0;
}

int dsk_loss_scale_update(dsk_loss_scale *ls, int outcome)
{
    if (outcome == DSK_STEP_GOOD) {
        if (!ls->dynamic || ++ls->good < ls->window)
            return DSK_LS_KEPT;
        ls->good = 0;
        if (ls->scale * 2 > DSK_LOSS_SCALE_MAX)
            return DSK_LS_KEPT;
        ls->scale *= 2;
        return DSK_LS_GREW;
    }
    ls->good = 0;
    /* A failed forward pass is not the scale's doing; neither is anything
     * under a static scale. */
    if (outcome == DSK_STEP_LOSS_NONFINITE || !ls->dynamic)
        return DSK_LS_BAD;
    if (ls->scale / 2 >= DSK_LOSS_SCALE_MIN)
        ls->scale /= 2;
    /* Below 1 the scale shrinks gradients: overflow there is the model's. */
    return ls->scale < 1 ? DSK_LS_BAD : DSK_LS_BACKED_OFF;
}
