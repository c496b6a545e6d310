#include <stdlib.h>
#include <string.h>

#include "model/decode_batch.h"
#include "model/ffn.h"

dsk_batch_decoder *dsk_batch_decoder_new(dsk_model *m, int n_slots, int max_len, int max_rows)
{
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    if (max_len <= 0 || max_len > c->max_seq_len)
        max_len = c->max_seq_len;
    dsk_batch_decoder *d = dsk_xcalloc(1, sizeof *d);
    d->m = m;
    d->n_slots = n_slots;
    d->max_len = max_len;
    d->max_rows = max_rows;
    d->len = dsk_xcalloc((size_t)n_slots, sizeof *d->len);
    size_t dm = (size_t)c->d_model, hd = dm / (size_t)c->n_heads, qd = (size_t)c->n_heads * hd;
    size_t kvd = (size_t)c->n_kv_heads * hd, F = (size_t)c->d_ff, V = (size_t)c->vocab_size, R = (size_t)max_rows;
    d->k_cache = dsk_xcalloc((size_t)c->n_layers, sizeof *d->k_cache);
    d->v_cache = dsk_xcalloc((size_t)c->n_layers, sizeof *d->v_cache);
    for (int l = 0; l < c->n_layers; l++) {
        d->k_cache[l] = be->alloc(be, (size_t)n_slots * max_len * kvd * sizeof(float));
        d->v_cache[l] = be->alloc(be, (size_t)n_slots * max_len * kvd * sizeof(float));
    }
#define A(n) be->alloc(be, (n) * sizeof(float))
    d->x = A(R * dm);
    d->h = A(R * dm);
    d->rstd = A(R);
    d->q = A(R * qd);
    d->k = A(R * kvd);
    d->v = A(R * kvd);
    d->att = A(R * qd);
    d->g = A(R * F);
    d->u = A(R * F);
    d->act = A(R * F);
    d->logits = A(R * V);
#undef A
    d->tok = be->alloc(be, R * sizeof(int32_t));
    d->pos = be->alloc(be, R * sizeof(int32_t));
    d->slot = be->alloc(be, R * sizeof(int32_t));
    d->host_pos = dsk_xmalloc(R * sizeof *d->host_pos);
    d->host_logits = dsk_xmalloc(R * V * sizeof *d->host_logits);
    d->logit_row = dsk_xmalloc(R * sizeof *d->logit_row);
    if (c->n_routed_experts > 0)
        dsk_moe_bufs_alloc(&d->moe, be, c, max_rows);
    return d;
}

void dsk_batch_decoder_free(dsk_batch_decoder *d)
{
    if (!d)
        return;
    dsk_backend *be = d->m->be;
    for (int l = 0; l < d->m->cfg.n_layers; l++) {
        be->free(be, d->k_cache[l]);
        be->free(be, d->v_cache[l]);
    }
    float *bufs[] = {d->x, d->h, d->rstd, d->q, d->k, d->v, d->att, d->g, d->u, d->act, d->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->free(be, bufs[i]);
    be->free(be, d->tok);
    be->free(be, d->pos);
    be->free(be, d->slot);
    if (d->moe.n)
        dsk_moe_bufs_free(&d->moe, be);
    free(d->k_cache), free(d->v_cache), free(d->len), free(d->host_pos), free(d->host_logits);
    free(d->logit_row);
    free(d);
}

void dsk_batch_decoder_reset(dsk_batch_decoder *d, int slot) { d->len[slot] = 0; }

void dsk_batch_decoder_share(dsk_batch_decoder *d, int from, int to, int n)
{
    const dsk_model_config *c = &d->m->cfg;
    dsk_backend *be = d->m->be;
    if (from == to || n < 0 || n > d->len[from])
        dsk_die(EX_SOFTWARE, "dsk_batch_decoder_share: %d tokens of slot %d (%d) into slot %d", n, from,
                d->len[from], to);
    size_t kvd = (size_t)c->n_kv_heads * (size_t)(c->d_model / c->n_heads), bytes = (size_t)n * kvd * sizeof(float);
    size_t src = (size_t)from * d->max_len * kvd, dst = (size_t)to * d->max_len * kvd;
    for (int l = 0; l < c->n_layers && n > 0; l++) {
        be->copy(be, d->k_cache[l] + dst, d->k_cache[l] + src, bytes);
        be->copy(be, d->v_cache[l] + dst, d->v_cache[l] + src, bytes);
    }
    d->len[to] = n;
}

int dsk_batch_decoder_step(dsk_batch_decoder *d, const int *slots, const int32_t *tokens, int n,
                           const unsigned char *want, dsk_err *err)
{
    dsk_model *m = d->m;
    dsk_backend *be = m->be;
    const dsk_model_config *c = &m->cfg;
    if (n < 1 || n > d->max_rows)
        return dsk_fail(err, EX_SOFTWARE, "a step of %d rows (1..%d)", n, d->max_rows);
    /* Each row's position: its slot's length plus the rows of that slot
     * before it in this step.  Checked in full before anything changes. */
    for (int i = 0; i < n; i++) {
        if (slots[i] < 0 || slots[i] >= d->n_slots)
            return dsk_fail(err, EX_SOFTWARE, "slot %d (0..%d)", slots[i], d->n_slots - 1);
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size)
            return dsk_fail(err, EX_DATAERR, "token %d is outside the vocabulary (%d)", tokens[i], c->vocab_size);
        int before = 0;
        for (int j = 0; j < i; j++)
            before += slots[j] == slots[i];
        d->host_pos[i] = d->len[slots[i]] + before;
        if (d->host_pos[i] >= d->max_len)
            return dsk_fail(err, EX_DATAERR, "sequence %d is full (%d tokens)", slots[i], d->max_len);
    }
    int dm = c->d_model, hd = dm / c->n_heads, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, F = c->d_ff;
    be->upload(be, d->tok, tokens, (size_t)n * sizeof *tokens);
    be->upload(be, d->pos, d->host_pos, (size_t)n * sizeof *d->host_pos);
    _Static_assert(sizeof(int) == sizeof(int32_t), "slots are uploaded as int32_t");
    be->upload(be, d->slot, slots, (size_t)n * sizeof *slots);
    be->embedding_fwd(be, d->x, m->w.embed, d->tok, n, dm);
    for (int l = 0; l < c->n_layers; l++) {
        const dsk_layer_w *w = &m->w.layer[l];
        dsk_attn_shape s = {1, 1, c->n_heads, c->n_kv_heads, hd, dsk_config_layer_kind(c, l), c->window, 0};
        be->rmsnorm_fwd(be, d->h, d->rstd, d->x, w->attn_norm, n, dm, (float)c->norm_eps);
        be->gemm(be, 0, 1, n, qd, dm, 1, d->h, w->wq, 0, d->q);
        be->gemm(be, 0, 1, n, kvd, dm, 1, d->h, w->wk, 0, d->k);
        be->gemm(be, 0, 1, n, kvd, dm, 1, d->h, w->wv, 0, d->v);
        be->rope(be, d->q, d->pos, m->rope_cs, n, c->n_heads, hd, 0);
        be->rope(be, d->k, d->pos, m->rope_cs, n, c->n_kv_heads, hd, 0);
        /* Every row's key and value into its slot's cache first, so a
         * prefill chunk's later rows see its earlier ones. */
        for (int i = 0; i < n; i++) {
            size_t at = ((size_t)slots[i] * d->max_len + (size_t)d->host_pos[i]) * kvd;
            be->copy(be, d->k_cache[l] + at, d->k + (size_t)i * kvd, (size_t)kvd * sizeof(float));
            be->copy(be, d->v_cache[l] + at, d->v + (size_t)i * kvd, (size_t)kvd * sizeof(float));
        }
        be->attention_decode(be, d->att, d->q, d->k_cache[l], d->v_cache[l], (size_t)d->max_len * kvd, d->slot,
                             d->pos, n, w->alpha, &s);
        be->gemm(be, 0, 1, n, dm, qd, 1, d->att, w->wo, 1, d->x);
        be->rmsnorm_fwd(be, d->h, d->rstd, d->x, w->ffn_norm, n, dm, (float)c->norm_eps);
        if (dsk_config_layer_is_moe(c, l)) {
            dsk_moe_run run = {0};   /* inference: no noise, no capacity */
            run.rows_per = 1;
            dsk_moe_forward(be, c, &w->moe, &d->moe, NULL, d->h, d->x, n, &run);
            continue;
        }
        dsk_ffn f = {w->w_gate, w->w_up, w->w_down, d->g, d->u, d->act};
        dsk_ffn_fwd(be, &f, d->h, d->x, d->x, n, dm, F);
    }
    be->rmsnorm_fwd(be, d->h, d->rstd, d->x, m->w.final_norm, n, dm, (float)c->norm_eps);
    /* The wanted rows moved to the front of h, in order (row k's place is
     * free or is row k itself), then the head over those alone. */
    int wanted = 0;
    for (int i = 0; i < n; i++) {
        d->logit_row[i] = -1;
        if (want && !want[i])
            continue;
        if (wanted != i)
            be->copy(be, d->h + (size_t)wanted * dm, d->h + (size_t)i * dm, (size_t)dm * sizeof(float));
        d->logit_row[i] = wanted++;
    }
    if (wanted) {
        be->gemm(be, 0, 1, wanted, c->vocab_size, dm, 1, d->h, m->w.lm_head, 0, d->logits);
        be->download(be, d->host_logits, d->logits, (size_t)wanted * c->vocab_size * sizeof(float));
    }
    for (int i = 0; i < n; i++)
        if (d->host_pos[i] + 1 > d->len[slots[i]])
            d->len[slots[i]] = d->host_pos[i] + 1;
    return 0;
}
