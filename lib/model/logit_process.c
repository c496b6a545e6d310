#include "model/logit_process.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* A flag above any count a sequence can reach (counts stay under 2^24, the row limit). */
#define DSK_IN_PROMPT (1 << 30)
#define GENERATED(c) ((c) & (DSK_IN_PROMPT - 1))

int dsk_penalties_active(const dsk_penalties *p)
{
    return (p->repetition > 0 && p->repetition != 1) || p->frequency != 0 || p->presence != 0;
}

void dsk_token_counts_init(dsk_token_counts *c, int vocab)
{
    memset(c, 0, sizeof *c);
    c->vocab = vocab;
}

void dsk_token_counts_free(dsk_token_counts *c)
{
    free(c->count);
    free(c->seen);
    dsk_token_counts_init(c, c->vocab);
}

void dsk_token_counts_clear(dsk_token_counts *c)
{
    for (int i = 0; i < c->n_seen; i++)
        c->count[c->seen[i]] = 0;
    c->n_seen = 0;
}

void dsk_token_counts_add(dsk_token_counts *c, int32_t tok, int in_prompt)
{
    if (tok < 0 || tok >= c->vocab)
        return;
    if (!c->count)
        c->count = dsk_xcalloc((size_t)c->vocab, sizeof *c->count);
    if (c->count[tok] == 0) {
        if (c->n_seen == c->cap_seen) {
            c->cap_seen = c->cap_seen ? 2 * c->cap_seen : 256;
            c->seen = dsk_xrealloc(c->seen, (size_t)c->cap_seen * sizeof *c->seen);
        }
        c->seen[c->n_seen++] = tok;
    }
    if (in_prompt)
        c->count[tok] |= DSK_IN_PROMPT;
    else if (GENERATED(c->count[tok]) < DSK_IN_PROMPT - 1)
        c->count[tok]++;
}

void dsk_logits_process(float *logits, int vocab, const dsk_logit_bias *bias, int n_bias, const dsk_penalties *p,
                        const dsk_token_counts *counts)
{
    for (int i = 0; i < n_bias; i++)
        if (bias[i].token >= 0 && bias[i].token < vocab)
            logits[bias[i].token] += bias[i].bias;
    if (!p || !counts || !counts->count || !dsk_penalties_active(p))
        return;
    int rep = p->repetition > 0 && p->repetition != 1;
    float r = (float)p->repetition, f = (float)p->frequency, pr = (float)p->presence;
    for (int i = 0; i < counts->n_seen; i++) {
        int32_t t = counts->seen[i], n = GENERATED(counts->count[t]);
        float *l = &logits[t];
        if (rep)
            *l = *l > 0 ? *l / r : *l * r;
        if (n)
            *l -= f * (float)n + pr;
    }
}
