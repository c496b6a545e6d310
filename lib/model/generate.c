#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/decode_batch.h"
#include "model/generate.h"

dsk_generator *dsk_generator_new(dsk_model *m, int max_len)
{
    dsk_generator *g = dsk_xcalloc(1, sizeof *g);
    g->m = m;
    g->d = dsk_batch_decoder_new(m, 1, max_len, 1);
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
    int rc = dsk_batch_decoder_step(g->d, &slot, &token, 1, err);
    if (!rc)
        g->len = g->d->len[0];
    return rc;
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
