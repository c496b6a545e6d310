#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/ffn.h"
#include "model/generate.h"

dsk_generator *dsk_generator_new(dsk_model *m, int max_len)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    if (max_len <= 0 || max_len > c->max_seq_len)
        max_len = c->max_seq_len;
    dsk_generator *g = dsk_xcalloc(1, sizeof *g);
    g->m = m;
    g->max_len = max_len;
    size_t d = (size_t)c->d_model, hd = d / (size_t)c->n_heads, qd = (size_t)c->n_heads * hd;
    size_t kvd = (size_t)c->n_kv_heads * hd, F = (size_t)c->d_ff, V = (size_t)c->vocab_size;
    g->k_cache = dsk_xcalloc((size_t)c->n_layers, sizeof *g->k_cache);
    g->v_cache = dsk_xcalloc((size_t)c->n_layers, sizeof *g->v_cache);
    for (int l = 0; l < c->n_layers; l++) {
        g->k_cache[l] = be->alloc(be, (size_t)max_len * kvd * sizeof(float));
        g->v_cache[l] = be->alloc(be, (size_t)max_len * kvd * sizeof(float));
    }
#define A(n) be->alloc(be, (n) * sizeof(float))
    g->x = A(d);
    g->h = A(d);
    g->rstd = A(1);
    g->q = A(qd);
    g->k = A(kvd);
    g->v = A(kvd);
    g->att = A(qd);
    g->g = A(F);
    g->u = A(F);
    g->act = A(F);
    g->logits = A(V);
#undef A
    g->tok = be->alloc(be, sizeof(int32_t));
    g->pos = be->alloc(be, sizeof(int32_t));
    g->host_logits = dsk_xmalloc(V * sizeof *g->host_logits);
    g->order = dsk_xmalloc(V * sizeof *g->order);
    if (c->n_routed_experts > 0)
        dsk_moe_bufs_alloc(&g->moe, be, c, 1);
    return g;
}

void dsk_generator_free(dsk_generator *g)
{
    if (!g)
        return;
    dsk_backend *be = g->m->be;
    for (int l = 0; l < g->m->cfg.n_layers; l++) {
        be->free(be, g->k_cache[l]);
        be->free(be, g->v_cache[l]);
    }
    float *bufs[] = {g->x, g->h, g->rstd, g->q, g->k, g->v, g->att, g->g, g->u, g->act, g->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->free(be, bufs[i]);
    be->free(be, g->tok);
    be->free(be, g->pos);
    free(g->k_cache);
    free(g->v_cache);
    free(g->host_logits);
    free(g->order);
    if (g->moe.n)
        dsk_moe_bufs_free(&g->moe, be);
    free(g);
}

void dsk_generator_reset(dsk_generator *g) { g->len = 0; }

int dsk_generator_feed(dsk_generator *g, int32_t token, dsk_err *err)
{
    dsk_model *m = g->m;
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    if (g->len >= g->max_len)
        return dsk_fail(err, EX_DATAERR, "the sequence is full (%d tokens)", g->max_len);
    if (token < 0 || token >= c->vocab_size)
        return dsk_fail(err, EX_DATAERR, "token %d is outside the vocabulary (%d)", token, c->vocab_size);
    int d = c->d_model, hd = d / c->n_heads, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, F = c->d_ff;
    int32_t pos = g->len;
    be->upload(be, g->tok, &token, sizeof token);
    be->upload(be, g->pos, &pos, sizeof pos);
    be->embedding_fwd(be, g->x, m->w.embed, g->tok, 1, d);
    for (int l = 0; l < c->n_layers; l++) {
        const dsk_layer_w *w = &m->w.layer[l];
        dsk_attn_shape s = {1, 1, c->n_heads, c->n_kv_heads, hd, dsk_config_layer_kind(c, l), c->window};
        float *kc = g->k_cache[l] + (size_t)pos * kvd, *vc = g->v_cache[l] + (size_t)pos * kvd;
        be->rmsnorm_fwd(be, g->h, g->rstd, g->x, w->attn_norm, 1, d, (float)c->norm_eps);
        be->gemm(be, 0, 1, 1, qd, d, 1, g->h, w->wq, 0, g->q);
        be->gemm(be, 0, 1, 1, kvd, d, 1, g->h, w->wk, 0, kc);
        be->gemm(be, 0, 1, 1, kvd, d, 1, g->h, w->wv, 0, vc);
        be->rope(be, g->q, g->pos, m->rope_cs, 1, c->n_heads, hd, 0);
        be->rope(be, kc, g->pos, m->rope_cs, 1, c->n_kv_heads, hd, 0);
        be->attention_decode(be, g->att, g->q, g->k_cache[l], g->v_cache[l], pos + 1, w->alpha, &s);
        be->gemm(be, 0, 1, 1, d, qd, 1, g->att, w->wo, 1, g->x);
        be->rmsnorm_fwd(be, g->h, g->rstd, g->x, w->ffn_norm, 1, d, (float)c->norm_eps);
        if (dsk_config_layer_is_moe(c, l)) {
            dsk_moe_run run = {0};   /* inference: no noise, no capacity */
            run.rows_per = 1;
            dsk_moe_forward(be, c, &w->moe, &g->moe, NULL, g->h, g->x, 1, &run);
            continue;
        }
        dsk_ffn f = {w->w_gate, w->w_up, w->w_down, g->g, g->u, g->act};
        dsk_ffn_fwd(be, &f, g->h, g->x, 1, 1, d, F);
    }
    be->rmsnorm_fwd(be, g->h, g->rstd, g->x, m->w.final_norm, 1, d, (float)c->norm_eps);
    be->gemm(be, 0, 1, 1, c->vocab_size, d, 1, g->h, m->w.lm_head, 0, g->logits);
    be->download(be, g->host_logits, g->logits, (size_t)c->vocab_size * sizeof(float));
    g->len++;
    return 0;
}

static const float *sort_keys;
static int by_logit_desc(const void *a, const void *b)
{
    float x = sort_keys[*(const int *)a], y = sort_keys[*(const int *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;   /* ties: lower id first, for repeatability */
}

int32_t dsk_sample(float *logits, int V, const dsk_sampler_opts *o, dsk_rng *rng, int *order)
{
    if (o->temperature <= 0) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    for (int i = 0; i < V; i++)
        order[i] = i;
    sort_keys = logits;
    qsort(order, (size_t)V, sizeof *order, by_logit_desc);
    int n = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    /* Probabilities of the n best, at the temperature, into logits[order[i]]. */
    double mx = logits[order[0]], sum = 0;
    for (int i = 0; i < n; i++) {
        double p = exp((logits[order[i]] - mx) / o->temperature);
        logits[order[i]] = (float)p;
        sum += p;
    }
    if (o->top_p > 0 && o->top_p < 1) {
        double cum = 0;
        int keep = 0;
        while (keep < n) {
            cum += logits[order[keep++]] / sum;
            if (cum >= o->top_p)
                break;
        }
        sum = 0;
        for (int i = 0; i < keep; i++)
            sum += logits[order[i]];
        n = keep;
    }
    double u = dsk_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += logits[order[i]];
        if (u < acc)
            return order[i];
    }
    return order[n - 1];
}

int dsk_generate(dsk_generator *g, const int32_t *prompt, int n_prompt, int max_new, const dsk_sampler_opts *o,
                 dsk_rng *rng, int32_t stop_token, int32_t stop2, int32_t *out, dsk_err *err)
{
    dsk_generator_reset(g);
    if (n_prompt < 1) {
        dsk_fail(err, EX_DATAERR, "generation needs at least one prompt token");
        return -1;
    }
    for (int i = 0; i < n_prompt; i++)
        if (dsk_generator_feed(g, prompt[i], err))
            return -1;
    int n = 0;
    while (n < max_new) {
        int32_t t = dsk_sample(g->host_logits, g->m->cfg.vocab_size, o, rng, g->order);
        out[n++] = t;
        if ((stop_token >= 0 && t == stop_token) || (stop2 >= 0 && t == stop2) || g->len >= g->max_len)
            break;
        if (dsk_generator_feed(g, t, err))
            return -1;
    }
    return n;
}
