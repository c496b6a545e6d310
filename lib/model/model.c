/* The dense decoder's parameters, forward and backward, layer by layer,
 * each backward beside the forward it inverts (see model.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/ffn.h"
#include "model/model.h"

/* ---- parameter layout ---------------------------------------------------------------------- */

static float *add_tensor(dsk_model *m, size_t *cap, const char *name, int ndim, int64_t d0, int64_t d1)
{
    if (m->n_tensors == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        m->tensors = dsk_xrealloc(m->tensors, *cap * sizeof *m->tensors);
    }
    dsk_tensor_info *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->numel = (size_t)d0 * (size_t)(ndim == 2 ? d1 : 1);
    t->offset = m->n_params;
    t->decay = ndim == 2;
    m->n_params += t->numel;
    /* The buffer does not exist yet: keep the offset, resolve later. */
    return (float *)(uintptr_t)(t->offset + 1);
}

/* Points unit u's weights in w at base, which holds the unit from its
 * first value (the offsets add_tensor() handed out, less the unit's
 * start), or at nothing when base is NULL. */
static void resolve_unit(const dsk_model *m, dsk_weights *w, int u, float *base)
{
    const dsk_weights *offsets = &m->off;
    size_t lo = m->unit_lo[u];
#define R(p) ((p) && base ? base + ((uintptr_t)(p) - 1 - lo) : NULL)
    if (u == 0) {
        w->embed = R(offsets->embed);
        if (m->cfg.tie_embeddings)
            w->lm_head = w->embed;
        return;
    }
    if (u == m->cfg.n_layers + 1) {
        w->final_norm = R(offsets->final_norm);
        if (!m->cfg.tie_embeddings)
            w->lm_head = R(offsets->lm_head);
        return;
    }
    const dsk_layer_w *o = &offsets->layer[u - 1];
    dsk_layer_w *d = &w->layer[u - 1];
    d->attn_norm = R(o->attn_norm);
    d->wq = R(o->wq);
    d->wk = R(o->wk);
    d->wv = R(o->wv);
    d->wo = R(o->wo);
    d->alpha = R(o->alpha);
    d->ffn_norm = R(o->ffn_norm);
    d->w_gate = R(o->w_gate);
    d->w_up = R(o->w_up);
    d->w_down = R(o->w_down);
    d->moe.router = R(o->moe.router);
    d->moe.bias = R(o->moe.bias);
    d->moe.e_gate = R(o->moe.e_gate);
    d->moe.e_up = R(o->moe.e_up);
    d->moe.e_down = R(o->moe.e_down);
    d->moe.s_gate = R(o->moe.s_gate);
    d->moe.s_up = R(o->moe.s_up);
    d->moe.s_down = R(o->moe.s_down);
#undef R
}

void dsk_model_bind_unit(dsk_model *m, int unit, int what, float *base)
{
    if (what & DSK_UNIT_PARAMS)
        resolve_unit(m, &m->w, unit, base);
    if (what & DSK_UNIT_GRADS)
        resolve_unit(m, &m->gw, unit, base);
}

void dsk_model_acquire(dsk_model *m, int unit, int what)
{
    if (m->hooks.acquire)
        m->hooks.acquire(m->hooks.ctx, m, unit, what);
}

void dsk_model_release(dsk_model *m, int unit, int what)
{
    if (m->hooks.release)
        m->hooks.release(m->hooks.ctx, m, unit, what);
}

dsk_model *dsk_model_create_hooked(const dsk_model_config *cfg, dsk_backend *be, int hooked,
                                   const dsk_unit_hooks *hooks)
{
    dsk_model *m = dsk_xcalloc(1, sizeof *m);
    m->cfg = *cfg;
    m->be = be;
    if (hooks)
        m->hooks = *hooks;
    const dsk_model_config *c = &m->cfg;
    int d = c->d_model, hd = d / c->n_heads, q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    size_t cap = 0;
    dsk_weights off = {0};
    off.layer = dsk_xcalloc((size_t)c->n_layers, sizeof *off.layer);
    m->n_units = c->n_layers + 2;
    m->unit_lo = dsk_xcalloc((size_t)m->n_units + 1, sizeof *m->unit_lo);
    char name[96];
    off.embed = add_tensor(m, &cap, "model.embed_tokens.weight", 2, c->vocab_size, d);
    for (int l = 0; l < c->n_layers; l++) {
        m->unit_lo[1 + l] = m->n_params;
        dsk_layer_w *L = &off.layer[l];
#define T(field, suffix, ndim, d0, d1)                                              \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);                   \
    L->field = add_tensor(m, &cap, name, ndim, d0, d1)
        T(attn_norm, "input_layernorm.weight", 1, d, 0);
        T(wq, "self_attn.q_proj.weight", 2, q_dim, d);
        T(wk, "self_attn.k_proj.weight", 2, kv_dim, d);
        T(wv, "self_attn.v_proj.weight", 2, kv_dim, d);
        T(wo, "self_attn.o_proj.weight", 2, d, q_dim);
        if (dsk_config_layer_kind(c, l) == DSK_ATTN_HYBRID) {
            T(alpha, "self_attn.hybrid_alpha", 1, 1, 0);
        }
        T(ffn_norm, "post_attention_layernorm.weight", 1, d, 0);
        if (!dsk_config_layer_is_moe(c, l)) {
            T(w_gate, "mlp.gate_proj.weight", 2, c->d_ff, d);
            T(w_up, "mlp.up_proj.weight", 2, c->d_ff, d);
            T(w_down, "mlp.down_proj.weight", 2, d, c->d_ff);
            continue;
        }
        /* DeepSeek-V3's names; each projection's experts back to back. */
        int E = c->n_routed_experts, Fe = c->d_ff_expert, Fs = c->n_shared_experts * Fe;
        T(moe.router, "mlp.gate.weight", 2, E, d);
        if (c->balance == DSK_BALANCE_BIAS) {
            T(moe.bias, "mlp.gate.e_score_correction_bias", 1, E, 0);
        }
        static const char *const proj[] = {"gate_proj", "up_proj", "down_proj"};
        for (int p = 0; p < 3; p++)
            for (int e = 0; e < E; e++) {
                snprintf(name, sizeof name, "model.layers.%d.mlp.experts.%d.%s.weight", l, e, proj[p]);
                float *at = add_tensor(m, &cap, name, 2, p == 2 ? d : Fe, p == 2 ? Fe : d);
                if (e == 0)
                    *(p == 0 ? &L->moe.e_gate : p == 1 ? &L->moe.e_up : &L->moe.e_down) = at;
            }
        if (Fs) {
            T(moe.s_gate, "mlp.shared_experts.gate_proj.weight", 2, Fs, d);
            T(moe.s_up, "mlp.shared_experts.up_proj.weight", 2, Fs, d);
            T(moe.s_down, "mlp.shared_experts.down_proj.weight", 2, d, Fs);
        }
#undef T
    }
    m->unit_lo[c->n_layers + 1] = m->n_params;
    off.final_norm = add_tensor(m, &cap, "model.norm.weight", 1, d, 0);
    off.lm_head = c->tie_embeddings ? off.embed : add_tensor(m, &cap, "lm_head.weight", 2, c->vocab_size, d);

    if (c->n_routed_experts > 0) {
        m->moe_stats = dsk_xcalloc((size_t)c->n_layers, sizeof *m->moe_stats);
        for (int l = 0; l < c->n_layers; l++)
            if (dsk_config_layer_is_moe(c, l))
                dsk_moe_stats_init(&m->moe_stats[l], c);
    }
    m->unit_lo[m->n_units] = m->n_params;
    m->off = off;

    m->moe_run.aux_grad_scale = 1.0f;
    if (!(hooked & DSK_UNIT_PARAMS)) {
        m->params = be->alloc(be, m->n_params * sizeof(float));
        if (be->register_weights)   /* a 16-bit copy for the products, kept by adamw (cuda) */
            be->register_weights(be, m->params, m->n_params);
    }
    if (!(hooked & DSK_UNIT_GRADS))
        m->grads = be->alloc(be, m->n_params * sizeof(float));
    m->w.layer = dsk_xcalloc((size_t)c->n_layers, sizeof *m->w.layer);
    m->gw.layer = dsk_xcalloc((size_t)c->n_layers, sizeof *m->gw.layer);
    for (int u = 0; u < m->n_units; u++) {
        dsk_model_bind_unit(m, u, DSK_UNIT_PARAMS, m->params ? m->params + m->unit_lo[u] : NULL);
        dsk_model_bind_unit(m, u, DSK_UNIT_GRADS, m->grads ? m->grads + m->unit_lo[u] : NULL);
    }

    size_t cs_len = (size_t)c->max_seq_len * hd;
    m->rope_cs = be->alloc(be, cs_len * sizeof(float));
    if (!be->counts_only) {
        float *cs = dsk_xmalloc(cs_len * sizeof *cs);
        dsk_rope_table(cs, c->max_seq_len, hd, c->rope_theta);
        be->upload(be, m->rope_cs, cs, cs_len * sizeof *cs);
        free(cs);
    }
    return m;
}

dsk_model *dsk_model_create(const dsk_model_config *cfg, dsk_backend *be)
{
    return dsk_model_create_hooked(cfg, be, 0, NULL);
}

const dsk_tensor_info *dsk_model_find_tensor(const dsk_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return &m->tensors[i];
    return NULL;
}

void dsk_model_init_values(const dsk_model *m, uint64_t seed,
                           void (*put)(void *ctx, size_t offset, const float *v, size_t n), void *ctx)
{
    const dsk_model_config *c = &m->cfg;
    size_t largest = 0;
    for (size_t i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].numel > largest)
            largest = m->tensors[i].numel;
    float *p = dsk_xmalloc(largest * sizeof *p);
    dsk_rng rng;
    dsk_rng_seed(&rng, seed);
    for (size_t i = 0; i < m->n_tensors; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        if (strstr(t->name, "hybrid_alpha")) {
            p[0] = (float)c->alpha_init;
        } else if (strstr(t->name, "e_score_correction_bias")) {
            for (size_t j = 0; j < t->numel; j++)
                p[j] = 0.0f;
        } else if (t->ndim == 1) {
            for (size_t j = 0; j < t->numel; j++)
                p[j] = 1.0f;
        } else {
            /* GPT-2's scaling of the projections that write the residual stream. */
            double std = c->init_std;
            if (strstr(t->name, "o_proj") || strstr(t->name, "down_proj"))   /* experts' too */
                std /= sqrt(2.0 * c->n_layers);
            dsk_rng_normal_fill(&rng, p, t->numel, std);
        }
        put(ctx, t->offset, p, t->numel);
    }
    free(p);
}

static void put_host(void *ctx, size_t offset, const float *v, size_t n)
{
    memcpy((float *)ctx + offset, v, n * sizeof *v);
}

void dsk_model_init_weights(dsk_model *m, uint64_t seed)
{
    float *host = dsk_xmalloc(m->n_params * sizeof *host);
    dsk_model_init_values(m, seed, put_host, host);
    m->be->upload(m->be, m->params, host, m->n_params * sizeof *host);
    free(host);
}

/* ---- activations ------------------------------------------------------------------------------ */

/* One layer's buffers besides its input (or, with recompute, the shared set). */
static void free_layer_bufs(dsk_backend *be, dsk_layer_acts *a)
{
    float *f[] = {a->h1, a->rstd1, a->q, a->k, a->v, a->att, a->lse_g, a->lse_l, a->att_g, a->att_l,
                  a->resid_mid, a->h2, a->rstd2, a->g, a->u, a->act};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i])
            be->free(be, f[i]);
    if (a->moe.n)
        dsk_moe_bufs_free(&a->moe, be);
}

static void free_batch(dsk_model *m)
{
    dsk_backend *be = m->be;
    if (m->acts) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            dsk_layer_acts *a = &m->acts[l];
            if (a->resid_in)
                be->free(be, a->resid_in);
            if (!m->recompute)
                free_layer_bufs(be, a);
        }
        if (m->recompute)
            free_layer_bufs(be, &m->shared);
        free(m->acts);
        m->acts = NULL;
    }
    memset(&m->shared, 0, sizeof m->shared);
    free(m->rng_at);
    m->rng_at = NULL;
    if (m->moe_grads.dyp)
        dsk_moe_grads_free(&m->moe_grads, be);
    void *bufs[] = {m->tokens, m->targets, m->pos, m->weights, m->grad_weights, m->resid_out, m->hf, m->rstdf, m->logits,
                    m->losses, m->d_resid, m->d_h, m->d_q, m->d_k, m->d_v, m->d_att, m->d_g, m->d_u, m->d_act};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->free(be, bufs[i]);
    free(m->host_losses);
    m->host_losses = NULL;
    m->B = m->T = m->cap_B = m->cap_T = 0;
}

/* What a layer keeps for its backward (all but the input), sized for n
 * tokens of B rows.  Flags: the attention parts and feed-forward kinds
 * to make room for (the shared set of a recomputing model has room for
 * every kind its layers use). */
static void alloc_layer_bufs(dsk_backend *be, const dsk_model_config *c, dsk_layer_acts *a, int B, int T,
                             int need_g, int need_l, int need_hybrid, int need_dense, int need_moe)
{
    size_t n = (size_t)B * T, d = (size_t)c->d_model, hd = d / (size_t)c->n_heads;
    size_t q_dim = (size_t)c->n_heads * hd, kv_dim = (size_t)c->n_kv_heads * hd, F = (size_t)c->d_ff;
    size_t lse = (size_t)B * c->n_heads * T;
#define A(count) be->alloc(be, (count) * sizeof(float))
    a->h1 = A(n * d);
    a->rstd1 = A(n);
    a->q = A(n * q_dim);
    a->k = A(n * kv_dim);
    a->v = A(n * kv_dim);
    a->att = A(n * q_dim);
    a->lse_g = need_g ? A(lse) : NULL;
    a->lse_l = need_l ? A(lse) : NULL;
    a->att_g = need_hybrid ? A(n * q_dim) : NULL;
    a->att_l = need_hybrid ? A(n * q_dim) : NULL;
    a->resid_mid = A(n * d);
    a->h2 = A(n * d);
    a->rstd2 = A(n);
    if (need_moe)
        dsk_moe_bufs_alloc(&a->moe, be, c, (int)n);
    if (need_dense) {
        a->g = A(n * F);
        a->u = A(n * F);
        a->act = A(n * F);
    }
#undef A
}

void dsk_model_alloc_batch(dsk_model *m, int B, int T)
{
    free_batch(m);
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    size_t n = (size_t)B * T, d = (size_t)c->d_model, hd = d / (size_t)c->n_heads;
    size_t q_dim = (size_t)c->n_heads * hd, kv_dim = (size_t)c->n_kv_heads * hd, F = (size_t)c->d_ff;
#define A(count) be->alloc(be, (count) * sizeof(float))
    m->B = m->cap_B = B;
    m->T = m->cap_T = T;
    m->acts = dsk_xcalloc((size_t)c->n_layers, sizeof *m->acts);
    m->shared_holds = -1;
    int any[5] = {0};   /* global, local, hybrid, dense, moe */
    for (int l = 0; l < c->n_layers; l++) {
        dsk_layer_acts *a = &m->acts[l];
        int kind = dsk_config_layer_kind(c, l), moe = dsk_config_layer_is_moe(c, l);
        int part[5] = {kind != DSK_ATTN_LOCAL, kind != DSK_ATTN_GLOBAL, kind == DSK_ATTN_HYBRID, !moe, moe};
        a->resid_in = A(n * d);
        if (!m->recompute)
            alloc_layer_bufs(be, c, a, B, T, part[0], part[1], part[2], part[3], part[4]);
        for (int i = 0; i < 5; i++)
            any[i] |= part[i];
    }
    if (m->recompute) {
        /* One set for all layers; each layer's acts point into it. */
        alloc_layer_bufs(be, c, &m->shared, B, T, any[0], any[1], any[2], any[3], any[4]);
        for (int l = 0; l < c->n_layers; l++) {
            float *own = m->acts[l].resid_in;
            m->acts[l] = m->shared;
            m->acts[l].resid_in = own;
        }
        if (any[4])
            m->rng_at = dsk_xcalloc((size_t)c->n_layers, sizeof *m->rng_at);
    }
    if (c->n_routed_experts > 0)
        dsk_moe_grads_alloc(&m->moe_grads, be, c, (int)n);
    m->tokens = be->alloc(be, n * sizeof(int32_t));
    m->targets = be->alloc(be, n * sizeof(int32_t));
    m->pos = be->alloc(be, n * sizeof(int32_t));
    m->weights = A(n);
    m->grad_weights = A(n);
    m->resid_out = A(n * d);
    m->hf = A(n * d);
    m->rstdf = A(n);
    m->logit_rows = dsk_model_logit_rows(m->head_rows, (int)n, c->vocab_size, be->logits_budget);
    m->logits = A((size_t)m->logit_rows * c->vocab_size);
    m->losses = A(n);
    m->d_resid = A(n * d);
    m->d_h = A(n * d);
    m->d_q = A(n * q_dim);
    m->d_k = A(n * kv_dim);
    m->d_v = A(n * kv_dim);
    m->d_att = A(n * q_dim);
    m->d_g = A(n * F);
    m->d_u = A(n * F);
    m->d_act = A(n * F);
#undef A
    m->host_losses = be->counts_only ? NULL : dsk_xmalloc(n * sizeof *m->host_losses);
}

int dsk_model_set_batch(dsk_model *m, const dsk_batch *b, dsk_err *err)
{
    if (b->B < 1 || b->T < 1 || b->B > m->cap_B || b->T > m->cap_T)
        return dsk_fail(err, EX_SOFTWARE, "batch %dx%d does not fit the allocated %dx%d", b->B, b->T, m->cap_B,
                        m->cap_T);
    /* A smaller batch uses the front of each buffer: every pass below
     * works on m->B * m->T tokens laid out [B][T]. */
    m->logits_whole = 0;
    m->B = b->B;
    m->T = b->T;
    size_t n = (size_t)b->B * b->T;
    m->whole_rows = 1;   /* until a position is not its place in the row */
    for (size_t i = 0; i < n; i++) {
        if (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab_size || b->targets[i] >= m->cfg.vocab_size)
            return dsk_fail(err, EX_DATAERR, "token %d at batch position %zu is outside the vocabulary (%d)",
                            b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab_size ? b->tokens[i] : b->targets[i],
                            i, m->cfg.vocab_size);
        if (b->pos[i] < 0 || b->pos[i] >= m->cfg.max_seq_len || b->pos[i] > (int32_t)(i % (size_t)b->T))
            return dsk_fail(err, EX_DATAERR, "position %d at batch position %zu is beyond max_position_embeddings "
                            "%d or its row", b->pos[i], i, m->cfg.max_seq_len);
        m->whole_rows &= b->pos[i] == (int32_t)(i % (size_t)b->T);
    }
    dsk_backend *be = m->be;
    be->upload(be, m->tokens, b->tokens, n * sizeof(int32_t));
    be->upload(be, m->targets, b->targets, n * sizeof(int32_t));
    be->upload(be, m->pos, b->pos, n * sizeof(int32_t));
    if (b->weights) {
        be->upload(be, m->weights, b->weights, n * sizeof(float));
    } else {
        for (size_t i = 0; i < n; i++)
            m->host_losses[i] = 1.0f;
        be->upload(be, m->weights, m->host_losses, n * sizeof(float));
    }
    /* Targets counted on the host, where they are. */
    double count = 0;
    for (size_t i = 0; i < n; i++)
        count += b->targets[i] >= 0 && (!b->weights || b->weights[i] != 0);
    m->n_targets = count;
    return 0;
}

static dsk_attn_shape attn_shape(const dsk_model *m, int l)
{
    const dsk_model_config *c = &m->cfg;
    dsk_attn_shape s = {m->B, m->T, c->n_heads, c->n_kv_heads, c->d_model / c->n_heads,
                        dsk_config_layer_kind(c, l), c->window, m->whole_rows};
    return s;
}

/* ---- forward ------------------------------------------------------------------------------------- */

static void attention_block_fwd(dsk_model *m, int l, float *resid_out)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    const dsk_layer_w *w = &m->w.layer[l];
    dsk_layer_acts *a = &m->acts[l];
    int n = m->B * m->T, d = c->d_model, hd = d / c->n_heads;
    int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    dsk_attn_shape s = attn_shape(m, l);

    be->rmsnorm_fwd(be, a->h1, a->rstd1, a->resid_in, w->attn_norm, n, d, (float)c->norm_eps);
    be->gemm(be, 0, 1, n, q_dim, d, 1, a->h1, w->wq, 0, a->q);
    be->gemm(be, 0, 1, n, kv_dim, d, 1, a->h1, w->wk, 0, a->k);
    be->gemm(be, 0, 1, n, kv_dim, d, 1, a->h1, w->wv, 0, a->v);
    be->rope(be, a->q, m->pos, m->rope_cs, n, c->n_heads, hd, 0);
    be->rope(be, a->k, m->pos, m->rope_cs, n, c->n_kv_heads, hd, 0);
    be->attention_fwd(be, a->att, a->lse_g, a->lse_l, a->att_g, a->att_l, a->q, a->k, a->v, m->pos, w->alpha, &s);
    /* The block's output: its input (kept for the backward) plus the product. */
    be->gemm_add(be, 0, 1, n, d, q_dim, 1, a->att, w->wo, a->resid_in, resid_out);
}

static void ffn_block_fwd(dsk_model *m, int l, float *resid_out)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    const dsk_layer_w *w = &m->w.layer[l];
    dsk_layer_acts *a = &m->acts[l];
    int n = m->B * m->T, d = c->d_model, F = c->d_ff;

    be->rmsnorm_fwd(be, a->h2, a->rstd2, a->resid_mid, w->ffn_norm, n, d, (float)c->norm_eps);
    dsk_ffn f = {w->w_gate, w->w_up, w->w_down, a->g, a->u, a->act};
    dsk_ffn_fwd(be, &f, a->h2, a->resid_mid, resid_out, n, d, F);
}

/* again: the backward's recomputation, which must route exactly as the
 * forward did (the same router noise, from the state saved then) and
 * count nothing twice (no statistics, no loss). */
static void moe_block_fwd(dsk_model *m, int l, float *resid_out, int again)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    dsk_layer_acts *a = &m->acts[l];
    int n = m->B * m->T, d = c->d_model;
    dsk_moe_run run = m->moe_run;
    run.rows_per = m->T;
    dsk_rng replay;
    if (m->recompute && run.rng) {
        if (again) {
            replay = m->rng_at[l];
            run.rng = &replay;
        } else {
            m->rng_at[l] = *run.rng;
        }
    }
    be->rmsnorm_fwd(be, a->h2, a->rstd2, a->resid_mid, m->w.layer[l].ffn_norm, n, d, (float)c->norm_eps);
    be->copy(be, resid_out, a->resid_mid, (size_t)n * d * sizeof(float));
    double aux = dsk_moe_forward(be, c, &m->w.layer[l].moe, &a->moe, again ? NULL : &m->moe_stats[l], a->h2,
                                 resid_out, n, &run);
    if (!again)
        m->aux_loss += aux;
}

void dsk_model_embed(dsk_model *m)
{
    m->aux_loss = 0;
    dsk_model_acquire(m, 0, DSK_UNIT_PARAMS);
    m->be->embedding_fwd(m->be, m->acts[0].resid_in, m->w.embed, m->tokens, m->B * m->T, m->cfg.d_model);
    dsk_model_release(m, 0, DSK_UNIT_PARAMS);
}

/* Block l from its input into next (the weights acquired by the caller). */
static void block_fwd(dsk_model *m, int l, float *next, int again)
{
    m->shared_holds = l;
    attention_block_fwd(m, l, m->acts[l].resid_mid);
    if (dsk_config_layer_is_moe(&m->cfg, l))
        moe_block_fwd(m, l, next, again);
    else
        ffn_block_fwd(m, l, next);
}

void dsk_model_forward_block(dsk_model *m, int l)
{
    float *next = l + 1 < m->cfg.n_layers ? m->acts[l + 1].resid_in : m->resid_out;
    dsk_model_acquire(m, dsk_model_layer_unit(l), DSK_UNIT_PARAMS);
    block_fwd(m, l, next, 0);
    dsk_model_release(m, dsk_model_layer_unit(l), DSK_UNIT_PARAMS);
}

/* The head's weights: the final norm and lm_head (the embedding's unit too when tied). */
static void acquire_head(dsk_model *m, int what)
{
    dsk_model_acquire(m, m->cfg.n_layers + 1, what);
    if (m->cfg.tie_embeddings)
        dsk_model_acquire(m, 0, what);
}

static void release_head(dsk_model *m, int what)
{
    if (m->cfg.tie_embeddings)
        dsk_model_release(m, 0, what);
    dsk_model_release(m, m->cfg.n_layers + 1, what);
}

int dsk_model_logit_rows(int head_rows, int n, int V, size_t budget)
{
    if (head_rows > 0)
        return head_rows > n ? n : head_rows;
    /* Automatic: the whole batch while its logits fit the budget, else
     * chunks of as near one size as a multiple of 128 rows (a
     * tensor-core product's tile) allows: 4 of 4096 rows at a 1 GiB
     * budget, vocabulary 50K and 16384 rows, not 3 of 5248 and one of
     * 640.  A smaller multiple of 128 than that where rounding up would
     * pass the budget (640 rows at 128 MiB and 50K, not 667 and a tile
     * 5% full). */
    size_t row_bytes = (size_t)(V > 0 ? V : 1) * sizeof(float);
    size_t most = (budget ? budget : DSK_LOGITS_BUDGET) / row_bytes;
    if (most >= (size_t)n)
        return n;
    if (most <= 128)
        return most < 1 ? 1 : (int)most;
    size_t chunks = ((size_t)n + most - 1) / most, rows = ((size_t)n + chunks - 1) / chunks;
    rows = (rows + 127) / 128 * 128;
    return (int)(rows <= most ? rows : most - most % 128);
}

/* The LM head and the loss, logit_rows rows at a time, so the logits
 * never exist for the whole batch.  With grad_scale != 0 each chunk's
 * logits become their gradient in place (softmax_xent) and go straight
 * back through the head: the head's weight gradient, then d_h = dL/dhf,
 * and, after the last chunk, the final norm's backward into d_resid,
 * where dsk_model_backward starts.  The head's units are acquired by
 * the caller (with their gradients when grad_scale != 0). */
static void head_pass(dsk_model *m, const float *weights, float grad_scale)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    int n = m->B * m->T, d = c->d_model, V = c->vocab_size;
    /* dsk_model_loss_grad after a forward whose logits were one chunk:
     * they are still there, not to be computed again. */
    int have = m->logits_whole && grad_scale != 0;
    m->logits_whole = grad_scale == 0 && m->logit_rows >= n;
    for (int r0 = 0; r0 < n; r0 += m->logit_rows) {
        int rows = n - r0 < m->logit_rows ? n - r0 : m->logit_rows;
        const float *hf = m->hf + (size_t)r0 * d;
        if (!have)
            be->gemm(be, 0, 1, rows, V, d, 1, hf, m->w.lm_head, 0, m->logits);
        be->softmax_xent(be, m->losses + r0, m->logits, m->targets + r0, weights + r0, rows, V, grad_scale);
        if (grad_scale == 0)
            continue;
        be->gemm(be, 0, 0, rows, d, V, 1, m->logits, m->w.lm_head, 0, m->d_h + (size_t)r0 * d);
        be->gemm(be, 1, 0, V, d, rows, 1, m->logits, hf, 1, m->gw.lm_head);
    }
    if (grad_scale == 0)
        return;
    be->zero(be, m->d_resid, (size_t)n * d * sizeof(float));
    be->rmsnorm_bwd(be, m->d_resid, m->gw.final_norm, m->d_h, m->resid_out, m->w.final_norm, m->rstdf, n, d);
}

void dsk_model_forward(dsk_model *m, float grad_scale)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    int n = m->B * m->T, d = c->d_model, L = c->n_layers;

    m->logits_whole = 0;
    dsk_model_embed(m);
    for (int l = 0; l < L; l++)
        dsk_model_forward_block(m, l);
    acquire_head(m, grad_scale != 0 ? DSK_UNIT_PARAMS | DSK_UNIT_GRADS : DSK_UNIT_PARAMS);
    be->rmsnorm_fwd(be, m->hf, m->rstdf, m->resid_out, m->w.final_norm, n, d, (float)c->norm_eps);
    head_pass(m, m->weights, grad_scale);
    release_head(m, grad_scale != 0 ? DSK_UNIT_PARAMS | DSK_UNIT_GRADS : DSK_UNIT_PARAMS);

    be->download(be, m->host_losses, m->losses, (size_t)n * sizeof(float));
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += m->host_losses[i];
    m->loss_sum = sum;
}

/* ---- backward ------------------------------------------------------------------------------------ */

/* In: d_resid = dL/d(block output).  Out: d_resid = dL/d(block input). */
static void ffn_block_bwd(dsk_model *m, int l)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    const dsk_layer_w *w = &m->w.layer[l];
    dsk_layer_w *gw = &m->gw.layer[l];
    dsk_layer_acts *a = &m->acts[l];
    int n = m->B * m->T, d = c->d_model, F = c->d_ff;

    dsk_ffn f = {w->w_gate, w->w_up, w->w_down, a->g, a->u, a->act};
    dsk_ffn_bwd(be, &f, gw->w_gate, gw->w_up, gw->w_down, a->h2, m->d_resid, m->d_g, m->d_u, m->d_act, m->d_h, 0, n,
                d, F);
    /* The residual path carries d_resid through unchanged; the norm adds. */
    be->rmsnorm_bwd(be, m->d_resid, gw->ffn_norm, m->d_h, a->resid_mid, w->ffn_norm, a->rstd2, n, d);
}

static void moe_block_bwd(dsk_model *m, int l)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    dsk_layer_acts *a = &m->acts[l];
    int n = m->B * m->T, d = c->d_model;
    dsk_moe_run run = m->moe_run;
    run.rows_per = m->T;
    dsk_moe_backward(be, c, &m->w.layer[l].moe, &m->gw.layer[l].moe, &a->moe, &m->moe_grads, a->h2, m->d_resid,
                     m->d_h, n, &run);
    be->rmsnorm_bwd(be, m->d_resid, m->gw.layer[l].ffn_norm, m->d_h, a->resid_mid, m->w.layer[l].ffn_norm,
                    a->rstd2, n, d);
}

static void attention_block_bwd(dsk_model *m, int l)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    const dsk_layer_w *w = &m->w.layer[l];
    dsk_layer_w *gw = &m->gw.layer[l];
    dsk_layer_acts *a = &m->acts[l];
    int n = m->B * m->T, d = c->d_model, hd = d / c->n_heads;
    int q_dim = c->n_heads * hd, kv_dim = c->n_kv_heads * hd;
    dsk_attn_shape s = attn_shape(m, l);

    be->gemm(be, 0, 0, n, q_dim, d, 1, m->d_resid, w->wo, 0, m->d_att);
    be->gemm(be, 1, 0, d, q_dim, n, 1, m->d_resid, a->att, 1, gw->wo);
    be->attention_bwd(be, m->d_q, m->d_k, m->d_v, gw->alpha, m->d_att, a->att, a->q, a->k, a->v, a->lse_g, a->lse_l,
                      a->att_g, a->att_l, m->pos, w->alpha, &s);
    /* RoPE is a rotation: its backward rotates the gradient back. */
    be->rope(be, m->d_q, m->pos, m->rope_cs, n, c->n_heads, hd, 1);
    be->rope(be, m->d_k, m->pos, m->rope_cs, n, c->n_kv_heads, hd, 1);
    be->gemm(be, 0, 0, n, d, q_dim, 1, m->d_q, w->wq, 0, m->d_h);
    be->gemm(be, 0, 0, n, d, kv_dim, 1, m->d_k, w->wk, 1, m->d_h);
    be->gemm(be, 0, 0, n, d, kv_dim, 1, m->d_v, w->wv, 1, m->d_h);
    be->gemm(be, 1, 0, q_dim, d, n, 1, m->d_q, a->h1, 1, gw->wq);
    be->gemm(be, 1, 0, kv_dim, d, n, 1, m->d_k, a->h1, 1, gw->wk);
    be->gemm(be, 1, 0, kv_dim, d, n, 1, m->d_v, a->h1, 1, gw->wv);
    be->rmsnorm_bwd(be, m->d_resid, gw->attn_norm, m->d_h, a->resid_in, w->attn_norm, a->rstd1, n, d);
}

void dsk_model_backward(dsk_model *m)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    int n = m->B * m->T, d = c->d_model;

    const int both = DSK_UNIT_PARAMS | DSK_UNIT_GRADS;
    /* The head's backward ran with the forward (or dsk_model_loss_grad):
     * d_resid holds dL/d(last block's output). */
    for (int l = c->n_layers - 1; l >= 0; l--) {
        dsk_model_acquire(m, dsk_model_layer_unit(l), both);
        /* Recomputation refills the shared buffers with layer l's
         * activations (the last layer's are usually still there from
         * the forward).  The output lands in d_h, free until the block's
         * backward writes it. */
        if (m->recompute && m->shared_holds != l)
            block_fwd(m, l, m->d_h, 1);
        if (dsk_config_layer_is_moe(c, l))
            moe_block_bwd(m, l);
        else
            ffn_block_bwd(m, l);
        attention_block_bwd(m, l);
        dsk_model_release(m, dsk_model_layer_unit(l), both);
    }
    /* The embedding's backward writes its gradient and reads no weight. */
    dsk_model_acquire(m, 0, DSK_UNIT_GRADS);
    be->embedding_bwd(be, m->gw.embed, m->d_resid, m->tokens, n, d);
    dsk_model_release(m, 0, DSK_UNIT_GRADS);
}

void dsk_model_row_losses(const dsk_model *m, double *out)
{
    for (int b = 0; b < m->B; b++) {
        double s = 0;
        for (int t = 0; t < m->T; t++)
            s += m->host_losses[(size_t)b * m->T + t];
        out[b] = s;
    }
}

void dsk_model_loss_grad(dsk_model *m, const float *weights)
{
    dsk_backend *be = m->be;
    int n = m->B * m->T;
    /* Its own weights buffer: the batch's (the loss mask) stay for the next forward. */
    be->upload(be, m->grad_weights, weights, (size_t)n * sizeof(float));
    /* The logits again, chunk by chunk (only the last chunk's are kept). */
    acquire_head(m, DSK_UNIT_PARAMS | DSK_UNIT_GRADS);
    head_pass(m, m->grad_weights, 1.0f);
    release_head(m, DSK_UNIT_PARAMS | DSK_UNIT_GRADS);
}

void dsk_model_zero_grad(dsk_model *m)
{
    if (m->grads)
        m->be->zero(m->be, m->grads, m->n_params * sizeof(float));
}

void dsk_model_free(dsk_model *m)
{
    if (!m)
        return;
    free_batch(m);
    if (m->params)
        m->be->free(m->be, m->params);
    if (m->grads)
        m->be->free(m->be, m->grads);
    m->be->free(m->be, m->rope_cs);
    if (m->moe_stats) {
        for (int l = 0; l < m->cfg.n_layers; l++)
            dsk_moe_stats_free(&m->moe_stats[l]);
        free(m->moe_stats);
    }
    free(m->w.layer);
    free(m->gw.layer);
    free(m->off.layer);
    free(m->unit_lo);
    free(m->tensors);
    free(m);
}
