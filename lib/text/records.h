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
    uint64_t nul_newlines;  /* NUL mode: the newlines of the records before, for line numbers */
} dsk_records;

void dsk_records_init(dsk_records *rs, const dsk_records_spec *spec, dsk_reader *reader);
void dsk_records_free(dsk_records *rs);
/* Returns 1 with the next record and the line it starts on, 0 at the end,
 * or an error code.  In JSONL mode a record is one non-blank line.  With
 * the reader's skip_long, a record over its max_record is read past and
 * DSK_READER_SKIPPED returned, with its line, *text NULL, *len the bytes
 * read past, and err saying why. */
int dsk_records_next(dsk_records *rs, const char **text, size_t *len, uint64_t *line_no, dsk_err *err);

/* Records from a list of inputs in turn (NULL or an empty list: stdin),
 * for the tools that read many files. */
typedef struct dsk_record_source {
    const char *const *inputs;
    size_t next;             /* index of the next input to open */
    const dsk_records_spec *spec;
    size_t max_record;
    dsk_reader reader;
    dsk_records records;
    int open;
    uint64_t bytes_before;   /* input bytes of the inputs already finished */
    int skip_long;           /* records over max_record: DSK_READER_SKIPPED, not an error (set after init) */
} dsk_record_source;

void dsk_record_source_init(dsk_record_source *s, const char *const *inputs, const dsk_records_spec *spec,
                            size_t max_record);
/* Returns 1 with the next record, the line it starts on and the index of
 * its input; 0 after the last input; or an error code. */
int dsk_record_source_next(dsk_record_source *s, const char **text, size_t *len, uint64_t *line_no,
                           size_t *input, dsk_err *err);
/* Input bytes read so far, for progress. */
uint64_t dsk_record_source_bytes(const dsk_record_source *s);
void dsk_record_source_free(dsk_record_source *s);

/* A batch of records copied out of a source, for the thread pool. */
typedef struct dsk_record_ref {
    size_t off, len;  /* in batch.raw */
    uint64_t line_no;
    size_t input;     /* index in the source's inputs */
    size_t too_long;  /* a record over max_record, read past (skip_long): its bytes (no text); else 0 */
} dsk_record_ref;

typedef struct dsk_record_batch {
    dsk_buf raw;
    dsk_record_ref *recs;
    size_t n, cap;
} dsk_record_batch;

/* Refills b with records until it holds max_docs or about max_bytes;
 * returns 1 if it holds any, 0 at the end of the input, or an error. */
int dsk_record_batch_fill(dsk_record_batch *b, dsk_record_source *s, size_t max_bytes, size_t max_docs,
                          dsk_err *err);
void dsk_record_batch_free(dsk_record_batch *b);

#endif
