#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/decode_batch.h"
#include "model/generate.h"

dsk_generator *dsk_generator_new(dsk_model *m, int max_len)
{
    dsk_generator *g = dsk_xcalloc(1, sizeof *g);
    g->m = m;
    g->d = dsk_batch_decoder_new(m, 1, max_len, DSK_PREFILL_ROWS);
    g->max_len = g->d->max_len;
    g->host_logits = g->d->host_logits;
    g->order = dsk_xmalloc((size_t)m->cfg.vocab_size * sizeof *g->order);
    return g;
}

void dsk_generator_free(dsk_generator *g)
{
    if (!g)
        return;
    dsk_batch_decoder_free(g->d);
    free(g->order);
    free(g);
}

void dsk_generator_reset(dsk_generator *g)
{
    dsk_batch_decoder_reset(g->d, 0);
    g->len = 0;
}

int dsk_generator_feed(dsk_generator *g, int32_t token, dsk_err *err)
{
    if (g->len >= g->max_len)
        return dsk_fail(err, EX_DATAERR, "the sequence is full (%d tokens)", g->max_len);
    int slot = 0;
    int rc = dsk_batch_decoder_step(g->d, &slot, &token, 1, NULL, err);
    if (!rc)
        g->len = g->d->len[0];
    return rc;
}

int dsk_generator_prefill(dsk_generator *g, const int32_t *tokens, int n, dsk_err *err)
{
    if (n > g->max_len - g->len)
        return dsk_fail(err, EX_DATAERR, "%d tokens do not fit in the sequence (%d of %d taken)", n, g->len,
                        g->max_len);
    int slot[DSK_PREFILL_ROWS] = {0};
    unsigned char want[DSK_PREFILL_ROWS] = {0};
    for (int at = 0; at < n; at += DSK_PREFILL_ROWS) {
        int rows = n - at < DSK_PREFILL_ROWS ? n - at : DSK_PREFILL_ROWS;
        want[rows - 1] = at + rows == n;   /* the logits after the last token alone */
        int rc = dsk_batch_decoder_step(g->d, slot, tokens + at, rows, want, err);
        want[rows - 1] = 0;
        if (rc)
            return rc;
        g->len = g->d->len[0];
    }
    return 0;
}

int dsk_generate(dsk_generator *g, const int32_t *prompt, int n_prompt, int max_new, const dsk_sampler_opts *o,
                 dsk_rng *rng, int32_t stop_token, int32_t stop2, int32_t *out, dsk_err *err)
{
    dsk_generator_reset(g);
    if (n_prompt < 1) {
        dsk_fail(err, EX_DATAERR, "generation needs at least one prompt token");
        return -1;
    }
    if (dsk_generator_prefill(g, prompt, n_prompt, err))
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
