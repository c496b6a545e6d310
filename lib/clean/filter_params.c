#include "clean/filters.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dsk_filter_params_default(dsk_filter_params *p)
{
    memset(p, 0, sizeof *p);
    p->cjk_ratio = 0.3;

    p->gq_min_words = 50;
    p->gq_max_words = 100000;
    p->gq_min_mean_word_len = 3;
    p->gq_max_mean_word_len = 10;
    p->gq_max_symbol_word_ratio = 0.1;
    p->gq_max_bullet_lines_ratio = 0.9;
    p->gq_max_ellipsis_lines_ratio = 0.3;
    p->gq_min_alpha_words_ratio = 0.8;
    p->gq_min_stop_words = 2;

    p->gr_dup_line_frac = 0.3;
    p->gr_dup_para_frac = 0.3;
    p->gr_dup_line_char_frac = 0.2;
    p->gr_dup_para_char_frac = 0.2;
    p->gr_top_ngram_frac[2] = 0.20;
    p->gr_top_ngram_frac[3] = 0.18;
    p->gr_top_ngram_frac[4] = 0.16;
    for (int n = 5; n <= 10; n++)
        p->gr_dup_ngram_frac[n] = 0.15 - 0.01 * (n - 5);

    p->c4_min_words_per_line = 3;
    p->c4_max_word_len = 1000;
    p->c4_min_sentences = 5;
    p->c4_terminal_punct = 0;  /* FineWeb's setting; C4 itself used 1 */
    p->c4_lorem_ipsum = 1;
    p->c4_javascript = 1;
    p->c4_curly_bracket = 1;
    p->c4_policy = 1;
    p->c4_remove_citations = 1;

    p->fw_line_punct_ratio = 0.12;
    p->fw_short_line_ratio = 0.67;
    p->fw_short_line_len = 30;
    p->fw_char_dup_ratio = 0.01;
    p->fw_newline_ratio = 0.3;

    p->min_chars = 0;
    p->max_chars = 0;  /* 0: no limit */
}

/* What a value may be: a switch (0 or 1), a count (a whole number), a
 * fraction (0 to 1), or any number from 0. */
enum { SWITCH, COUNT, FRACTION, NUMBER };

typedef struct param_desc {
    const char *name;
    size_t offset;
    int kind;
} param_desc;

#define P(name, field, kind) {name, offsetof(dsk_filter_params, field), kind}
static const param_desc params[] = {
    P("cjk_ratio", cjk_ratio, FRACTION),
    P("gopher_quality.min_words", gq_min_words, COUNT),
    P("gopher_quality.max_words", gq_max_words, COUNT),
    P("gopher_quality.min_mean_word_length", gq_min_mean_word_len, NUMBER),
    P("gopher_quality.max_mean_word_length", gq_max_mean_word_len, NUMBER),
    P("gopher_quality.max_symbol_word_ratio", gq_max_symbol_word_ratio, NUMBER),
    P("gopher_quality.max_bullet_lines_ratio", gq_max_bullet_lines_ratio, FRACTION),
    P("gopher_quality.max_ellipsis_lines_ratio", gq_max_ellipsis_lines_ratio, FRACTION),
    P("gopher_quality.min_alpha_words_ratio", gq_min_alpha_words_ratio, FRACTION),
    P("gopher_quality.min_stop_words", gq_min_stop_words, COUNT),
    P("gopher_repetition.dup_line_frac", gr_dup_line_frac, FRACTION),
    P("gopher_repetition.dup_para_frac", gr_dup_para_frac, FRACTION),
    P("gopher_repetition.dup_line_char_frac", gr_dup_line_char_frac, FRACTION),
    P("gopher_repetition.dup_para_char_frac", gr_dup_para_char_frac, FRACTION),
    P("gopher_repetition.top_2gram_frac", gr_top_ngram_frac[2], FRACTION),
    P("gopher_repetition.top_3gram_frac", gr_top_ngram_frac[3], FRACTION),
    P("gopher_repetition.top_4gram_frac", gr_top_ngram_frac[4], FRACTION),
    P("gopher_repetition.dup_5gram_frac", gr_dup_ngram_frac[5], FRACTION),
    P("gopher_repetition.dup_6gram_frac", gr_dup_ngram_frac[6], FRACTION),
    P("gopher_repetition.dup_7gram_frac", gr_dup_ngram_frac[7], FRACTION),
    P("gopher_repetition.dup_8gram_frac", gr_dup_ngram_frac[8], FRACTION),
    P("gopher_repetition.dup_9gram_frac", gr_dup_ngram_frac[9], FRACTION),
    P("gopher_repetition.dup_10gram_frac", gr_dup_ngram_frac[10], FRACTION),
    P("c4.min_words_per_line", c4_min_words_per_line, COUNT),
    P("c4.max_word_length", c4_max_word_len, COUNT),
    P("c4.min_sentences", c4_min_sentences, COUNT),
    P("c4.terminal_punct", c4_terminal_punct, SWITCH),
    P("c4.lorem_ipsum", c4_lorem_ipsum, SWITCH),
    P("c4.javascript", c4_javascript, SWITCH),
    P("c4.curly_bracket", c4_curly_bracket, SWITCH),
    P("c4.policy", c4_policy, SWITCH),
    P("c4.remove_citations", c4_remove_citations, SWITCH),
    P("fineweb.line_punct_ratio", fw_line_punct_ratio, FRACTION),
    P("fineweb.short_line_ratio", fw_short_line_ratio, FRACTION),
    P("fineweb.short_line_length", fw_short_line_len, COUNT),
    P("fineweb.char_dup_ratio", fw_char_dup_ratio, FRACTION),
    P("fineweb.newline_ratio", fw_newline_ratio, NUMBER),
    P("length.min_chars", min_chars, COUNT),
    P("length.max_chars", max_chars, COUNT),
};
#undef P

int dsk_filter_params_set(dsk_filter_params *p, const char *assignment, char *err_msg, size_t err_len)
{
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        snprintf(err_msg, err_len, "'%s' is not NAME=VALUE", assignment);
        return -1;
    }
    size_t nlen = (size_t)(eq - assignment);
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        if (strlen(params[i].name) != nlen || memcmp(params[i].name, assignment, nlen) != 0)
            continue;
        char *end;
        double v = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || v != v || v < 0) {
            snprintf(err_msg, err_len, "%.*s: '%s' is not a non-negative number", (int)nlen, assignment,
                     eq + 1);
            return -1;
        }
        int kind = params[i].kind;
        if ((kind == SWITCH && v != 0 && v != 1) || (kind == COUNT && (v != floor(v) || v > 1e15)) ||
            (kind == FRACTION && v > 1)) {
            static const char *const what[] = {"0 or 1", "a whole number", "a fraction, 0 to 1"};
            snprintf(err_msg, err_len, "%.*s: '%s' is not %s", (int)nlen, assignment, eq + 1, what[kind]);
            return -1;
        }
        *(double *)((char *)p + params[i].offset) = v;
        return 0;
    }
    snprintf(err_msg, err_len, "unknown parameter '%.*s' (--list-params shows them)", (int)nlen, assignment);
    return -1;
}

void dsk_filter_params_print(const dsk_filter_params *p, void *file)
{
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        fprintf((FILE *)file, "%s=%g\n", params[i].name, *(const double *)((const char *)p + params[i].offset));
}
