/* A document's lines and words, found once and shared by every filter.
 *
 * Words are runs of non-whitespace, except that each CJK character (Han,
 * kana, Hangul) is a word of its own, with any punctuation right before or
 * after it: those scripts do not put spaces between words, and one
 * character per word is the usual approximation.
 * Lengths are counted in code points, as the published rules (written in
 * Python) count them. */
#ifndef DSK_TEXT_WORDS_H
#define DSK_TEXT_WORDS_H

#include <stddef.h>
#include <stdint.h>

enum {
    DSK_WORD_HAS_ALPHA = 1,   /* at least one letter (Unicode L*) */
    DSK_WORD_PUNCT_ONLY = 2,  /* only punctuation and symbols (P*, S*) */
    DSK_WORD_CJK = 4,
};

typedef struct dsk_span {
    uint32_t off, len;  /* bytes */
    uint32_t nchars;    /* code points */
} dsk_span;

typedef struct dsk_word {
    uint32_t off, len, nchars;
    uint32_t flags;
    /* the word without leading and trailing punctuation ("(word)," -> "word") */
    uint32_t core_off, core_len, core_nchars;
    uint32_t letters;  /* letters among its characters */
} dsk_word;

typedef struct dsk_text_view {
    const char *text;
    size_t len, nchars;
    dsk_span *lines;  /* split on '\n'; the empty lines are there too */
    size_t n_lines, cap_lines;
    dsk_word *words;
    size_t n_words, cap_words;
    size_t n_letters, n_cjk;
} dsk_text_view;

void dsk_text_view_build(dsk_text_view *v, const char *text, size_t len);

/* Tokens as a word tokenizer (NLTK, spaCy) would count them: punctuation
 * before or after a word's core is a token of its own ("(word)," is three).
 * The published rules divide by this count. */
size_t dsk_text_view_tokens(const dsk_text_view *v);
void dsk_text_view_free(dsk_text_view *v);

/* Building a view line by line from another view's words, for text made of
 * some of its lines (each stripped to its words), without scanning again:
 * begin, then add each line (its words [first, end) of src, placed at byte
 * offset dst_off of the new text), then finish with the new text. */
void dsk_text_view_begin(dsk_text_view *v, size_t max_words);
void dsk_text_view_add_line(dsk_text_view *v, const dsk_text_view *src, size_t first, size_t end, size_t dst_off);
void dsk_text_view_finish(dsk_text_view *v, const char *text, size_t len);

/* Is this Unicode code point a CJK character (one character, one word)? */
int dsk_is_cjk(uint32_t cp);

/* Character classes the rules need, for any code point. */
int dsk_cp_is_space(uint32_t cp);
int dsk_cp_is_alpha(uint32_t cp);
int dsk_cp_is_punct_or_symbol(uint32_t cp);

#endif
