#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/records.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

int dsk_records_spec_parse(dsk_records_spec *spec, const char *arg, dsk_err *err)
{
    memset(spec, 0, sizeof *spec);
    if (strcmp(arg, "jsonl") == 0)
        spec->mode = DSK_REC_JSONL;
    else if (strcmp(arg, "lines") == 0)
        spec->mode = DSK_REC_LINES;
    else if (strcmp(arg, "paragraphs") == 0)
        spec->mode = DSK_REC_PARAGRAPHS;
    else if (strcmp(arg, "nul") == 0)
        spec->mode = DSK_REC_NUL;
    else if (strncmp(arg, "regex:", 6) == 0) {
        if (!arg[6])
            return dsk_fail(err, EX_USAGE, "--records regex: needs a pattern (regex:PATTERN)");
        int code;
        PCRE2_SIZE off;
        spec->mode = DSK_REC_REGEX;
        spec->separator = pcre2_compile((PCRE2_SPTR)(arg + 6), PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                        &code, &off, NULL);
        if (!spec->separator) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            return dsk_fail(err, EX_USAGE, "--records: bad regex '%s': %s at offset %zu", arg + 6, (char *)msg,
                            (size_t)off);
        }
        pcre2_jit_compile(spec->separator, PCRE2_JIT_COMPLETE);
    } else
        return dsk_fail(err, EX_USAGE, "--records: expected jsonl, lines, paragraphs, nul or regex:PATTERN, got '%s'",
                        arg);
    return 0;
}

void dsk_records_spec_free(dsk_records_spec *spec)
{
    if (spec->separator)
        pcre2_code_free(spec->separator);
    spec->separator = NULL;
}

void dsk_records_init(dsk_records *rs, const dsk_records_spec *spec, dsk_reader *reader)
{
    memset(rs, 0, sizeof *rs);
    rs->spec = spec;
    rs->reader = reader;
    if (spec->separator)
        rs->match_data = pcre2_match_data_create_from_pattern(spec->separator, NULL);
}

void dsk_records_free(dsk_records *rs)
{
    if (rs->match_data)
        pcre2_match_data_free(rs->match_data);
    dsk_buf_free(&rs->acc);
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v')
            return 0;
    return 1;
}

/* A NUL-terminated record holds lines of its own: blank when they all are. */
static int is_blank_lines(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '\n' && !is_blank(s + i, 1))
            return 0;
    return 1;
}

static uint64_t count_newlines(const char *s, size_t n)
{
    uint64_t count = 0;
    for (const char *p = s, *end = s + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        count++;
    return count;
}

/* 1 for a separator line, 0 for another, -1 (err set) when the regex
 * could not decide: PCRE2's match or depth limit, which must not merge
 * records silently. */
static int is_separator(dsk_records *rs, const char *line, size_t len, dsk_err *err)
{
    if (len && line[len - 1] == '\r')
        len--;
    if (rs->spec->mode == DSK_REC_PARAGRAPHS)
        return is_blank(line, len);
    int rc = pcre2_match(rs->spec->separator, (PCRE2_SPTR)line, len, 0, 0, rs->match_data, NULL);
    /* invalid UTF-8 makes pcre2_match fail: such a line is never a separator */
    if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH || (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21))
        return rc >= 0;
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(rc, msg, sizeof msg);
    dsk_fail(err, EX_DATAERR, "%s:%llu: the records' separator regex: %s", rs->reader->name,
             (unsigned long long)rs->reader->record_no, (char *)msg);
    return -1;
}

/* Reads past the rest of a record too long (skip_long) to its separator,
 * or the end: DSK_READER_SKIPPED with its first line, or a read error. */
static int skip_to_separator(dsk_records *rs, uint64_t first, const char **text, size_t *len, uint64_t *line_no,
                             dsk_err *err)
{
    const char *line;
    size_t n, bytes = rs->acc.len + (size_t)rs->reader->skipped_bytes;
    int rc;
    dsk_err ignored = {0};
    while ((rc = dsk_reader_next(rs->reader, '\n', &line, &n, &ignored)) == 1 ||
           rc == DSK_READER_SKIPPED) {
        int sep = rc == 1 ? is_separator(rs, line, n, err) : 0;
        if (sep < 0)
            return err->code;
        if (sep)
            break;
        bytes += 1 + (rc == 1 ? n : (size_t)rs->reader->skipped_bytes);
    }
    if (rc != 1 && rc != 0) {
        *err = ignored;   /* a read error, not the record's length */
        return rc;
    }
    dsk_buf_clear(&rs->acc);
    *line_no = first, *text = NULL, *len = bytes;
    return DSK_READER_SKIPPED;
}

int dsk_records_next(dsk_records *rs, const char **text, size_t *len, uint64_t *line_no, dsk_err *err)
{
    dsk_reader *r = rs->reader;
    int delim = rs->spec->mode == DSK_REC_NUL ? '\0' : '\n';
    const char *line;
    size_t n;
    int rc;
    if (rs->spec->mode == DSK_REC_JSONL || rs->spec->mode == DSK_REC_LINES || rs->spec->mode == DSK_REC_NUL) {
        while ((rc = dsk_reader_next(r, delim, &line, &n, err)) == 1) {
            /* A NUL-terminated record's number is not a line's: its line is
             * the one it starts on, counted through the records before. */
            uint64_t first_line = r->record_no;
            if (delim == '\0') {
                first_line = 1 + rs->nul_newlines;
                rs->nul_newlines += count_newlines(line, n);
            }
            if (delim == '\0' ? is_blank_lines(line, n) : is_blank(line, n))
                continue;
            *text = line;
            *len = n;
            *line_no = first_line;
            return 1;
        }
        if (rc == DSK_READER_SKIPPED) {   /* *text NULL, *len the bytes read past */
            *line_no = r->record_no, *text = NULL, *len = (size_t)r->skipped_bytes;
            if (delim == '\0') {
                *line_no = 1 + rs->nul_newlines;
                rs->nul_newlines += r->skipped_newlines;
            }
        }
        return rc;
    }
    /* paragraphs and regex separators: gather lines until a separator */
    dsk_buf_clear(&rs->acc);
    uint64_t first = 0;
    int any = 0;
    while ((rc = dsk_reader_next(r, '\n', &line, &n, err)) == 1) {
        int sep = is_separator(rs, line, n, err);
        if (sep < 0)
            return err->code;
        if (sep) {
            if (any && !is_blank(rs->acc.data, rs->acc.len))
                break;
            dsk_buf_clear(&rs->acc);
            any = 0;
            continue;
        }
        if (!any)
            first = r->record_no;
        else
            dsk_buf_addc(&rs->acc, '\n');
        dsk_buf_add(&rs->acc, line, n);
        any = 1;
        if (rs->acc.len > r->max_record) {
            dsk_fail(err, EX_DATAERR, "%s:%llu: record longer than the %zu-byte limit", r->name,
                     (unsigned long long)first, r->max_record);
            if (!r->skip_long)
                return err->code;
            /* read past it: to its separator, or the end */
            return skip_to_separator(rs, first, text, len, line_no, err);
        }
    }
    if (rc == DSK_READER_SKIPPED) {   /* a line too long for the reader: its record goes too */
        dsk_err why = *err;
        rc = skip_to_separator(rs, any ? first : r->record_no, text, len, line_no, err);
        if (rc == DSK_READER_SKIPPED)
            *err = why;
        return rc;
    }
    if (rc != 1 && rc != 0)
        return rc;
    if (!any || is_blank(rs->acc.data, rs->acc.len))
        return 0;
    *text = rs->acc.data;
    *len = rs->acc.len;
    *line_no = first;
    return 1;
}

void dsk_record_source_init(dsk_record_source *s, const char *const *inputs, const dsk_records_spec *spec,
                            size_t max_record)
{
    static const char *const stdin_only[] = {"-", NULL};
    memset(s, 0, sizeof *s);
    s->inputs = inputs && inputs[0] ? inputs : stdin_only;
    s->spec = spec;
    s->max_record = max_record;
}

int dsk_record_source_next(dsk_record_source *s, const char **text, size_t *len, uint64_t *line_no,
                           size_t *input, dsk_err *err)
{
    for (;;) {
        if (!s->open) {
            if (!s->inputs[s->next])
                return 0;
            int rc = dsk_reader_open(&s->reader, s->inputs[s->next], s->max_record, err);
            if (rc)
                return rc;
            s->reader.skip_long = s->skip_long;
            dsk_records_init(&s->records, s->spec, &s->reader);
            s->open = 1;
            s->next++;
        }
        int rc = dsk_records_next(&s->records, text, len, line_no, err);
        if (rc == 1 || rc == DSK_READER_SKIPPED) {
            *input = s->next - 1;
            return rc;
        }
        if (rc != 0)
            return rc;
        s->bytes_before += s->reader.bytes_in;
        dsk_records_free(&s->records);
        dsk_reader_close(&s->reader);
        s->open = 0;
    }
}

uint64_t dsk_record_source_bytes(const dsk_record_source *s)
{
    return s->bytes_before + (s->open ? s->reader.bytes_in : 0);
}

void dsk_record_source_free(dsk_record_source *s)
{
    if (s->open) {
        dsk_records_free(&s->records);
        dsk_reader_close(&s->reader);
    }
    s->open = 0;
}

int dsk_record_batch_fill(dsk_record_batch *b, dsk_record_source *s, size_t max_bytes, size_t max_docs,
                          dsk_err *err)
{
    b->n = 0;
    dsk_buf_clear(&b->raw);
    while (b->raw.len < max_bytes && b->n < max_docs) {
        const char *text;
        size_t len, input;
        uint64_t line;
        int rc = dsk_record_source_next(s, &text, &len, &line, &input, err);
        if (rc == 0)
            break;
        if (rc != 1 && rc != DSK_READER_SKIPPED)
            return rc;
        if (b->n == b->cap) {
            b->cap = b->cap ? b->cap * 2 : 256;
            b->recs = dsk_xrealloc(b->recs, b->cap * sizeof *b->recs);
        }
        int skipped = rc == DSK_READER_SKIPPED;   /* no text; len: the bytes read past */
        b->recs[b->n++] = (dsk_record_ref){b->raw.len, skipped ? 0 : len, line, input, skipped ? len : 0};
        if (!skipped)
            dsk_buf_add(&b->raw, text, len);
    }
    return b->n > 0;
}

void dsk_record_batch_free(dsk_record_batch *b)
{
    dsk_buf_free(&b->raw);
    free(b->recs);
    b->recs = NULL;
    b->n = b->cap = 0;
}
