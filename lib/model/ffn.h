/* The SwiGLU feed-forward network, y = (silu(h Wg^T) * (h Wu^T)) Wd^T, with
 * Wg, Wu [F, d] and Wd [d, F]: a dense layer's FFN, the shared experts, and
 * each routed expert over its block of rows all run these two functions. */
#ifndef DSK_MODEL_FFN_H
#define DSK_MODEL_FFN_H

#include "ops/backend.h"

typedef struct dsk_ffn {
    const float *gate, *up, *down;      /* weights (device) */
    float *g, *u, *act;                 /* activations kept for the backward: [n, F] each */
} dsk_ffn;

/* out = y for the n rows of h [n, d]; with resid, out = resid + y (resid
 * may be out: out += y; else it must not overlap out). */
void dsk_ffn_fwd(dsk_backend *be, const dsk_ffn *f, const float *h, const float *resid, float *out, int n, int d,
                 int F);

/* Given dout [n, d]: dh = d/dh (add: dh +=), and the weight gradients
 * added into ggate, gup, gdown; dg, du, dact are [n, F] scratch. */
void dsk_ffn_bwd(dsk_backend *be, const dsk_ffn *f, float *ggate, float *gup, float *gdown, const float *h,
                 const float *dout, float *dg, float *du, float *dact, float *dh, int add, int n, int d, int F);

#endif
