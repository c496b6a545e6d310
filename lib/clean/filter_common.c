/* Helpers shared by the quality filters. */
#include <stdlib.h>

#include "clean/filters.h"
#include "core/hash.h"

void dsk_filter_scratch_free(dsk_filter_scratch *s)
{
    dsk_u64map_free(&s->map);
    free(s->hashes);
    dsk_buf_free(&s->line);
    s->hashes = NULL;
    s->cap_hashes = 0;
}

int dsk_doc_is_cjk(const dsk_text_view *v, const dsk_filter_params *p)
{
    return v->n_letters > 0 && (double)v->n_cjk >= p->cjk_ratio * (double)v->n_letters;
}

int dsk_ends_with_terminal_punct(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    char c = s[n - 1];
    if (c == '.' || c == '!' || c == '?' || c == '"' || c == '\'')
        return 1;
    if (n < 3 || (uint8_t)c < 0x80)
        return 0;
    /* 。！？」』” */
    static const char cjk_end[][4] = {"\xE3\x80\x82", "\xEF\xBC\x81", "\xEF\xBC\x9F",
                                      "\xE3\x80\x8D", "\xE3\x80\x8F", "\xE2\x80\x9D"};
    for (size_t i = 0; i < sizeof cjk_end / sizeof cjk_end[0]; i++)
        if (memcmp(s + n - 3, cjk_end[i], 3) == 0)
            return 1;
    return 0;
}

int dsk_line_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\v' && s[i] != '\f')
            return 0;
    return 1;
}

void dsk_duplicate_lines(const dsk_text_view *v, dsk_filter_scratch *s, int skip_blank, size_t *dup_lines,
                         size_t *dup_chars)
{
    dsk_u64map_clear(&s->map, v->n_lines);
    *dup_lines = *dup_chars = 0;
    for (size_t i = 0; i < v->n_lines; i++) {
        const dsk_span *l = &v->lines[i];
        if (l->len == 0 || (skip_blank && dsk_line_is_blank(v->text + l->off, l->len)))
            continue;
        int is_new;
        dsk_u64map_upsert(&s->map, dsk_hash64(v->text + l->off, l->len), &is_new);
        if (!is_new) {
            (*dup_lines)++;
            *dup_chars += l->nchars;
        }
    }
}
