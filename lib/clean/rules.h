/* Regex rules on PCRE2 (with JIT): drop a document that matches, keep only
 * documents that match, or replace matches with a template.  Patterns are
 * compiled with PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, so \w is Unicode
 * and ^/$ match at line starts/ends.  Replacement templates use PCRE2's
 * extended substitution syntax ($1, ${name}). */
#ifndef DSK_CLEAN_RULES_H
#define DSK_CLEAN_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

typedef enum { DSK_RULE_DROP, DSK_RULE_KEEP, DSK_RULE_REPLACE } dsk_rule_kind;

typedef struct dsk_rule {
    dsk_rule_kind kind;
    char *pattern;      /* as given, for messages and stats */
    char *replacement;  /* for DSK_RULE_REPLACE */
    char *stat_name;    /* "regex.drop:PATTERN" etc. */
    void *code;         /* pcre2_code_8 */
} dsk_rule;

typedef struct dsk_rules {
    dsk_rule *items;
    size_t n, cap;
    size_t n_keep;
} dsk_rules;

/* origin names where the rule came from ("--drop", "rules.txt:12") for errors. */
int dsk_rules_add(dsk_rules *r, dsk_rule_kind kind, const char *spec, const char *origin, dsk_err *err);
/* Lines "drop RE", "keep RE", "replace RE=TEXT"; '#' comments, blank lines. */
int dsk_rules_load_file(dsk_rules *r, const char *path, dsk_err *err);
void dsk_rules_free(dsk_rules *r);

/* Per-thread matching state. */
typedef struct dsk_rules_matcher {
    void *match_data;
    void *match_ctx;
    void *jit_stack;
    dsk_buf tmp;
} dsk_rules_matcher;

void dsk_rules_matcher_init(dsk_rules_matcher *m);
void dsk_rules_matcher_free(dsk_rules_matcher *m);

/* Applies every replace rule in order to text (in place, via m->tmp);
 * returns the number of substitutions, or -1 with err set. */
long dsk_rules_replace(const dsk_rules *r, dsk_rules_matcher *m, dsk_buf *text, dsk_err *err);
/* Sets *rule_name to the stat name of the rule that drops text, or NULL to
 * keep it; 0, or -1 with err set (EX_DATAERR) when a rule could not be
 * decided (PCRE2's match or depth limit). */
int dsk_rules_verdict(const dsk_rules *r, dsk_rules_matcher *m, const char *text, size_t len, const char **rule_name,
                      dsk_err *err);

#endif
