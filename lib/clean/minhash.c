#include "clean/minhash.h"

#include <stdlib.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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
        mh->a[i] = (uint32_t)splitmix64(&state) | 1;
        mh->b[i] = (uint32_t)splitmix64(&state);
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

static int simd_allowed = 1;

void dsk_minhash_set_simd(int on) { simd_allowed = on; }

/* sig[i] = the least a[i] * x + b[i] mod 2^32 over the shingle hashes
 * x = (uint32_t)xs[s], for functions [from, nh).  One function at a time
 * over all shingles: its minimum stays in a register. */
static void minima_portable(const dsk_minhash *mh, const uint64_t *xs, size_t n_shingles, size_t from, size_t nh,
                            uint32_t *sig)
{
    for (size_t i = from; i < nh; i++) {
        uint32_t a = mh->a[i], b = mh->b[i], m = UINT32_MAX;
        for (size_t s = 0; s < n_shingles; s++) {
            uint32_t y = a * (uint32_t)xs[s] + b;
            m = y < m ? y : m;
        }
        sig[i] = m;
    }
}

#if defined(__x86_64__)
/* The same, 8 functions a register; the rest (nh % 8) portably. */
__attribute__((target("avx2"))) static void minima_avx2(const dsk_minhash *mh, const uint64_t *xs,
                                                        size_t n_shingles, size_t nh, uint32_t *sig)
{
    size_t i = 0;
    for (; i + 8 <= nh; i += 8) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(mh->a + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(mh->b + i));
        __m256i m = _mm256_set1_epi32(-1);
        for (size_t s = 0; s < n_shingles; s++) {
            __m256i y = _mm256_add_epi32(_mm256_mullo_epi32(a, _mm256_set1_epi32((int)(uint32_t)xs[s])), b);
            m = _mm256_min_epu32(m, y);
        }
        _mm256_storeu_si256((__m256i *)(sig + i), m);
    }
    minima_portable(mh, xs, n_shingles, i, nh, sig);
}
#endif

void dsk_minhash_signature(const dsk_minhash *mh, const dsk_text_view *v, uint32_t *sig, uint64_t **scratch,
                           size_t *scratch_cap)
{
    size_t nh = (size_t)mh->bands * (size_t)mh->rows;
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
    if (nw == 0) {  /* no words: the all-max signature; callers skip such documents */
        for (size_t i = 0; i < nh; i++)
            sig[i] = UINT32_MAX;
        return;
    }
    size_t n_shingles = nw >= n ? nw - n + 1 : 1;
    size_t span = nw >= n ? n : nw;
    /* each shingle's hash in place of its first word's: later shingles
     * read only the words after it */
    for (size_t s = 0; s < n_shingles; s++) {
        uint64_t x = span;
        for (size_t k = 0; k < span; k++)
            x = dsk_hash_combine(x, wh[s + k]);
        wh[s] = x;
    }
#if defined(__x86_64__)
    if (simd_allowed && __builtin_cpu_supports("avx2")) {
        minima_avx2(mh, wh, n_shingles, nh, sig);
        return;
    }
#endif
    minima_portable(mh, wh, n_shingles, 0, nh, sig);
}

void dsk_minhash_band_keys(const dsk_minhash *mh, const uint32_t *sig, uint64_t *keys)
{
    for (int b = 0; b < mh->bands; b++)
        keys[b] = dsk_hash64_seed(sig + (size_t)b * (size_t)mh->rows, (size_t)mh->rows * sizeof *sig,
                                  (uint64_t)b + 1);
}

double dsk_minhash_similarity(const dsk_minhash *mh, const uint32_t *a, const uint32_t *b)
{
    size_t nh = (size_t)mh->bands * (size_t)mh->rows, same = 0;
    for (size_t i = 0; i < nh; i++)
        same += a[i] == b[i];
    return (double)same / (double)nh;
}
