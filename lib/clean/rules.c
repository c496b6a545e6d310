#define PCRE2_CODE_UNIT_WIDTH 8
#include "clean/rules.h"
#include "text/utf8.h"

#include <ctype.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/reader.h"

static const char *kind_name(dsk_rule_kind k)
{
    return k == DSK_RULE_DROP ? "drop" : k == DSK_RULE_KEEP ? "keep" : "replace";
}

/* In "RE=TEXT" the separator is the first '=' not escaped by a backslash. */
static const char *find_separator(const char *spec)
{
    for (const char *p = spec; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            continue;
        }
        if (*p == '=')
            return p;
    }
    return NULL;
}

/* The first group reference ($N, ${N}, $name, ${name}) in a replacement
 * that the pattern has no group for, or NULL (its length in *len).
 * pcre2_substitute finds those only at a match, hours into a run
 * perhaps, and then as bad data. */
static const char *unknown_group(const pcre2_code *code, const char *rep, size_t *len)
{
    uint32_t groups = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &groups);
    for (const char *p = rep; *p; p++) {
        if (*p == '\\' && p[1] == 'Q') {   /* \Q...\E: literal text, $ included */
            const char *e = strstr(p + 2, "\\E");
            if (!e)
                break;
            p = e + 1;
            continue;
        }
        if (*p == '\\' && p[1]) {   /* an escape (PCRE2_SUBSTITUTE_EXTENDED) */
            p++;
            continue;
        }
        if (*p != '$')
            continue;
        if (p[1] == '$') {
            p++;
            continue;
        }
        const char *name = p + 1 + (p[1] == '{');
        size_t n = 0;
        while (isalnum((unsigned char)name[n]) || name[n] == '_')
            n++;
        if (n == 0)
            continue;
        int found;
        if (isdigit((unsigned char)name[0])) {
            found = strtoul(name, NULL, 10) <= groups;
        } else {
            char buf[128];
            found = n < sizeof buf;
            if (found) {
                memcpy(buf, name, n);
                buf[n] = 0;
                int rc = pcre2_substring_number_from_name(code, (PCRE2_SPTR)buf);
                found = rc >= 0 || rc == PCRE2_ERROR_NOUNIQUESUBSTRING;   /* (?J): a name several groups share */
            }
        }
        if (!found) {
            *len = n;
            return name;
        }
        p = name + n - 1;
    }
    return NULL;
}

/* A replacement's other faults (a bad escape, "\\q"), which pcre2_substitute
 * also finds only at a match: it is tried on an empty match of an empty
 * pattern, its group references standing for empty text.  "" or why. */
static void replacement_error(const char *rep, char *why, size_t n)
{
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *empty = pcre2_compile((PCRE2_SPTR) "", 0, PCRE2_UTF, &errcode, &erroff, NULL);
    pcre2_match_data *md = empty ? pcre2_match_data_create_from_pattern(empty, NULL) : NULL;
    PCRE2_UCHAR out[64];
    PCRE2_SIZE out_len = sizeof out / sizeof *out;
    int rc = md ? pcre2_substitute(empty, (PCRE2_SPTR) "", 0, 0,
                                   PCRE2_SUBSTITUTE_EXTENDED | PCRE2_SUBSTITUTE_UNKNOWN_UNSET |
                                       PCRE2_SUBSTITUTE_UNSET_EMPTY | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH,
                                   md, NULL, (PCRE2_SPTR)rep, PCRE2_ZERO_TERMINATED, out, &out_len)
                : 1;
    if (rc < 0 && rc != PCRE2_ERROR_NOMEMORY) {   /* NOMEMORY: only longer than out */
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(rc, msg, sizeof msg);
        snprintf(why, n, "the replacement: %s", (char *)msg);
    }
    pcre2_match_data_free(md);
    pcre2_code_free(empty);
}

int dsk_rules_add(dsk_rules *r, dsk_rule_kind kind, const char *spec, const char *origin, dsk_err *err)
{
    char *pattern, *replacement = NULL;
    if (kind == DSK_RULE_REPLACE) {
        const char *eq = find_separator(spec);
        if (!eq)
            return dsk_fail(err, EX_USAGE, "%s: '%s' is not REGEX=REPLACEMENT", origin, spec);
        /* The substitution runs without UTF-8 checks, the replacement's
         * included: bytes that are not UTF-8 would be read past its end. */
        size_t bad = dsk_utf8_find_invalid(eq + 1, strlen(eq + 1));
        if (bad < strlen(eq + 1))
            return dsk_fail(err, EX_USAGE, "%s: the replacement is not UTF-8 (at its byte %zu)", origin, bad);
        pattern = dsk_xstrndup(spec, (size_t)(eq - spec));
        replacement = dsk_xstrdup(eq + 1);
    } else {
        pattern = dsk_xstrdup(spec);
    }
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &errcode, &erroff, NULL);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        dsk_fail(err, EX_USAGE, "%s: bad regex '%s': %s at offset %zu", origin, pattern, (char *)msg,
                 (size_t)erroff);
        free(pattern);
        free(replacement);
        return EX_USAGE;
    }
    size_t bad_len = 0;
    const char *bad = replacement ? unknown_group(code, replacement, &bad_len) : NULL;
    char why[160] = "";
    if (bad)
        snprintf(why, sizeof why, "the pattern has no group '%.*s'", (int)bad_len, bad);
    else if (replacement)
        replacement_error(replacement, why, sizeof why);
    if (why[0]) {
        dsk_fail(err, EX_USAGE, "%s: replace '%s': %s", origin, pattern, why);
        pcre2_code_free(code);
        free(pattern);
        free(replacement);
        return EX_USAGE;
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  /* falls back to the interpreter if JIT is unavailable */
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->items = dsk_xrealloc(r->items, r->cap * sizeof *r->items);
    }
    dsk_rule *rule = &r->items[r->n++];
    rule->kind = kind;
    rule->pattern = pattern;
    rule->replacement = replacement;
    rule->code = code;
    size_t n = strlen(pattern) + 32;
    rule->stat_name = dsk_xmalloc(n);
    snprintf(rule->stat_name, n, "regex.%s:%s", kind_name(kind), pattern);
    r->n_keep += kind == DSK_RULE_KEEP;
    return 0;
}

int dsk_rules_load_file(dsk_rules *r, const char *path, dsk_err *err)
{
    dsk_reader rd;
    int rc = dsk_reader_open(&rd, path, 1 << 20, err);
    if (rc)
        return rc;
    const char *line;
    size_t len;
    while ((rc = dsk_reader_next(&rd, '\n', &line, &len, err)) == 1) {
        char *copy = dsk_xstrndup(line, len);
        char *s = copy;
        size_t n = len;
        while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            s[--n] = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        char origin[512];
        snprintf(origin, sizeof origin, "%s:%llu", path, (unsigned long long)rd.record_no);
        if (*s && *s != '#') {
            char *sp = s + strcspn(s, " \t");
            dsk_rule_kind kind;
            size_t klen = (size_t)(sp - s);
            if (klen == 4 && memcmp(s, "drop", 4) == 0)
                kind = DSK_RULE_DROP;
            else if (klen == 4 && memcmp(s, "keep", 4) == 0)
                kind = DSK_RULE_KEEP;
            else if (klen == 7 && memcmp(s, "replace", 7) == 0)
                kind = DSK_RULE_REPLACE;
            else {
                /* The message first: s points into copy. */
                dsk_fail(err, EX_USAGE, "%s: expected 'drop', 'keep' or 'replace', got '%.*s'", origin, (int)klen, s);
                free(copy);
                dsk_reader_close(&rd);
                return EX_USAGE;
            }
            while (*sp == ' ' || *sp == '\t')
                sp++;
            if (!*sp)
                rc = dsk_fail(err, EX_USAGE, "%s: '%.*s' needs a pattern", origin, (int)klen, s);
            else
                rc = dsk_rules_add(r, kind, sp, origin, err);
            if (rc) {
                free(copy);
                dsk_reader_close(&rd);
                return rc;
            }
        }
        free(copy);
    }
    dsk_reader_close(&rd);
    return rc < 0 || rc > 1 ? rc : 0;
}

void dsk_rules_free(dsk_rules *r)
{
    for (size_t i = 0; i < r->n; i++) {
        pcre2_code_free(r->items[i].code);
        free(r->items[i].pattern);
        free(r->items[i].replacement);
        free(r->items[i].stat_name);
    }
    free(r->items);
    memset(r, 0, sizeof *r);
}

void dsk_rules_matcher_init(dsk_rules_matcher *m)
{
    memset(m, 0, sizeof *m);
    m->match_data = pcre2_match_data_create(32, NULL);
    m->match_ctx = pcre2_match_context_create(NULL);
    m->jit_stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, NULL);
    if (!m->match_data || !m->match_ctx || !m->jit_stack)
        dsk_die(EX_OSERR, "out of memory creating regex match state");
    pcre2_jit_stack_assign(m->match_ctx, NULL, m->jit_stack);
}

void dsk_rules_matcher_free(dsk_rules_matcher *m)
{
    pcre2_match_data_free(m->match_data);
    pcre2_match_context_free(m->match_ctx);
    pcre2_jit_stack_free(m->jit_stack);
    dsk_buf_free(&m->tmp);
}

/* A rule PCRE2 could not run on a text (a match limit, an error in a
 * replacement): EX_DATAERR naming the rule, -1. */
static int rule_fail(dsk_err *err, const dsk_rule *rule, int rc)
{
    static const char *const kinds[] = {"drop", "keep", "replace"};
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    dsk_fail(err, EX_DATAERR, "%s '%s': %s", kinds[rule->kind], rule->pattern, (char *)msg);
    return -1;
}

long dsk_rules_replace(const dsk_rules *r, dsk_rules_matcher *m, dsk_buf *text, dsk_err *err)
{
    long total = 0;
    for (size_t i = 0; i < r->n; i++) {
        const dsk_rule *rule = &r->items[i];
        if (rule->kind != DSK_RULE_REPLACE)
            continue;
        for (;;) {
            /* room for twice the text, or what the buffer has: reserve()
             * adds a byte for a NUL, so asking for its whole capacity
             * again would double it at every document */
            size_t want = text->len * 2 + 64;
            dsk_buf_clear(&m->tmp);
            if (m->tmp.cap > want + 1)
                want = m->tmp.cap - 1;
            dsk_buf_reserve(&m->tmp, want);
            PCRE2_SIZE outlen = m->tmp.cap;
            int rc = pcre2_substitute(rule->code, (PCRE2_SPTR)(text->data ? text->data : ""), text->len, 0,
                                      PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_EXTENDED | PCRE2_SUBSTITUTE_UNSET_EMPTY |
                                          PCRE2_SUBSTITUTE_OVERFLOW_LENGTH | PCRE2_NO_UTF_CHECK,
                                      m->match_data, m->match_ctx, (PCRE2_SPTR)rule->replacement,
                                      PCRE2_ZERO_TERMINATED, (PCRE2_UCHAR *)m->tmp.data, &outlen);
            if (rc == PCRE2_ERROR_NOMEMORY) {  /* outlen now holds the size needed */
                dsk_buf_reserve(&m->tmp, outlen + 1);
                continue;
            }
            if (rc < 0)
                return rule_fail(err, rule, rc);
            if (rc > 0) {
                m->tmp.len = outlen;
                dsk_buf tmp = *text;  /* swap buffers */
                *text = m->tmp;
                m->tmp = tmp;
                total += rc;
            }
            break;
        }
    }
    return total;
}

/* 1 if the rule matches, 0 if not, -1 with err set when PCRE2 could not
 * tell (its match or depth limit): a --drop rule that gave up would keep
 * what it exists to drop. */
static int matches(const dsk_rule *rule, dsk_rules_matcher *m, const char *text, size_t len, dsk_err *err)
{
    int rc = pcre2_match(rule->code, (PCRE2_SPTR)(text ? text : ""), len, 0, PCRE2_NO_UTF_CHECK, m->match_data,
                         m->match_ctx);
    return rc >= 0 || rc == PCRE2_ERROR_NOMATCH ? rc >= 0 : rule_fail(err, rule, rc);
}

int dsk_rules_verdict(const dsk_rules *r, dsk_rules_matcher *m, const char *text, size_t len, const char **rule_name,
                      dsk_err *err)
{
    const char *keep_miss = NULL;
    int kept = 0;
    *rule_name = NULL;
    for (size_t i = 0; i < r->n; i++) {
        const dsk_rule *rule = &r->items[i];
        if (rule->kind == DSK_RULE_REPLACE || (rule->kind == DSK_RULE_KEEP && kept))
            continue;   /* one keep rule that matches is enough */
        int hit = matches(rule, m, text, len, err);
        if (hit < 0)
            return -1;
        if (rule->kind == DSK_RULE_DROP && hit) {
            *rule_name = rule->stat_name;
            return 0;
        }
        if (rule->kind == DSK_RULE_KEEP) {
            kept = hit;
            if (!hit && !keep_miss)
                keep_miss = rule->stat_name;
        }
    }
    *rule_name = r->n_keep && !kept ? (r->n_keep == 1 ? keep_miss : "regex.keep") : NULL;
    return 0;
}
