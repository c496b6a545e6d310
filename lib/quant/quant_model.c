/* Quantizing a whole model, block by block.  Within a block the linear
 * layers go in four steps, each fed the outputs of the steps before it
 * already quantized (GPTQ's "true sequential" order):
 *
 *   1. q, k, v      input: the attention norm's output      AWQ folds into that norm
 *   2. o            input: the attention's output           AWQ folds into v's rows
 *   3. gate, up     input: the FFN norm's output            AWQ folds into that norm (and the router)
 *   4. down         input: SwiGLU's output                  AWQ folds into up's rows
 *
 * MoE: the experts' gate and up take the FFN input of every calibration
 * token (the routed ones see a subset; using all of them is an
 * approximation that needs no routing state, exact for shared experts),
 * and each expert's down takes SwiGLU of that input through its own
 * (already quantized) gate and up, computed here on the host. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "quant/calib.h"
#include "quant/int4.h"
#include "quant/quant.h"

int dsk_quant_is_linear(const char *name, int ndim)
{
    size_t n = strlen(name);
    return ndim == 2 && n > 12 && !strcmp(name + n - 12, "_proj.weight");
}

typedef struct quant_ctx {
    dsk_model *m;
    const dsk_quant_opts *o;
    float *host;              /* all parameters, host copy */
    dsk_quantized *out;
    dsk_calib calib;
    int have_calib;
} quant_ctx;

static const dsk_tensor_info *tensor(quant_ctx *c, const char *fmt, int l, int e)
{
    char name[128];
    snprintf(name, sizeof name, fmt, l, e);
    return dsk_model_find_tensor(c->m, name);
}

static float *host_of(quant_ctx *c, const dsk_tensor_info *t) { return c->host + t->offset; }

static void upload(quant_ctx *c, const dsk_tensor_info *t)
{
    dsk_model *m = c->m;
    m->be->upload(m->be, m->params + t->offset, c->host + t->offset, t->numel * sizeof(float));
}

/* Quantizes matrix t (its input statistics st, or NULL), replaces it in
 * the model by its dequantization and records it.  With AWQ, t already
 * holds W·diag(s) and orig the weight before scaling: errors are
 * measured on what the model computes, (dequantized)·diag(1/s). */
static int quantize_one(quant_ctx *c, const dsk_tensor_info *t, const dsk_act_stats *st, int clip, double alpha,
                        const float *s, const float *orig, dsk_err *err)
{
    const dsk_quant_opts *o = c->o;
    int rows = (int)t->shape[0], cols = (int)t->shape[1];
    float *W = host_of(c, t);
    dsk_quant_layer *L = &c->out->layer[c->out->n];
    memset(L, 0, sizeof *L);
    L->tensor = (int)(t - c->m->tensors);
    L->alpha = alpha;
    dsk_qmat_init(&L->q, rows, cols, o->group_size);
    if (o->method == DSK_QUANT_GPTQ && st) {
        double *H = dsk_xmalloc((size_t)cols * cols * sizeof *H);
        memcpy(H, st->H, (size_t)cols * cols * sizeof *H);
        dsk_gptq_opts g = {o->damp, o->act_order, o->block, o->sym, o->clip};
        int rc = dsk_quant_gptq(W, H, &g, &L->q, err);
        free(H);
        if (rc) {
            char tmp[sizeof err->msg];
            memcpy(tmp, err->msg, sizeof tmp);
            dsk_qmat_free(&L->q);
            return dsk_fail(err, rc, "%s: %.900s", t->name, tmp);
        }
    } else if (o->method == DSK_QUANT_AWQ && st && clip) {
        /* W holds W·diag(s), which sees the inputs x/s: their H is
         * diag(1/s) H diag(1/s). */
        double *Hs = NULL;
        if (s) {
            Hs = dsk_xmalloc((size_t)cols * cols * sizeof *Hs);
            for (int a = 0; a < cols; a++)
                for (int b = 0; b < cols; b++)
                    Hs[(size_t)a * cols + b] = st->H[(size_t)a * cols + b] / ((double)s[a] * s[b]);
        }
        dsk_awq_quantize_clipped(W, Hs ? Hs : st->H, o->sym, o->grid, &L->q);
        free(Hs);
    } else {
        /* AWQ's unclipped layers (q and k, which meet in a softmax) keep
         * their whole ranges, as AutoAWQ's */
        dsk_quant_rtn(W, o->sym, o->method != DSK_QUANT_AWQ && o->clip, &L->q);
    }
    /* Plain RTN of the unscaled weight is its own comparison. */
    int plain_rtn = !s && !(o->method == DSK_QUANT_GPTQ && st) && !(o->method == DSK_QUANT_AWQ && st && clip);
    c->out->n++;
    size_t n = (size_t)rows * cols;
    float *D = dsk_xmalloc(n * sizeof *D), *R = dsk_xmalloc(n * sizeof *R);
    dsk_qmat_dequantize(&L->q, D);
    const float *ref = orig ? orig : W;
    for (size_t k = 0; k < n; k++)
        R[k] = s ? D[k] / s[k % cols] : D[k];
    const double *H = st ? st->H : NULL;
    L->err = dsk_quant_output_error(ref, R, rows, cols, H);
    if (plain_rtn) {
        L->rtn_err = L->err;
    } else {
        dsk_qmat rq;
        dsk_qmat_init(&rq, rows, cols, o->group_size);
        dsk_quant_rtn(ref, o->sym, o->clip, &rq);   /* what -m rtn gives */
        dsk_qmat_dequantize(&rq, R);
        L->rtn_err = dsk_quant_output_error(ref, R, rows, cols, H);
        dsk_qmat_free(&rq);
    }
    memcpy(W, D, n * sizeof *W);
    upload(c, t);
    free(D);
    free(R);
    if (o->progress)
        fprintf(o->progress, "%-52s %5d x %-5d  error %.3e (rtn %.3e)\n", t->name, rows, cols, L->err, L->rtn_err);
    return 0;
}

/* Divides row r of the producer P by the scale of the input channel its
 * output r feeds.  v_proj feeds o_proj: with GQA kv head k's row i feeds
 * channel i of each query head of the group, whose scales are tied, so
 * the first head's scale stands for them.  P is already quantized (an
 * earlier step): dividing a row divides its per-group scales, which stay
 * fp16 (rounded), and its dequantization is refreshed. */
static void fold_into_rows(quant_ctx *c, const dsk_tensor_info *P, const float *s, int cols)
{
    int prow = (int)P->shape[0], pc = (int)P->shape[1];
    int hd = c->m->cfg.d_model / c->m->cfg.n_heads, rep = cols / prow;
    dsk_quant_layer *L = NULL;
    for (int k = 0; k < c->out->n; k++)
        if (c->out->layer[k].tensor == (int)(P - c->m->tensors))
            L = &c->out->layer[k];
    float *W = host_of(c, P);
    for (int r = 0; r < prow; r++) {
        float sr = rep > 1 ? s[(r / hd) * rep * hd + r % hd] : s[r];
        if (!L) {
            for (int k = 0; k < pc; k++)
                W[(size_t)r * pc + k] /= sr;
            continue;
        }
        for (int g = 0; g < L->q.n_groups; g++) {
            float *sc = &L->q.scales[(size_t)g * prow + r];
            float v = dsk_f16_to_f32(dsk_f32_to_f16(*sc / sr));
            *sc = v > 0 ? v : 5.9604645e-8f;
        }
    }
    if (L)
        dsk_qmat_dequantize(&L->q, W);
    upload(c, P);
}

/* AWQ's scales for the matrices ts[0..n) sharing the input st: the
 * matrices' columns are multiplied by them and the producer of the input
 * divided (a 1-D norm weight, or rows of a matrix); a router reading the
 * same input gets its columns multiplied back, so it computes what it
 * did.  Returns the scales and keeps each matrix's original in orig[k]. */
static float *awq_scale(quant_ctx *c, const dsk_tensor_info *const *ts, int n, const dsk_act_stats *st,
                        const double *absmean, const dsk_tensor_info *norm, const dsk_tensor_info *rows_of,
                        const dsk_tensor_info *router, float **orig, double *alpha)
{
    int cols = st->cols;
    float **W = dsk_xmalloc((size_t)n * sizeof *W);
    int *rows = dsk_xmalloc((size_t)n * sizeof *rows);
    for (int k = 0; k < n; k++) {
        W[k] = host_of(c, ts[k]);
        rows[k] = (int)ts[k]->shape[0];
        orig[k] = dsk_xmalloc(ts[k]->numel * sizeof(float));
        memcpy(orig[k], W[k], ts[k]->numel * sizeof(float));
    }
    float *s = dsk_xmalloc((size_t)cols * sizeof *s);
    *alpha = dsk_awq_search(W, rows, n, cols, st->H, absmean, c->o->group_size, c->o->sym, c->o->grid, s);
    for (int k = 0; k < n; k++)
        for (int j = 0; j < rows[k]; j++)
            for (int i = 0; i < cols; i++)
                W[k][(size_t)j * cols + i] *= s[i];
    if (norm) {
        float *g = host_of(c, norm);
        for (int i = 0; i < cols; i++)
            g[i] /= s[i];
        upload(c, norm);
    }
    if (rows_of)
        fold_into_rows(c, rows_of, s, cols);
    if (router) {
        float *R = host_of(c, router);
        for (int e = 0; e < router->shape[0]; e++)
            for (int i = 0; i < cols; i++)
                R[(size_t)e * cols + i] *= s[i];
        upload(c, router);
    }
    free(W);
    free(rows);
    return s;
}

/* One step: the matrices ts sharing an input whose statistics are st;
 * clip[k]: AWQ's clipping search applies to ts[k]. */
static int quantize_set(quant_ctx *c, const dsk_tensor_info *const *ts, int n, const int *clip,
                        const dsk_act_stats *st, const double *absmean, const dsk_tensor_info *norm,
                        const dsk_tensor_info *rows_of, const dsk_tensor_info *router, dsk_err *err)
{
    float **orig = dsk_xcalloc((size_t)n, sizeof *orig), *s = NULL;
    double alpha = -1;
    /* Scaling needs somewhere to fold 1/s: a producer, or none to fold into. */
    if (c->o->method == DSK_QUANT_AWQ && st && (norm || rows_of))
        s = awq_scale(c, ts, n, st, absmean ? absmean : st->absmean, norm, rows_of, router, orig, &alpha);
    int rc = 0;
    for (int k = 0; k < n && !rc; k++)
        rc = quantize_one(c, ts[k], st, c->o->clip && clip[k], alpha, s, orig[k], err);
    for (int k = 0; k < n; k++)
        free(orig[k]);
    free(orig);
    free(s);
    return rc;
}

/* Channels of the attention output that one value row feeds: with GQA a
 * kv head serves several query heads, so AWQ's scale for o_proj's input
 * must be the same across them; their mean magnitudes are averaged. */
static double *tied_absmean(const dsk_model_config *cfg, const double *m)
{
    int H = cfg->n_heads, KV = cfg->n_kv_heads, hd = cfg->d_model / H, rep = H / KV;
    double *t = dsk_xmalloc((size_t)H * hd * sizeof *t);
    for (int kv = 0; kv < KV; kv++)
        for (int i = 0; i < hd; i++) {
            double sum = 0;
            for (int r = 0; r < rep; r++)
                sum += m[(size_t)(kv * rep + r) * hd + i];
            for (int r = 0; r < rep; r++)
                t[(size_t)(kv * rep + r) * hd + i] = sum / rep;
        }
    return t;
}

/* MoE: each expert's SwiGLU input statistics from the FFN input h. */
typedef struct expert_acts {
    quant_ctx *c;
    const dsk_tensor_info **gate, **up;
    dsk_act_stats *st;
    int n;
} expert_acts;

static void add_expert_acts(void *ctx, const float *h, long n)
{
    expert_acts *x = ctx;
    int d = x->c->m->cfg.d_model;
    for (int e = 0; e < x->n; e++) {
        int F = (int)x->gate[e]->shape[0];
        float *g = dsk_xmalloc((size_t)n * F * sizeof *g), *u = dsk_xmalloc((size_t)n * F * sizeof *u);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, F, d, 1.0f, h, d, host_of(x->c, x->gate[e]), d,
                    0.0f, g, F);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, F, d, 1.0f, h, d, host_of(x->c, x->up[e]), d,
                    0.0f, u, F);
        for (size_t i = 0; i < (size_t)n * F; i++)
            g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
        dsk_act_stats_add(&x->st[e], g, n);
        free(g);
        free(u);
    }
}

static int quantize_block(quant_ctx *c, int l, dsk_err *err)
{
    dsk_model *m = c->m;
    const dsk_model_config *cfg = &m->cfg;
    int d = cfg->d_model, cal = c->have_calib, rc;
    dsk_act_stats st = {0};
    const dsk_tensor_info *attn_norm = tensor(c, "model.layers.%d.input_layernorm.weight", l, 0);
    const dsk_tensor_info *ffn_norm = tensor(c, "model.layers.%d.post_attention_layernorm.weight", l, 0);

    /* 1. q, k, v.  AWQ clips v only, as AutoAWQ: q and k meet in a softmax. */
    const dsk_tensor_info *qkv[3] = {tensor(c, "model.layers.%d.self_attn.q_proj.weight", l, 0),
                                     tensor(c, "model.layers.%d.self_attn.k_proj.weight", l, 0),
                                     tensor(c, "model.layers.%d.self_attn.v_proj.weight", l, 0)};
    static const int clip_qkv[3] = {0, 0, 1}, clip_all[2] = {1, 1};
    if (cal) {
        dsk_act_stats_init(&st, d);
        dsk_calib_capture(&c->calib, l, DSK_CALIB_ATTN_IN, &st);
    }
    rc = quantize_set(c, qkv, 3, clip_qkv, cal ? &st : NULL, NULL, attn_norm, NULL, NULL, err);
    dsk_act_stats_free(&st);
    if (rc)
        return rc;

    /* 2. o. */
    const dsk_tensor_info *o = tensor(c, "model.layers.%d.self_attn.o_proj.weight", l, 0);
    if (cal) {
        dsk_act_stats_init(&st, (int)o->shape[1]);
        dsk_calib_capture(&c->calib, l, DSK_CALIB_ATTN_OUT, &st);
    }
    double *tied = cal ? tied_absmean(cfg, st.absmean) : NULL;
    rc = quantize_set(c, &o, 1, clip_all, cal ? &st : NULL, tied, NULL, qkv[2], NULL, err);
    free(tied);
    dsk_act_stats_free(&st);
    if (rc)
        return rc;

    /* 3 and 4: the FFN. */
    if (!dsk_config_layer_is_moe(cfg, l)) {
        const dsk_tensor_info *gu[2] = {tensor(c, "model.layers.%d.mlp.gate_proj.weight", l, 0),
                                        tensor(c, "model.layers.%d.mlp.up_proj.weight", l, 0)};
        const dsk_tensor_info *down = tensor(c, "model.layers.%d.mlp.down_proj.weight", l, 0);
        if (cal) {
            dsk_act_stats_init(&st, d);
            dsk_calib_capture(&c->calib, l, DSK_CALIB_FFN_IN, &st);
        }
        rc = quantize_set(c, gu, 2, clip_all, cal ? &st : NULL, NULL, ffn_norm, NULL, NULL, err);
        dsk_act_stats_free(&st);
        if (!rc && cal) {
            dsk_act_stats_init(&st, (int)down->shape[1]);
            dsk_calib_capture(&c->calib, l, DSK_CALIB_FFN_ACT, &st);
        }
        if (!rc)
            rc = quantize_set(c, &down, 1, clip_all, cal ? &st : NULL, NULL, NULL, gu[1], NULL, err);
        dsk_act_stats_free(&st);
        return rc;
    }
    int E = cfg->n_routed_experts, n = E + (cfg->n_shared_experts > 0);
    const dsk_tensor_info **gate = dsk_xcalloc((size_t)n, sizeof *gate), **up = dsk_xcalloc((size_t)n, sizeof *up),
                          **down = dsk_xcalloc((size_t)n, sizeof *down), **gu = dsk_xcalloc(2 * (size_t)n, sizeof *gu);
    int *clip = dsk_xmalloc(2 * (size_t)n * sizeof *clip);
    for (int e = 0; e < n; e++) {
        if (e < E) {
            gate[e] = tensor(c, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, e);
            up[e] = tensor(c, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, e);
            down[e] = tensor(c, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, e);
        } else {
            gate[e] = tensor(c, "model.layers.%d.mlp.shared_experts.gate_proj.weight", l, 0);
            up[e] = tensor(c, "model.layers.%d.mlp.shared_experts.up_proj.weight", l, 0);
            down[e] = tensor(c, "model.layers.%d.mlp.shared_experts.down_proj.weight", l, 0);
        }
        gu[2 * e] = gate[e];
        gu[2 * e + 1] = up[e];
        clip[2 * e] = clip[2 * e + 1] = 1;
    }
    const dsk_tensor_info *router = tensor(c, "model.layers.%d.mlp.gate.weight", l, 0);
    if (cal) {
        dsk_act_stats_init(&st, d);
        dsk_calib_capture(&c->calib, l, DSK_CALIB_FFN_IN, &st);
    }
    /* Every expert reads the one normalised input: one scale search over
     * all of them, folded into the norm (and undone in the router). */
    rc = quantize_set(c, gu, 2 * n, clip, cal ? &st : NULL, NULL, ffn_norm, NULL, router, err);
    dsk_act_stats_free(&st);
    dsk_act_stats *est = NULL;
    if (!rc && cal) {
        est = dsk_xcalloc((size_t)n, sizeof *est);
        for (int e = 0; e < n; e++)
            dsk_act_stats_init(&est[e], (int)down[e]->shape[1]);
        expert_acts x = {c, gate, up, est, n};
        dsk_calib_each_ffn_input(&c->calib, l, add_expert_acts, &x);
    }
    for (int e = 0; e < n && !rc; e++)
        rc = quantize_set(c, &down[e], 1, clip_all, est ? &est[e] : NULL, NULL, NULL, up[e], NULL, err);
    for (int e = 0; est && e < n; e++)
        dsk_act_stats_free(&est[e]);
    free(est);
    free(gate), free(up), free(down), free(gu), free(clip);
    return rc;
}

int dsk_quantize_model(dsk_model *m, const dsk_quant_opts *o, dsk_quantized *out, dsk_err *err)
{
    memset(out, 0, sizeof *out);
    size_t n_linear = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        if (!dsk_quant_is_linear(t->name, t->ndim))
            continue;
        n_linear++;
        if (t->shape[0] % 8 || t->shape[1] % 8)
            return dsk_fail(err, EX_DATAERR, "%s is %lld x %lld: the 4-bit layout needs both dimensions to be "
                            "multiples of 8", t->name, (long long)t->shape[0], (long long)t->shape[1]);
        if (t->shape[1] % o->group_size)
            return dsk_fail(err, EX_USAGE, "%s has %lld input columns, not a multiple of --group-size %d "
                            "(try a group size that divides it)", t->name, (long long)t->shape[1], o->group_size);
    }
    if (o->method != DSK_QUANT_RTN && !o->calib)
        return dsk_fail(err, EX_USAGE, "%s needs calibration data: --calib DIR",
                        o->method == DSK_QUANT_GPTQ ? "GPTQ" : "AWQ");
    quant_ctx c = {m, o, NULL, out, {0}, 0};
    int rc = 0;
    if (o->calib) {
        if ((rc = dsk_calib_open(&c.calib, m, o->calib, o->calib_tokenizer, o->calib_split, o->calib_rows > 0 ? o->calib_rows : 128,
                                 o->calib_batch > 0 ? o->calib_batch : 8, err)))
            return rc;
        c.have_calib = 1;
        out->calib_tokens = c.calib.tokens;
    }
    out->layer = dsk_xcalloc(n_linear, sizeof *out->layer);
    c.host = dsk_xmalloc(m->n_params * sizeof *c.host);
    m->be->download(m->be, c.host, m->params, m->n_params * sizeof *c.host);
    /* No NaN or inf here (one would quantize to garbage that its group's
     * error hides): the checkpoint's loader refuses them. */
    for (int l = 0; l < m->cfg.n_layers && !rc; l++) {
        rc = quantize_block(&c, l, err);
        if (!rc && c.have_calib && l + 1 < m->cfg.n_layers)
            dsk_calib_advance(&c.calib, l);
    }
    if (!rc && (size_t)out->n != n_linear)
        rc = dsk_fail(err, EX_SOFTWARE, "quantized %d of %zu linear layers", out->n, n_linear);
    free(c.host);
    if (c.have_calib)
        dsk_calib_close(&c.calib);
    if (rc)
        dsk_quantized_free(out);
    return rc;
}

void dsk_quantized_free(dsk_quantized *q)
{
    for (int i = 0; i < q->n; i++)
        dsk_qmat_free(&q->layer[i].q);
    free(q->layer);
    memset(q, 0, sizeof *q);
}
