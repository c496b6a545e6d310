#include "text/words.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/err.h"
#include "text/utf8.h"

int dsk_is_cjk(uint32_t cp)
{
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
           (cp >= 0x20000 && cp <= 0x2FFFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
           (cp >= 0x3040 && cp <= 0x30FF) || (cp >= 0x31F0 && cp <= 0x31FF) ||
           (cp >= 0xAC00 && cp <= 0xD7AF) || (cp >= 0x1100 && cp <= 0x11FF) ||
           (cp >= 0x3130 && cp <= 0x318F);
}

int dsk_cp_is_space(uint32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= '\t' && cp <= '\r') || (cp >= 0x1C && cp <= 0x1F);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return cp == 0x85 || c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL ||
           c == UTF8PROC_CATEGORY_ZP;
}

int dsk_cp_is_alpha(uint32_t cp)
{
    if (cp < 0x80)
        return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

int dsk_cp_is_punct_or_symbol(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
               (cp >= 0x7B && cp <= 0x7E);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_SO;
}

static void push_line(dsk_text_view *v, size_t off, size_t end, size_t nchars)
{
    if (v->n_lines == v->cap_lines) {
        v->cap_lines = v->cap_lines ? v->cap_lines * 2 : 64;
        v->lines = dsk_xrealloc(v->lines, v->cap_lines * sizeof *v->lines);
    }
    v->lines[v->n_lines++] = (dsk_span){(uint32_t)off, (uint32_t)(end - off), (uint32_t)nchars};
}

enum { C_NEWLINE, C_SPACE, C_ALPHA, C_PUNCT, C_OTHER };

/* Character classes of ASCII, so the common case needs no lookup call. */
static const uint8_t ascii_class[128] = {
    ['\n'] = C_NEWLINE,
    ['\t'] = C_SPACE, ['\v'] = C_SPACE, ['\f'] = C_SPACE, ['\r'] = C_SPACE, [' '] = C_SPACE,
    [0x1C] = C_SPACE, [0x1D] = C_SPACE, [0x1E] = C_SPACE, [0x1F] = C_SPACE,
    ['!'] = C_PUNCT, ['"'] = C_PUNCT, ['#'] = C_PUNCT, ['$'] = C_PUNCT, ['%'] = C_PUNCT, ['&'] = C_PUNCT,
    ['\''] = C_PUNCT, ['('] = C_PUNCT, [')'] = C_PUNCT, ['*'] = C_PUNCT, ['+'] = C_PUNCT, [','] = C_PUNCT,
    ['-'] = C_PUNCT, ['.'] = C_PUNCT, ['/'] = C_PUNCT, [':'] = C_PUNCT, [';'] = C_PUNCT, ['<'] = C_PUNCT,
    ['='] = C_PUNCT, ['>'] = C_PUNCT, ['?'] = C_PUNCT, ['@'] = C_PUNCT, ['['] = C_PUNCT, ['\\'] = C_PUNCT,
    [']'] = C_PUNCT, ['^'] = C_PUNCT, ['_'] = C_PUNCT, ['`'] = C_PUNCT, ['{'] = C_PUNCT, ['|'] = C_PUNCT,
    ['}'] = C_PUNCT, ['~'] = C_PUNCT,
    ['A'] = C_ALPHA, ['B'] = C_ALPHA, ['C'] = C_ALPHA, ['D'] = C_ALPHA, ['E'] = C_ALPHA, ['F'] = C_ALPHA,
    ['G'] = C_ALPHA, ['H'] = C_ALPHA, ['I'] = C_ALPHA, ['J'] = C_ALPHA, ['K'] = C_ALPHA, ['L'] = C_ALPHA,
    ['M'] = C_ALPHA, ['N'] = C_ALPHA, ['O'] = C_ALPHA, ['P'] = C_ALPHA, ['Q'] = C_ALPHA, ['R'] = C_ALPHA,
    ['S'] = C_ALPHA, ['T'] = C_ALPHA, ['U'] = C_ALPHA, ['V'] = C_ALPHA, ['W'] = C_ALPHA, ['X'] = C_ALPHA,
    ['Y'] = C_ALPHA, ['Z'] = C_ALPHA,
    ['a'] = C_ALPHA, ['b'] = C_ALPHA, ['c'] = C_ALPHA, ['d'] = C_ALPHA, ['e'] = C_ALPHA, ['f'] = C_ALPHA,
    ['g'] = C_ALPHA, ['h'] = C_ALPHA, ['i'] = C_ALPHA, ['j'] = C_ALPHA, ['k'] = C_ALPHA, ['l'] = C_ALPHA,
    ['m'] = C_ALPHA, ['n'] = C_ALPHA, ['o'] = C_ALPHA, ['p'] = C_ALPHA, ['q'] = C_ALPHA, ['r'] = C_ALPHA,
    ['s'] = C_ALPHA, ['t'] = C_ALPHA, ['u'] = C_ALPHA, ['v'] = C_ALPHA, ['w'] = C_ALPHA, ['x'] = C_ALPHA,
    ['y'] = C_ALPHA, ['z'] = C_ALPHA,
    ['0'] = C_OTHER, ['1'] = C_OTHER, ['2'] = C_OTHER, ['3'] = C_OTHER, ['4'] = C_OTHER, ['5'] = C_OTHER,
    ['6'] = C_OTHER, ['7'] = C_OTHER, ['8'] = C_OTHER, ['9'] = C_OTHER,
};

static int unicode_class(uint32_t cp)
{
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029)
        return C_SPACE;  /* normalized text has none; count them as spaces if present */
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    if (c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP)
        return C_SPACE;
    if (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO)
        return C_ALPHA;
    if (c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_SO)
        return C_PUNCT;
    return C_OTHER;
}

void dsk_text_view_build(dsk_text_view *v, const char *text, size_t len)
{
    const uint8_t *s = (const uint8_t *)text;
    v->text = text;
    v->len = len;
    v->nchars = v->n_lines = v->n_words = v->n_letters = v->n_cjk = 0;
    /* a word takes at least two bytes with its separator or the next CJK
     * character, or is one CJK character of three: len/2 + 1 words fit */
    if (v->cap_words < len / 2 + 1) {
        v->cap_words = len / 2 + 1;
        free(v->words);
        v->words = dsk_xmalloc(v->cap_words * sizeof *v->words);
    }

    dsk_word *w = NULL;  /* word being built, NULL between words */
    uint32_t lead = 0;   /* punctuation characters before w's core */
    size_t line_off = 0, line_start_chars = 0, nchars = 0, letters = 0, cjk_chars = 0;
    size_t i = 0;
    while (i < len) {
        size_t l = 1;
        int cls, cjk = 0;
        if (s[i] < 0x80) {
            cls = ascii_class[s[i]];
            if (cls >= C_ALPHA && cls != C_PUNCT && w && !(w->flags & DSK_WORD_CJK) &&
                !(w->flags & DSK_WORD_PUNCT_ONLY)) {
                /* fast path: a run of ASCII letters and digits inside a word
                 * whose core has started just extends that core */
                size_t j = i, alpha = 0;
                while (j < len && s[j] < 0x80 && (cls = ascii_class[s[j]]) != C_PUNCT && cls >= C_ALPHA) {
                    alpha += cls == C_ALPHA;
                    j++;
                }
                size_t k = j - i;
                nchars += k;
                letters += alpha;
                w->len += (uint32_t)k;
                w->nchars += (uint32_t)k;
                if (alpha)
                    w->flags |= DSK_WORD_HAS_ALPHA;
                w->core_len = (uint32_t)j - w->core_off;
                w->core_nchars = w->nchars - lead;
                w->letters += (uint32_t)alpha;
                i = j;
                continue;
            }
        } else {
            uint32_t cp = dsk_utf8_decode(s + i, &l);
            cjk = cp >= 0x1100 && dsk_is_cjk(cp);
            cls = unicode_class(cp);
        }
        nchars++;
        if (cls == C_NEWLINE) {
            push_line(v, line_off, i, nchars - 1 - line_start_chars);
            line_off = i + 1;
            line_start_chars = nchars;
            w = NULL;
            i++;
            continue;
        }
        if (cls == C_SPACE) {
            w = NULL;
            i += l;
            continue;
        }
        letters += cls == C_ALPHA;
        cjk_chars += cjk;
        /* A CJK word is one CJK character with the punctuation around it,
         * as "(word)," is one word with its punctuation in English. */
        int new_word;
        if (!w)
            new_word = 1;
        else if (cjk)  /* starts a word unless only punctuation came before */
            new_word = !(w->flags & DSK_WORD_PUNCT_ONLY);
        else if (w->flags & DSK_WORD_CJK)  /* after a CJK character only punctuation attaches */
            new_word = cls != C_PUNCT;
        else
            new_word = 0;
        if (new_word) {
            w = &v->words[v->n_words++];
            *w = (dsk_word){(uint32_t)i, 0, 0, DSK_WORD_PUNCT_ONLY, (uint32_t)i, 0, 0, 0};
        }
        if (cjk)
            w->flags |= DSK_WORD_CJK;
        w->len += (uint32_t)l;
        w->nchars++;
        if (cls == C_ALPHA) {
            w->flags |= DSK_WORD_HAS_ALPHA;
            w->letters++;
        }
        if (cls != C_PUNCT) {
            if (w->flags & DSK_WORD_PUNCT_ONLY) {  /* first core character */
                w->core_off = (uint32_t)i;
                lead = w->nchars - 1;
                w->flags &= ~(uint32_t)DSK_WORD_PUNCT_ONLY;
            }
            w->core_len = (uint32_t)(i + l) - w->core_off;
            w->core_nchars = w->nchars - lead;
        }
        i += l;
    }
    push_line(v, line_off, len, nchars - line_start_chars);
    v->nchars = nchars;
    v->n_letters = letters;
    v->n_cjk = cjk_chars;
}

/* Tokens in a run of punctuation: one per change of character, so ")," is
 * two while "..." and "--" are one, as word tokenizers split them. */
static size_t punct_run_tokens(const char *s, size_t n)
{
    size_t tokens = 0, i = 0, prev_len = 0;
    const char *prev = NULL;
    while (i < n) {
        size_t l = dsk_utf8_seq_len((const uint8_t *)s + i, n - i);
        if (!l)
            l = 1;
        if (!prev || l != prev_len || memcmp(prev, s + i, l) != 0)
            tokens++;
        prev = s + i;
        prev_len = l;
        i += l;
    }
    return tokens;
}

void dsk_text_view_begin(dsk_text_view *v, size_t max_words)
{
    v->nchars = v->n_lines = v->n_words = v->n_letters = v->n_cjk = 0;
    if (v->cap_words < max_words + 1) {
        v->cap_words = max_words + 1;
        free(v->words);
        v->words = dsk_xmalloc(v->cap_words * sizeof *v->words);
    }
}

/* Characters in s[0..n): UTF-8 lead bytes. */
static size_t count_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((uint8_t)s[i] & 0xC0) != 0x80;
    return c;
}

void dsk_text_view_add_line(dsk_text_view *v, const dsk_text_view *src, size_t first, size_t end, size_t dst_off)
{
    size_t base = src->words[first].off, chars = 0;
    for (size_t k = first; k < end; k++) {
        dsk_word w = src->words[k];
        if (k > first)  /* the blanks between words */
            chars += count_chars(src->text + src->words[k - 1].off + src->words[k - 1].len,
                                 w.off - (src->words[k - 1].off + src->words[k - 1].len));
        chars += w.nchars;
        v->n_letters += w.letters;
        v->n_cjk += (w.flags & DSK_WORD_CJK) != 0;
        w.off = (uint32_t)(w.off - base + dst_off);
        w.core_off = (uint32_t)(w.core_off - base + dst_off);
        v->words[v->n_words++] = w;
    }
    const dsk_word *last = &src->words[end - 1];
    push_line(v, dst_off, dst_off + (last->off + last->len - base), chars);
    v->nchars += chars;
}

void dsk_text_view_finish(dsk_text_view *v, const char *text, size_t len)
{
    v->text = text;
    v->len = len;
    if (v->n_lines)
        v->nchars += v->n_lines - 1;  /* the line breaks */
    else
        push_line(v, 0, 0, 0);        /* an empty text is one empty line */
}

size_t dsk_text_view_tokens(const dsk_text_view *v)
{
    size_t tokens = 0;
    for (size_t i = 0; i < v->n_words; i++) {
        const dsk_word *w = &v->words[i];
        if (w->flags & DSK_WORD_PUNCT_ONLY) {
            tokens += punct_run_tokens(v->text + w->off, w->len);
            continue;
        }
        size_t core_end = w->core_off + w->core_len;
        tokens += 1 + punct_run_tokens(v->text + w->off, w->core_off - w->off) +
                  punct_run_tokens(v->text + core_end, w->off + w->len - core_end);
    }
    return tokens;
}

void dsk_text_view_free(dsk_text_view *v)
{
    free(v->lines);
    free(v->words);
    v->lines = NULL;
    v->words = NULL;
    v->cap_lines = v->cap_words = 0;
}
