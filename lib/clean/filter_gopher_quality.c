/* Gopher quality rules (Rae et al. 2021, table A1), as datatrove applies
 * them.  Departures, all documented in dsk-clean(1): words are whitespace
 * tokens (CJK characters one each) rather than NLTK tokens, so mean word
 * length and stop words look at each word without its surrounding
 * punctuation; stop words match case-insensitively; for CJK documents the
 * mean-word-length and stop-word rules are skipped. */
#include <stdint.h>
#include <string.h>

#include "clean/filters.h"

/* Which of the Gopher stop words w is, as a bit (0: none), matched
 * case-insensitively with one 32-bit load: the, be, to, of, and, that,
 * have, with. */
static unsigned stop_word_bit(const char *w, size_t n)
{
    if (n < 2 || n > 4)
        return 0;
    uint32_t x = 0;
    for (size_t i = 0; i < n; i++)
        x |= (uint32_t)(uint8_t)(w[i] | 0x20) << (8 * i);  /* ASCII letters to lower case */
#define W2(a, b) ((uint32_t)(a) | (uint32_t)(b) << 8)
#define W3(a, b, c) (W2(a, b) | (uint32_t)(c) << 16)
#define W4(a, b, c, d) (W3(a, b, c) | (uint32_t)(d) << 24)
    switch (n) {
    case 2: return x == W2('b', 'e') ? 1u : x == W2('t', 'o') ? 2u : x == W2('o', 'f') ? 4u : 0;
    case 3: return x == W3('t', 'h', 'e') ? 8u : x == W3('a', 'n', 'd') ? 16u : 0;
    default:
        return x == W4('t', 'h', 'a', 't') ? 32u : x == W4('h', 'a', 'v', 'e') ? 64u : x == W4('w', 'i', 't', 'h') ? 128u : 0;
    }
#undef W2
#undef W3
#undef W4
}

static size_t count_substr(const char *s, size_t n, const char *pat)
{
    size_t k = strlen(pat), count = 0;
    const char *end = s + n;
    while (s < end) {
        const char *hit = memmem(s, (size_t)(end - s), pat, k);
        if (!hit)
            break;
        count++;
        s = hit + k;
    }
    return count;
}

static int line_starts_with_bullet(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return (i < n && s[i] == '-') || (n - i >= 3 && memcmp(s + i, "\xE2\x80\xA2", 3) == 0); /* • */
}

static int line_ends_with_ellipsis(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return (n >= 3 && memcmp(s + n - 3, "...", 3) == 0) ||
           (n >= 3 && memcmp(s + n - 3, "\xE2\x80\xA6", 3) == 0); /* … */
}

const char *dsk_filter_gopher_quality(const dsk_text_view *v, const dsk_filter_params *p)
{
    int cjk = dsk_doc_is_cjk(v, p);
    size_t n_words = v->n_words, n_content = 0, content_chars = 0, alpha = 0;
    unsigned stop_seen = 0;   /* the distinct stop words (Gopher: "at least two of" them) */
    for (size_t i = 0; i < n_words; i++) {
        const dsk_word *w = &v->words[i];
        if (!(w->flags & DSK_WORD_PUNCT_ONLY)) {
            n_content++;
            content_chars += w->core_nchars;
        }
        if (w->flags & DSK_WORD_HAS_ALPHA)
            alpha++;
        if (!cjk)
            stop_seen |= stop_word_bit(v->text + w->core_off, w->core_len);
    }
    if (p->gq_min_words && (double)n_content < p->gq_min_words)
        return "gopher_quality.min_words";
    if (p->gq_max_words && (double)n_content > p->gq_max_words)
        return "gopher_quality.max_words";
    if (n_words == 0)
        return NULL;
    /* ratios per token, punctuation counted apart as datatrove's tokenizer does */
    double n_tokens = (double)dsk_text_view_tokens(v);
    if (!cjk && n_content) {
        double mean = (double)content_chars / (double)n_content;
        if (p->gq_min_mean_word_len && mean < p->gq_min_mean_word_len)
            return "gopher_quality.min_mean_word_length";
        if (p->gq_max_mean_word_len && mean > p->gq_max_mean_word_len)
            return "gopher_quality.max_mean_word_length";
    }
    if (p->gq_max_symbol_word_ratio) {
        if ((double)count_substr(v->text, v->len, "#") / n_tokens > p->gq_max_symbol_word_ratio)
            return "gopher_quality.hash_ratio";
        size_t ell = count_substr(v->text, v->len, "...") + count_substr(v->text, v->len, "\xE2\x80\xA6");
        if ((double)ell / n_tokens > p->gq_max_symbol_word_ratio)
            return "gopher_quality.ellipsis_ratio";
    }
    size_t bullets = 0, ellipsis_lines = 0;
    for (size_t i = 0; i < v->n_lines; i++) {
        const char *s = v->text + v->lines[i].off;
        bullets += line_starts_with_bullet(s, v->lines[i].len);
        ellipsis_lines += line_ends_with_ellipsis(s, v->lines[i].len);
    }
    double n_lines = (double)v->n_lines;
    if (p->gq_max_bullet_lines_ratio && (double)bullets / n_lines > p->gq_max_bullet_lines_ratio)
        return "gopher_quality.bullet_lines";
    if (p->gq_max_ellipsis_lines_ratio && (double)ellipsis_lines / n_lines > p->gq_max_ellipsis_lines_ratio)
        return "gopher_quality.ellipsis_lines";
    if (p->gq_min_alpha_words_ratio && (double)alpha / n_tokens < p->gq_min_alpha_words_ratio)
        return "gopher_quality.alpha_words";
    if (!cjk && p->gq_min_stop_words && (double)__builtin_popcount(stop_seen) < p->gq_min_stop_words)
        return "gopher_quality.stop_words";
    return NULL;
}
