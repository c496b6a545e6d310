/* Gopher repetition rules (Rae et al. 2021, table A1), as datatrove
 * applies them, with one departure: datatrove's "top n-gram" counts the
 * most frequent n-gram even when it occurs once, which drops every
 * document of a dozen words or fewer; here only an n-gram that repeats
 * counts as repetition. */
#include <stdlib.h>

#include "clean/filters.h"
#include "core/err.h"
#include "core/hash.h"

/* Paragraphs are separated by empty lines (datatrove: split on "\n{2,}"). */
static void duplicate_paragraphs(const dsk_text_view *v, dsk_filter_scratch *s, size_t *n_paras,
                                 size_t *dup_paras, size_t *dup_chars)
{
    dsk_u64map_clear(&s->map, v->n_lines);
    *n_paras = *dup_paras = *dup_chars = 0;
    size_t i = 0;
    while (i < v->n_lines) {
        while (i < v->n_lines && v->lines[i].len == 0)
            i++;
        if (i == v->n_lines)
            break;
        size_t first = i, chars = 0;
        while (i < v->n_lines && v->lines[i].len != 0)
            chars += v->lines[i++].nchars + 1;
        const dsk_span *a = &v->lines[first], *b = &v->lines[i - 1];
        int is_new;
        dsk_u64map_upsert(&s->map, dsk_hash64(v->text + a->off, b->off + b->len - a->off), &is_new);
        (*n_paras)++;
        if (!is_new) {
            (*dup_paras)++;
            *dup_chars += chars - 1;
        }
    }
}

static const uint64_t *word_hashes(const dsk_text_view *v, dsk_filter_scratch *s)
{
    if (s->cap_hashes < v->n_words * 2) {
        s->cap_hashes = v->n_words * 2;
        free(s->hashes);
        s->hashes = dsk_xmalloc(s->cap_hashes * sizeof *s->hashes);
    }
    for (size_t i = 0; i < v->n_words; i++)
        s->hashes[i] = dsk_hash64(v->text + v->words[i].off, v->words[i].len);
    return s->hashes;
}

/* Polynomial rolling hash of each n-gram of word hashes, O(1) per n-gram:
 * out[i] = sum over k < n of h[i+k] * B^(n-1-k) (mod 2^64). */
static void ngram_hashes(const uint64_t *h, size_t n_words, size_t n, uint64_t *out)
{
    const uint64_t B = 0x100000001B3ull * 0x9E3779B97F4A7C15ull | 1;
    uint64_t pow = 1, x = 0;
    for (size_t k = 0; k + 1 < n; k++)
        pow *= B;
    for (size_t k = 0; k < n; k++)
        x = x * B + h[k];
    out[0] = x;
    for (size_t i = 1; i + n <= n_words; i++) {
        x = (x - h[i - 1] * pow) * B + h[i + n - 1];
        out[i] = x;
    }
}

/* Characters of the longest n-gram, words joined by single spaces. */
static size_t longest_ngram_chars(const dsk_text_view *v, size_t n)
{
    size_t chars = 0, best;
    for (size_t k = 0; k < n; k++)
        chars += v->words[k].nchars;
    best = chars;
    for (size_t i = 1; i + n <= v->n_words; i++) {
        chars = chars + v->words[i + n - 1].nchars - v->words[i - 1].nchars;
        if (chars > best)
            best = chars;
    }
    return best + n - 1;
}

/* Characters of the most frequent repeated n-gram times its count, the
 * n-gram measured with single spaces between words.  *max_count gets the
 * highest count of any n-gram. */
static size_t top_ngram_chars(const dsk_text_view *v, const uint64_t *g, size_t n, dsk_filter_scratch *s,
                              size_t *max_count)
{
    /* The most frequent n-gram (of those as frequent, the one seen first:
     * datatrove's Counter.most_common(1)) and its characters times its
     * count, the spaces between its words included; 0 when it occurs
     * once. */
    dsk_u64map_clear(&s->map, v->n_words);
    size_t top = 0;
    for (size_t i = 0; i + n <= v->n_words; i++) {
        uint64_t *count = dsk_u64map_upsert(&s->map, g[i], NULL);
        top = ++*count > top ? *count : top;
    }
    *max_count = top;
    if (top < 2)
        return 0;
    for (size_t i = 0; i + n <= v->n_words; i++)
        if (*dsk_u64map_upsert(&s->map, g[i], NULL) == top) {
            size_t chars = n - 1;
            for (size_t k = 0; k < n; k++)
                chars += v->words[i + k].nchars;
            return top * chars;
        }
    return 0;
}

/* Characters in n-grams that repeat an earlier one, scanning left to right
 * and skipping past each repeat (datatrove's find_all_duplicate). */
static size_t dup_ngram_chars(const dsk_text_view *v, const uint64_t *g, size_t n, dsk_filter_scratch *s)
{
    dsk_u64map_clear(&s->map, v->n_words);
    size_t repeated = 0, i = 0;
    while (i + n <= v->n_words) {
        int is_new;
        dsk_u64map_upsert(&s->map, g[i], &is_new);
        if (is_new) {
            i++;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            repeated += v->words[i + k].nchars;
        i += n;
    }
    return repeated;
}

const char *dsk_filter_gopher_repetition(const dsk_text_view *v, const dsk_filter_params *p,
                                         dsk_filter_scratch *s)
{
    double len = (double)v->nchars;
    if (len == 0)
        return NULL;
    size_t n_paras, dup_paras, dup_chars;
    duplicate_paragraphs(v, s, &n_paras, &dup_paras, &dup_chars);
    if (n_paras && p->gr_dup_para_frac && (double)dup_paras / (double)n_paras > p->gr_dup_para_frac)
        return "gopher_repetition.dup_para_frac";
    if (p->gr_dup_para_char_frac && (double)dup_chars / len > p->gr_dup_para_char_frac)
        return "gopher_repetition.dup_para_char_frac";

    size_t dup_lines, n_lines = 0;
    for (size_t i = 0; i < v->n_lines; i++)
        n_lines += v->lines[i].len != 0;
    dsk_duplicate_lines(v, s, 0, &dup_lines, &dup_chars);
    if (n_lines && p->gr_dup_line_frac && (double)dup_lines / (double)n_lines > p->gr_dup_line_frac)
        return "gopher_repetition.dup_line_frac";
    if (p->gr_dup_line_char_frac && (double)dup_chars / len > p->gr_dup_line_char_frac)
        return "gopher_repetition.dup_line_char_frac";

    /* word hashes in the first half of s->hashes, n-gram hashes in the second */
    const uint64_t *h = word_hashes(v, s);
    uint64_t *g = s->hashes + v->n_words;
    static const char *const top_names[] = {NULL, NULL, "gopher_repetition.top_2gram",
                                            "gopher_repetition.top_3gram", "gopher_repetition.top_4gram"};
    size_t max_count = 0;
    for (size_t n = 2; n <= 4; n++) {
        if (!p->gr_top_ngram_frac[n] || v->n_words < n)
            continue;
        /* an n-gram occurs at most as often as the (n-1)-gram it starts with
         * (max_count bounds that): when even the bound cannot reach the
         * threshold, or nothing repeats, there is nothing to count */
        if (n > 2 && (max_count < 2 || (double)(max_count * longest_ngram_chars(v, n)) / len <=
                                           p->gr_top_ngram_frac[n]))
            continue;
        ngram_hashes(h, v->n_words, n, g);
        if ((double)top_ngram_chars(v, g, n, s, &max_count) / len > p->gr_top_ngram_frac[n])
            return top_names[n];
    }
    static const char *const dup_names[] = {
        NULL, NULL, NULL, NULL, NULL, "gopher_repetition.dup_5gram", "gopher_repetition.dup_6gram",
        "gopher_repetition.dup_7gram", "gopher_repetition.dup_8gram", "gopher_repetition.dup_9gram",
        "gopher_repetition.dup_10gram"};
    for (size_t n = 5; n <= 10; n++) {
        if (!p->gr_dup_ngram_frac[n] || v->n_words < n)
            continue;
        ngram_hashes(h, v->n_words, n, g);
        size_t repeated = dup_ngram_chars(v, g, n, s);
        if ((double)repeated / len > p->gr_dup_ngram_frac[n])
            return dup_names[n];
        if (repeated == 0)  /* all n-grams distinct: so are all longer ones */
            break;
    }
    return NULL;
}
