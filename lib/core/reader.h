/* Buffered input split into records by a delimiter byte ('\n' or '\0').
 *
 * Reads a file or stdin ("-"); zstd-compressed input (by magic number) is
 * decompressed on the fly.  A record longer than max_record bytes is a data
 * error naming the file and line, never an unbounded allocation. */
#ifndef DSK_CORE_READER_H
#define DSK_CORE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

typedef struct dsk_reader {
    int fd;
    char *name;          /* for messages: the path, or "(stdin)" */
    char *buf;
    size_t cap, start, end;
    int eof;
    uint64_t record_no;  /* 1-based number of the record last returned */
    uint64_t bytes_in;   /* raw (compressed) bytes read from the file */
    uint64_t file_size;  /* 0 when unknown */
    size_t max_record;
    void *zstd;          /* ZSTD_DCtx when the input is compressed */
    char *zbuf;
    size_t zcap, zstart, zend;
    int zframe_open;          /* a zstd frame has begun and not ended: its end is due before the input's */
    int skip_long;            /* a record over max_record is read past: DSK_READER_SKIPPED, not an error */
    int skipping;             /* inside such a record, its delimiter not yet seen */
    uint64_t skipped_bytes, skipped_newlines;   /* of the record last read past */
} dsk_reader;

/* dsk_reader_next with skip_long set: a record over max_record was read
 * past (record_no is its number; err says what it was). */
enum { DSK_READER_SKIPPED = 2 };

int dsk_reader_open(dsk_reader *r, const char *path, size_t max_record, dsk_err *err);
/* Returns 1 and the record (without its delimiter, valid until the next
 * call), 0 at end of input, or an error code. */
int dsk_reader_next(dsk_reader *r, int delim, const char **rec, size_t *len, dsk_err *err);
void dsk_reader_close(dsk_reader *r);

/* Reader over a memory block (tests, fuzzers). */
int dsk_reader_open_mem(dsk_reader *r, const char *name, const void *data, size_t n,
                        size_t max_record, dsk_err *err);

#endif
