/* Document quality filters with the published defaults (Gopher quality and
 * repetition from MassiveText, C4, FineWeb), as datatrove implements them.
 *
 * Each filter looks at a dsk_text_view and returns NULL to keep the
 * document or the name of the rule that drops it ("gopher_quality.stop_words").
 * Every threshold is a named parameter, tunable with `--set NAME=VALUE`.
 *
 * Script awareness: a document is treated as CJK when at least cjk_ratio of
 * its letters are CJK characters.  For CJK documents each character counts
 * as a word (see words.h), and the two rules that only make sense for
 * space-separated languages, mean word length and stop words, are skipped;
 * CJK sentence punctuation counts as terminal punctuation everywhere. */
#ifndef DSK_CLEAN_FILTERS_H
#define DSK_CLEAN_FILTERS_H

#include <stddef.h>

#include "core/buf.h"
#include "core/u64map.h"
#include "text/words.h"

/* Per-thread working memory for the filters, reused across documents. */
typedef struct dsk_filter_scratch {
    dsk_u64map map;
    uint64_t *hashes;
    size_t cap_hashes;
    dsk_buf line;
} dsk_filter_scratch;

void dsk_filter_scratch_free(dsk_filter_scratch *s);

typedef struct dsk_filter_params {
    double cjk_ratio;

    /* Gopher quality */
    double gq_min_words, gq_max_words;
    double gq_min_mean_word_len, gq_max_mean_word_len;
    double gq_max_symbol_word_ratio;
    double gq_max_bullet_lines_ratio, gq_max_ellipsis_lines_ratio;
    double gq_min_alpha_words_ratio;
    double gq_min_stop_words;

    /* Gopher repetition */
    double gr_dup_line_frac, gr_dup_para_frac;
    double gr_dup_line_char_frac, gr_dup_para_char_frac;
    double gr_top_ngram_frac[5];  /* index n for n = 2..4 */
    double gr_dup_ngram_frac[11]; /* index n for n = 5..10 */

    /* C4 */
    double c4_min_words_per_line, c4_max_word_len, c4_min_sentences;
    double c4_terminal_punct, c4_lorem_ipsum, c4_javascript, c4_curly_bracket, c4_policy,
        c4_remove_citations;

    /* FineWeb */
    double fw_line_punct_ratio, fw_short_line_ratio, fw_short_line_len, fw_char_dup_ratio,
        fw_newline_ratio;

    /* length */
    double min_chars, max_chars;
} dsk_filter_params;

void dsk_filter_params_default(dsk_filter_params *p);

/* Sets "name=value"; returns 0, or -1 with a message in err_msg. */
int dsk_filter_params_set(dsk_filter_params *p, const char *assignment, char *err_msg, size_t err_len);
/* Prints every parameter with its value, one "name=value" per line. */
void dsk_filter_params_print(const dsk_filter_params *p, void *file);

const char *dsk_filter_gopher_quality(const dsk_text_view *v, const dsk_filter_params *p);
const char *dsk_filter_gopher_repetition(const dsk_text_view *v, const dsk_filter_params *p,
                                         dsk_filter_scratch *s);
const char *dsk_filter_fineweb(const dsk_text_view *v, const dsk_filter_params *p, dsk_filter_scratch *s);

/* C4 is a line filter as well as a document filter: kept lines are written
 * to out (joined by '\n'); *lines_removed counts the others.  When out_view
 * is given, it receives the view of out built from v's words, and
 * *out_view_ok says whether that was possible (not when a citation mark was
 * cut out of a kept line: then the caller scans out again). */
const char *dsk_filter_c4(const dsk_text_view *v, const dsk_filter_params *p, dsk_filter_scratch *s,
                          dsk_buf *out, size_t *lines_removed, dsk_text_view *out_view, int *out_view_ok);

int dsk_doc_is_cjk(const dsk_text_view *v, const dsk_filter_params *p);

/* Does s[0..n) end with sentence-final punctuation: . ! ? " ' or a CJK
 * full stop, exclamation or question mark or closing quote? */
int dsk_ends_with_terminal_punct(const char *s, size_t n);

/* A line of nothing but whitespace (Python's str.strip() leaves it
 * empty, for the ASCII whitespace). */
int dsk_line_is_blank(const char *s, size_t n);

/* Number of duplicate items among the non-empty lines of v (skip_blank:
 * the lines that are not blank) and the characters they hold (datatrove's
 * find_duplicates on lines). */
void dsk_duplicate_lines(const dsk_text_view *v, dsk_filter_scratch *s, int skip_blank, size_t *dup_lines,
                         size_t *dup_chars);

#endif
