/* Plain text split into records: one per line, per blank-line-separated
 * paragraph, per NUL-terminated chunk, or between separator lines that
 * match a regex (e.g. "^%$" for fortune files).  Records that are empty or
 * all whitespace are separators, not documents, and are skipped. */
#ifndef DSK_TEXT_RECORDS_H
#define DSK_TEXT_RECORDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/reader.h"

typedef enum { DSK_REC_JSONL, DSK_REC_LINES, DSK_REC_PARAGRAPHS, DSK_REC_NUL, DSK_REC_REGEX } dsk_records_mode;

typedef struct dsk_records_spec {
    dsk_records_mode mode;
    void *separator;  /* pcre2_code_8 for DSK_REC_REGEX */
} dsk_records_spec;

/* Parses "lines", "paragraphs", "nul", "regex:PATTERN" (or "jsonl"). */
int dsk_records_spec_parse(dsk_records_spec *spec, const char *arg, dsk_err *err);
void dsk_records_spec_free(dsk_records_spec *spec);

typedef struct dsk_records {
    const dsk_records_spec *spec;
    dsk_reader *reader;
    void *match_data;
    dsk_buf acc;
} dsk_records;

void dsk_records_init(dsk_records *rs, const dsk_records_spec *spec, dsk_reader *reader);
void dsk_records_free(dsk_records *rs);
/* Returns 1 with the next record and the line it starts on, 0 at the end,
 * or an error code.  In JSONL mode a record is one non-blank line. */
int dsk_records_next(dsk_records *rs, const char **text, size_t *len, uint64_t *line_no, dsk_err *err);

#endif
