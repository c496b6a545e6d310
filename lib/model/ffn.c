#include "model/ffn.h"

void dsk_ffn_fwd(dsk_backend *be, const dsk_ffn *f, const float *h, const float *resid, float *out, int n, int d,
                 int F)
{
    be->gemm(be, 0, 1, n, F, d, 1, h, f->gate, 0, f->g);
    be->gemm(be, 0, 1, n, F, d, 1, h, f->up, 0, f->u);
    be->swiglu_fwd(be, f->act, f->g, f->u, (size_t)n * F);
    if (resid)
        be->gemm_add(be, 0, 1, n, d, F, 1, f->act, f->down, resid, out);
    else
        be->gemm(be, 0, 1, n, d, F, 1, f->act, f->down, 0, out);
}

void dsk_ffn_bwd(dsk_backend *be, const dsk_ffn *f, float *ggate, float *gup, float *gdown, const float *h,
                 const float *dout, float *dg, float *du, float *dact, float *dh, int add, int n, int d, int F)
{
    be->gemm(be, 0, 0, n, F, d, 1, dout, f->down, 0, dact);
    be->gemm(be, 1, 0, d, F, n, 1, dout, f->act, 1, gdown);
    be->swiglu_bwd(be, dg, du, dact, f->g, f->u, (size_t)n * F);
    be->gemm(be, 0, 0, n, d, F, 1, dg, f->gate, add ? 1 : 0, dh);
    be->gemm(be, 0, 0, n, d, F, 1, du, f->up, 1, dh);
    be->gemm(be, 1, 0, F, d, n, 1, dg, h, 1, ggate);
    be->gemm(be, 1, 0, F, d, n, 1, du, h, 1, gup);
}
