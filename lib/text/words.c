#include "text/words.h"

#include <stdlib.h>
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

static dsk_word *push_word(dsk_text_view *v)
{
    if (v->n_words == v->cap_words) {
        v->cap_words = v->cap_words ? v->cap_words * 2 : 256;
        v->words = dsk_xrealloc(v->words, v->cap_words * sizeof *v->words);
    }
    return &v->words[v->n_words++];
}

static void push_line(dsk_text_view *v, size_t off, size_t end, size_t nchars)
{
    if (v->n_lines == v->cap_lines) {
        v->cap_lines = v->cap_lines ? v->cap_lines * 2 : 64;
        v->lines = dsk_xrealloc(v->lines, v->cap_lines * sizeof *v->lines);
    }
    v->lines[v->n_lines++] = (dsk_span){(uint32_t)off, (uint32_t)(end - off), (uint32_t)nchars};
}

void dsk_text_view_build(dsk_text_view *v, const char *text, size_t len)
{
    const uint8_t *s = (const uint8_t *)text;
    v->text = text;
    v->len = len;
    v->nchars = v->n_lines = v->n_words = v->n_letters = v->n_cjk = 0;

    dsk_word *w = NULL;  /* word being built, NULL between words */
    uint32_t lead = 0;   /* punctuation characters before w's core */
    size_t line_off = 0, line_chars = 0;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t l;
        if (s[i] < 0x80) {
            cp = s[i];
            l = 1;
        } else {
            cp = dsk_utf8_decode(s + i, &l);
        }
        v->nchars++;
        if (cp == '\n') {
            push_line(v, line_off, i, line_chars);
            line_off = i + 1;
            line_chars = 0;
            w = NULL;
            i++;
            continue;
        }
        line_chars++;
        if (dsk_cp_is_space(cp)) {
            w = NULL;
            i += l;
            continue;
        }
        int alpha = dsk_cp_is_alpha(cp);
        int cjk = cp >= 0x1100 && dsk_is_cjk(cp);
        int punct = !alpha && dsk_cp_is_punct_or_symbol(cp);
        v->n_letters += alpha;
        v->n_cjk += cjk;
        if (cjk || !w || (w->flags & DSK_WORD_CJK)) {
            w = push_word(v);
            *w = (dsk_word){(uint32_t)i, 0, 0, DSK_WORD_PUNCT_ONLY | (cjk ? DSK_WORD_CJK : 0), (uint32_t)i, 0, 0};
        }
        w->len += (uint32_t)l;
        w->nchars++;
        if (alpha)
            w->flags |= DSK_WORD_HAS_ALPHA;
        if (!punct) {
            if (w->flags & DSK_WORD_PUNCT_ONLY) {  /* first core character */
                w->core_off = (uint32_t)i;
                lead = w->nchars - 1;
            }
            w->flags &= ~(uint32_t)DSK_WORD_PUNCT_ONLY;
            w->core_len = (uint32_t)(i + l) - w->core_off;
            w->core_nchars = w->nchars - lead;
        }
        i += l;
    }
    push_line(v, line_off, len, line_chars);
}

void dsk_text_view_free(dsk_text_view *v)
{
    free(v->lines);
    free(v->words);
    v->lines = NULL;
    v->words = NULL;
    v->cap_lines = v->cap_words = 0;
}
