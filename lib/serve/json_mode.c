#include "serve/json_mode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct dsk_json_vocab {
    int n_vocab;
    const dsk_tokenizer *tk;
    int n_sorted;
    int32_t *sorted;     /* the candidate tokens, in byte order */
    uint32_t *shared;    /* [n_sorted]: leading bytes shared with the token before */
    uint32_t max_len;    /* the longest candidate, in bytes */
};

static const dsk_tokenizer *sort_tk;   /* qsort's comparison has no context argument */

static int by_bytes(const void *a, const void *b)
{
    size_t la, lb;
    const char *pa = dsk_tokenizer_bytes(sort_tk, (uint32_t)*(const int32_t *)a, &la);
    const char *pb = dsk_tokenizer_bytes(sort_tk, (uint32_t)*(const int32_t *)b, &lb);
    int c = memcmp(pa, pb, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

dsk_json_vocab *dsk_json_vocab_new(const dsk_tokenizer *tk, int n_vocab)
{
    dsk_json_vocab *v = dsk_xcalloc(1, sizeof *v);
    v->n_vocab = n_vocab;
    v->tk = tk;
    v->sorted = dsk_xmalloc((size_t)(n_vocab ? n_vocab : 1) * sizeof *v->sorted);
    for (int id = 0; id < n_vocab; id++) {
        size_t len;
        dsk_tokenizer_bytes(tk, (uint32_t)id, &len);
        if (len && !dsk_tokenizer_is_special(tk, (uint32_t)id))
            v->sorted[v->n_sorted++] = id;
    }
    /* The server builds this once, before it takes requests. */
    sort_tk = tk;
    qsort(v->sorted, (size_t)v->n_sorted, sizeof *v->sorted, by_bytes);
    sort_tk = NULL;
    v->shared = dsk_xcalloc((size_t)(v->n_sorted ? v->n_sorted : 1), sizeof *v->shared);
    for (int k = 0; k < v->n_sorted; k++) {
        size_t len, prev_len = 0;
        const char *p = dsk_tokenizer_bytes(tk, (uint32_t)v->sorted[k], &len), *q = NULL;
        if (k)
            q = dsk_tokenizer_bytes(tk, (uint32_t)v->sorted[k - 1], &prev_len);
        uint32_t n = 0;
        while (k && n < len && n < prev_len && p[n] == q[n])
            n++;
        v->shared[k] = n;
        v->max_len = len > v->max_len ? (uint32_t)len : v->max_len;
    }
    return v;
}

void dsk_json_vocab_free(dsk_json_vocab *v)
{
    if (!v)
        return;
    free(v->sorted);
    free(v->shared);
    free(v);
}

int dsk_json_vocab_mask(const dsk_json_vocab *v, const dsk_json_prefix *s, float *logits)
{
    /* state[i]: s after the current token's first i bytes, valid for
     * i <= have.  failed_at: the previous token failed on its byte
     * failed_at - 1, so any token sharing failed_at bytes with it fails. */
    dsk_json_prefix *state = dsk_xmalloc(((size_t)v->max_len + 1) * sizeof *state);
    unsigned char *allowed = dsk_xcalloc((size_t)v->n_vocab, 1);
    dsk_json_prefix_copy(&state[0], s);
    uint32_t failed_at = UINT32_MAX;
    int n_allowed = 0;
    for (int k = 0; k < v->n_sorted; k++) {
        uint32_t shared = v->shared[k];
        if (shared >= failed_at)
            continue;
        failed_at = UINT32_MAX;
        size_t len;
        const unsigned char *p = (const unsigned char *)dsk_tokenizer_bytes(v->tk, (uint32_t)v->sorted[k], &len);
        uint32_t i = shared;
        for (; i < len; i++) {
            dsk_json_prefix_copy(&state[i + 1], &state[i]);
            if (!dsk_json_prefix_feed(&state[i + 1], p[i]))
                break;
        }
        if (i < len) {
            failed_at = i + 1;
            continue;
        }
        allowed[v->sorted[k]] = 1;
        n_allowed++;
    }
    for (int id = 0; id < v->n_vocab; id++)
        if (!allowed[id])
            logits[id] = -INFINITY;
    free(allowed);
    free(state);
    return n_allowed;
}

int dsk_json_vocab_feed(const dsk_json_vocab *v, dsk_json_prefix *s, int32_t tok)
{
    size_t len = 0;
    const char *p = NULL;
    if (tok >= 0 && tok < v->n_vocab && !dsk_tokenizer_is_special(v->tk, (uint32_t)tok))
        p = dsk_tokenizer_bytes(v->tk, (uint32_t)tok, &len);
    if (!len) {
        dsk_json_prefix_feed(s, 0);   /* no JSON text holds a NUL byte: s fails */
        return 0;
    }
    return dsk_json_prefix_feed_all(s, p, len);
}
