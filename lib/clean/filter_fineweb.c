/* FineWeb's own quality rules (Penedo et al. 2024), as datatrove applies
 * them; CJK sentence punctuation also ends a line. */
#include "clean/filters.h"

const char *dsk_filter_fineweb(const dsk_text_view *v, const dsk_filter_params *p, dsk_filter_scratch *s)
{
    /* The line rules count the lines that are not blank, as datatrove's
     * (a paragraph break is no short line); the line breaks per word count
     * them all. */
    size_t lines = 0, punct = 0, short_lines = 0;
    for (size_t i = 0; i < v->n_lines; i++) {
        const dsk_span *l = &v->lines[i];
        const char *text = v->text + l->off;
        if (dsk_line_is_blank(text, l->len))
            continue;
        lines++;
        punct += dsk_ends_with_terminal_punct(text, l->len);
        short_lines += l->nchars <= p->fw_short_line_len;
    }
    /* datatrove's comparisons: under the punctuation ratio, over the short-line one */
    if (lines == 0 || (double)punct / (double)lines < p->fw_line_punct_ratio)
        return "fineweb.line_punct_ratio";
    if (p->fw_short_line_ratio && (double)short_lines / (double)lines > p->fw_short_line_ratio)
        return "fineweb.short_line_ratio";
    size_t dup_lines, dup_chars;
    dsk_duplicate_lines(v, s, 1, &dup_lines, &dup_chars);
    double chars = (double)(v->nchars - (v->n_lines - 1));  /* without the '\n's */
    if (p->fw_char_dup_ratio && chars > 0 && (double)dup_chars / chars >= p->fw_char_dup_ratio)
        return "fineweb.char_dup_ratio";
    size_t tokens = dsk_text_view_tokens(v);
    if (p->fw_newline_ratio && (tokens == 0 || (double)(v->n_lines - 1) / (double)tokens > p->fw_newline_ratio))
        return "fineweb.newline_ratio";
    return NULL;
}
