#include <stdlib.h>
#include <string.h>

#include "clean/clean.h"

void dsk_clean_config_default(dsk_clean_config *c)
{
    memset(c, 0, sizeof *c);
    c->records.mode = DSK_REC_JSONL;
    c->field = "text";
    c->utf8 = DSK_UTF8_REPLACE;
    c->normalize.form = DSK_NORM_NFC;
    c->normalize.tidy_whitespace = 1;
    c->filters = DSK_FILTER_ALL;
    dsk_filter_params_default(&c->params);
    c->dedup = DSK_DEDUP_EXACT;
    c->minhash_ngram = 5;
    c->minhash_bands = 14;
    c->minhash_rows = 8;
    c->dedup_memory = (uint64_t)4 << 30;
    c->split[0] = 98;
    c->split[1] = 1;
    c->split[2] = 1;
    c->threads = 1;
    c->max_record = (size_t)64 << 20;
}

void dsk_clean_config_free(dsk_clean_config *c)
{
    dsk_rules_free(&c->rules);
    dsk_records_spec_free(&c->records);
}

typedef struct named_bit {
    const char *name;
    unsigned bit;
} named_bit;

/* "a,b" sets exactly those; "all"/"none"; "-a" or "+a" edit the default. */
static int parse_bits(const char *option, const char *arg, const named_bit *names, size_t n_names, unsigned all,
                      unsigned *bits, dsk_err *err)
{
    char *copy = dsk_xstrdup(arg);
    int editing = arg[0] == '+' || arg[0] == '-';
    unsigned result = editing ? *bits : 0;
    int rc = 0;
    /* Every name given, empty ones included: an empty list (an unset
     * Makefile variable) must not read as "none". */
    for (char *rest = copy, *tok; (tok = strsep(&rest, ",")) != NULL;) {
        int sign = 0;
        if (*tok == '+' || *tok == '-')
            sign = *tok++ == '-' ? -1 : 1;
        if (!*tok) {
            rc = dsk_fail(err, EX_USAGE, "%s: an empty name in '%s' (none turns them all off)", option, arg);
            break;
        }
        if (sign == 0 && editing) {
            rc = dsk_fail(err, EX_USAGE, "%s: mix of edits (+x/-x) and plain names in '%s'", option, arg);
            break;
        }
        unsigned bit = 0;
        if (strcmp(tok, "all") == 0)
            bit = all;
        else if (strcmp(tok, "none") == 0 && sign == 0)
            bit = 0;
        else {
            size_t i;
            for (i = 0; i < n_names && strcmp(tok, names[i].name) != 0; i++)
                ;
            if (i == n_names) {
                rc = dsk_fail(err, EX_USAGE, "%s: unknown name '%s'", option, tok);
                break;
            }
            bit = names[i].bit;
        }
        if (sign < 0)
            result &= ~bit;
        else
            result |= bit;
    }
    free(copy);
    if (!rc)
        *bits = result;
    return rc;
}

int dsk_parse_filter_list(const char *arg, unsigned *filters, dsk_err *err)
{
    static const named_bit names[] = {
        {"gopher-repetition", DSK_FILTER_GOPHER_REPETITION},
        {"gopher-quality", DSK_FILTER_GOPHER_QUALITY},
        {"c4", DSK_FILTER_C4},
        {"fineweb", DSK_FILTER_FINEWEB},
    };
    return parse_bits("--filters", arg, names, sizeof names / sizeof names[0], DSK_FILTER_ALL, filters, err);
}

int dsk_parse_dedup_list(const char *arg, unsigned *dedup, dsk_err *err)
{
    static const named_bit names[] = {{"exact", DSK_DEDUP_EXACT}, {"minhash", DSK_DEDUP_MINHASH}};
    return parse_bits("--dedup", arg, names, 2, DSK_DEDUP_EXACT | DSK_DEDUP_MINHASH, dedup, err);
}
