#include "clean/minhash.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/hash.h"

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int dsk_minhash_init(dsk_minhash *mh, int ngram, int bands, int rows)
{
    if (ngram < 1 || bands < 1 || rows < 1 || bands > DSK_MINHASH_MAX_BANDS || rows > DSK_MINHASH_MAX_ROWS)
        return -1;
    mh->ngram = ngram;
    mh->bands = bands;
    mh->rows = rows;
    size_t n = (size_t)bands * (size_t)rows;
    mh->a = dsk_xmalloc(n * sizeof *mh->a);
    mh->b = dsk_xmalloc(n * sizeof *mh->b);
    uint64_t state = 0x64736B2D6D696E68ull;  /* fixed: signatures must agree across runs */
    for (size_t i = 0; i < n; i++) {
        mh->a[i] = splitmix64(&state) | 1;
        mh->b[i] = splitmix64(&state);
    }
    return 0;
}

void dsk_minhash_free(dsk_minhash *mh)
{
    free(mh->a);
    free(mh->b);
    mh->a = mh->b = NULL;
}

static uint64_t word_hash(const dsk_text_view *v, const dsk_word *w)
{
    char low[64];
    const char *s = v->text + w->core_off;
    size_t n = w->core_len;
    if (n > sizeof low)
        return dsk_hash64(s, n);
    for (size_t i = 0; i < n; i++)
        low[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    return dsk_hash64(low, n);
}

void dsk_minhash_signature(const dsk_minhash *mh, const dsk_text_view *v, uint64_t *sig, uint64_t **scratch,
                           size_t *scratch_cap)
{
    size_t nh = (size_t)mh->bands * (size_t)mh->rows;
    for (size_t i = 0; i < nh; i++)
        sig[i] = UINT64_MAX;
    if (*scratch_cap < v->n_words + 1) {
        *scratch_cap = v->n_words * 2 + 16;
        free(*scratch);
        *scratch = dsk_xmalloc(*scratch_cap * sizeof **scratch);
    }
    uint64_t *wh = *scratch;
    size_t nw = 0;
    for (size_t i = 0; i < v->n_words; i++)
        if (!(v->words[i].flags & DSK_WORD_PUNCT_ONLY))
            wh[nw++] = word_hash(v, &v->words[i]);
    size_t n = (size_t)mh->ngram;
    if (nw == 0)
        return;  /* no words: the all-max signature; callers skip such documents */
    size_t n_shingles = nw >= n ? nw - n + 1 : 1;
    size_t span = nw >= n ? n : nw;
    for (size_t s = 0; s < n_shingles; s++) {
        uint64_t x = span;
        for (size_t k = 0; k < span; k++)
            x = dsk_hash_combine(x, wh[s + k]);
        for (size_t i = 0; i < nh; i++) {
            uint64_t y = mh->a[i] * x + mh->b[i];
            sig[i] = y < sig[i] ? y : sig[i];
        }
    }
}

void dsk_minhash_band_keys(const dsk_minhash *mh, const uint64_t *sig, uint64_t *keys)
{
    for (int b = 0; b < mh->bands; b++)
        keys[b] = dsk_hash64_seed(sig + (size_t)b * (size_t)mh->rows, (size_t)mh->rows * sizeof *sig,
                                  (uint64_t)b + 1);
}

double dsk_minhash_similarity(const dsk_minhash *mh, const uint64_t *a, const uint64_t *b)
{
    size_t nh = (size_t)mh->bands * (size_t)mh->rows, same = 0;
    for (size_t i = 0; i < nh; i++)
        same += a[i] == b[i];
    return (double)same / (double)nh;
}
