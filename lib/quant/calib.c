#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "pack/dataset.h"
#include "quant/calib.h"
#include "train/batch.h"

void dsk_act_stats_init(dsk_act_stats *s, int cols)
{
    s->cols = cols;
    s->H = dsk_xcalloc((size_t)cols * cols, sizeof *s->H);
    s->absmean = dsk_xcalloc((size_t)cols, sizeof *s->absmean);
    s->tokens = 0;
}

void dsk_act_stats_free(dsk_act_stats *s)
{
    free(s->H);
    free(s->absmean);
    memset(s, 0, sizeof *s);
}

void dsk_act_stats_add(dsk_act_stats *s, const float *X, long n)
{
    int k = s->cols;
    /* One batch's XᵀX in float (a product of at most a few thousand
     * terms), accumulated over batches in double. */
    float *part = dsk_xcalloc((size_t)k * k, sizeof *part);
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, (int)n, 1.0f, X, k, 0.0f, part, k);
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++) {
            double v = 2.0 * part[(size_t)i * k + j];
            s->H[(size_t)i * k + j] += v;
            if (j != i)
                s->H[(size_t)j * k + i] += v;
        }
    free(part);
    double total = s->tokens + n;
    for (int i = 0; i < k; i++) {
        double a = 0;
        for (long t = 0; t < n; t++)
            a += X[(size_t)t * k + i] < 0 ? -X[(size_t)t * k + i] : X[(size_t)t * k + i];
        s->absmean[i] = (s->absmean[i] * s->tokens + a) / total;
    }
    s->tokens = total;
}

int dsk_calib_open(dsk_calib *c, dsk_model *m, const char *data, const char *fingerprint, int split, long rows, int batch,
                   dsk_err *err)
{
    memset(c, 0, sizeof *c);
    dsk_dataset ds;
    int rc = dsk_dataset_open(&ds, data, err);
    if (rc)
        return rc;
    if (fingerprint && (rc = dsk_dataset_check_tokenizer(&ds, fingerprint, (uint32_t)m->cfg.vocab_size, err))) {
        dsk_dataset_close(&ds);
        return rc;
    }
    if (ds.m.kind == DSK_KIND_DPO) {
        dsk_dataset_close(&ds);
        return dsk_fail(err, EX_DATAERR, "%s: calibration needs a text or chat dataset, not preference pairs", data);
    }
    uint64_t total = ds.m.rows[split];
    if (rows > 0 && (uint64_t)rows < total)
        total = (uint64_t)rows;
    if (total == 0) {
        dsk_dataset_close(&ds);
        return dsk_fail(err, EX_DATAERR, "%s: the %s split has no rows for calibration", data,
                        dsk_split_names[split]);
    }
    c->m = m;
    c->B = batch;
    c->T = (int)ds.m.seq_len < m->cfg.max_seq_len ? (int)ds.m.seq_len : m->cfg.max_seq_len;
    c->n_batches = (int)((total + batch - 1) / batch);
    c->rows = dsk_xcalloc((size_t)c->n_batches, sizeof *c->rows);
    c->tok = dsk_xcalloc((size_t)c->n_batches, sizeof *c->tok);
    c->tgt = dsk_xcalloc((size_t)c->n_batches, sizeof *c->tgt);
    c->pos = dsk_xcalloc((size_t)c->n_batches, sizeof *c->pos);
    c->resid = dsk_xcalloc((size_t)c->n_batches, sizeof *c->resid);
    const dsk_model_config *mc = &m->cfg;
    int widest = mc->d_model;
    widest = mc->d_ff > widest ? mc->d_ff : widest;
    c->host = dsk_xmalloc((size_t)batch * c->T * widest * sizeof *c->host);
    dsk_model_alloc_batch(m, batch, c->T);
    dsk_dataset_reader rd;
    dsk_dataset_reader_init(&rd, &ds);
    dsk_row row = {0};
    float *w = dsk_xmalloc((size_t)batch * c->T * sizeof *w);
    uint64_t next = 0;
    for (int b = 0; b < c->n_batches && !rc; b++) {
        int n = (int)(total - next < (uint64_t)batch ? total - next : (uint64_t)batch);
        size_t cells = (size_t)n * c->T;
        c->rows[b] = n;
        c->tok[b] = dsk_xmalloc(cells * 4);
        c->tgt[b] = dsk_xmalloc(cells * 4);
        c->pos[b] = dsk_xmalloc(cells * 4);
        c->resid[b] = dsk_xmalloc(cells * mc->d_model * sizeof(float));
        for (int r = 0; r < n && !rc; r++) {
            if ((rc = dsk_dataset_read(&rd, split, next++, &row, err)))
                break;
            size_t at = (size_t)r * c->T;
            dsk_batch_fill_row(c->tok[b] + at, c->tgt[b] + at, c->pos[b] + at, w + at, c->T, &row, 1);
        }
        if (rc)
            break;
        dsk_batch bt = {n, c->T, c->tok[b], c->tgt[b], c->pos[b], NULL};
        if ((rc = dsk_model_set_batch(m, &bt, err)))
            break;
        dsk_model_embed(m);
        m->be->download(m->be, c->resid[b], m->acts[0].resid_in, cells * mc->d_model * sizeof(float));
        c->tokens += (long)cells;
    }
    free(w);
    dsk_row_free(&row);
    dsk_dataset_reader_free(&rd);
    dsk_dataset_close(&ds);
    if (rc)
        dsk_calib_close(c);
    return rc;
}

void dsk_calib_close(dsk_calib *c)
{
    for (int b = 0; b < c->n_batches; b++) {
        free(c->tok ? c->tok[b] : NULL);
        free(c->tgt ? c->tgt[b] : NULL);
        free(c->pos ? c->pos[b] : NULL);
        free(c->resid ? c->resid[b] : NULL);
    }
    free(c->rows), free(c->tok), free(c->tgt), free(c->pos), free(c->resid), free(c->host);
    memset(c, 0, sizeof *c);
}

/* Block l over batch b, from its kept input. */
static long run_block(dsk_calib *c, int l, int b)
{
    dsk_model *m = c->m;
    dsk_err err = {0};
    dsk_batch bt = {c->rows[b], c->T, c->tok[b], c->tgt[b], c->pos[b], NULL};
    dsk_model_set_batch(m, &bt, &err);   /* cannot fail: the same batch was set before */
    long n = (long)c->rows[b] * c->T;
    m->be->upload(m->be, m->acts[l].resid_in, c->resid[b], (size_t)n * m->cfg.d_model * sizeof(float));
    dsk_model_forward_block(m, l);
    return n;
}

void dsk_calib_capture(dsk_calib *c, int l, int where, dsk_act_stats *s)
{
    dsk_model *m = c->m;
    dsk_layer_acts *a = &m->acts[l];
    const float *src = where == DSK_CALIB_ATTN_IN ? a->h1 : where == DSK_CALIB_ATTN_OUT ? a->att
                       : where == DSK_CALIB_FFN_IN ? a->h2 : a->act;
    for (int b = 0; b < c->n_batches; b++) {
        long n = run_block(c, l, b);
        m->be->download(m->be, c->host, src, (size_t)n * s->cols * sizeof(float));
        dsk_act_stats_add(s, c->host, n);
    }
}

void dsk_calib_each_ffn_input(dsk_calib *c, int l, void (*fn)(void *ctx, const float *h, long n), void *ctx)
{
    dsk_model *m = c->m;
    for (int b = 0; b < c->n_batches; b++) {
        long n = run_block(c, l, b);
        m->be->download(m->be, c->host, m->acts[l].h2, (size_t)n * m->cfg.d_model * sizeof(float));
        fn(ctx, c->host, n);
    }
}

void dsk_calib_advance(dsk_calib *c, int l)
{
    dsk_model *m = c->m;
    const float *out = l + 1 < m->cfg.n_layers ? m->acts[l + 1].resid_in : m->resid_out;
    for (int b = 0; b < c->n_batches; b++) {
        long n = run_block(c, l, b);
        m->be->download(m->be, c->resid[b], out, (size_t)n * m->cfg.d_model * sizeof(float));
    }
}
