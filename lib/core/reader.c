#include "core/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define CHUNK (1u << 20)

int dsk_reader_open(dsk_reader *r, const char *path, size_t max_record, dsk_err *err)
{
    memset(r, 0, sizeof *r);
    r->max_record = max_record;
    if (!path || strcmp(path, "-") == 0) {
        r->fd = STDIN_FILENO;
        r->name = dsk_xstrdup("(stdin)");
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0)
            return dsk_fail(err, errno == ENOENT || errno == EACCES ? EX_NOINPUT : EX_IOERR,
                            "%s: cannot open: %s", path, strerror(errno));
        struct stat st;
        if (fstat(r->fd, &st) == 0 && S_ISDIR(st.st_mode)) {
            close(r->fd);
            return dsk_fail(err, EX_NOINPUT, "%s: is a directory", path);
        }
        if (S_ISREG(st.st_mode))
            r->file_size = (uint64_t)st.st_size;
        r->name = dsk_xstrdup(path);
    }
    r->cap = CHUNK;
    r->buf = dsk_xmalloc(r->cap);
    return 0;
}

int dsk_reader_open_mem(dsk_reader *r, const char *name, const void *data, size_t n,
                        size_t max_record, dsk_err *err)
{
    (void)err;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    r->max_record = max_record;
    r->name = dsk_xstrdup(name);
    r->cap = n + 1;
    r->buf = dsk_xmalloc(r->cap);
    memcpy(r->buf, data, n);
    r->end = n;
    r->eof = 1;
    r->file_size = n;
    r->bytes_in = n;
    return 0;
}

void dsk_reader_close(dsk_reader *r)
{
    if (r->fd > STDIN_FILENO)
        close(r->fd);
    if (r->zstd)
        ZSTD_freeDCtx(r->zstd);
    free(r->zbuf);
    free(r->buf);
    free(r->name);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static ssize_t read_raw(dsk_reader *r, char *dst, size_t n, dsk_err *err)
{
    for (;;) {
        ssize_t got = read(r->fd, dst, n);
        if (got >= 0) {
            r->bytes_in += (uint64_t)got;
            return got;
        }
        if (errno != EINTR) {
            dsk_fail(err, EX_IOERR, "%s: read error: %s", r->name, strerror(errno));
            return -1;
        }
    }
}

/* Appends decompressed bytes to buf[end..cap).  Returns bytes added, 0 at
 * end of input, -1 on error.  The first read decides whether the input is
 * zstd: compressed input is recognised by its magic number, or by a
 * skippable frame's (pzstd and zstd --patch-from write one first). */
static ssize_t fill(dsk_reader *r, dsk_err *err)
{
    size_t room = r->cap - r->end;
    if (r->bytes_in == 0 && !r->zstd) {
        ssize_t got = read_raw(r, r->buf + r->end, room, err);
        const uint8_t *m = (const uint8_t *)r->buf + r->end;
        int frame = got >= 4 && m[0] == 0x28 && m[1] == 0xB5 && m[2] == 0x2F && m[3] == 0xFD;
        int skippable = got >= 4 && (m[0] & 0xF0) == 0x50 && m[1] == 0x2A && m[2] == 0x4D && m[3] == 0x18;
        if (!frame && !skippable)
            return got;
        /* compressed: move what was read into the compressed-side buffer */
        r->zstd = ZSTD_createDCtx();
        r->zcap = ZSTD_DStreamInSize() > CHUNK ? ZSTD_DStreamInSize() : CHUNK;
        r->zbuf = dsk_xmalloc(r->zcap);
        memcpy(r->zbuf, r->buf + r->end, (size_t)got);
        r->zstart = 0;
        r->zend = (size_t)got;
        r->zframe_open = 1;
    }
    if (!r->zstd)
        return read_raw(r, r->buf + r->end, room, err);
    for (;;) {
        if (r->zstart == r->zend) {
            ssize_t got = read_raw(r, r->zbuf, r->zcap, err);
            if (got < 0)
                return -1;
            if (got == 0 && r->zframe_open) {
                /* The input's end inside a frame: what the frame still
                 * holds for the output, else a cut (what came out so far
                 * may end on a whole record, which must not pass for the
                 * whole input). */
                ZSTD_inBuffer none = {r->zbuf, 0, 0};
                ZSTD_outBuffer out = {r->buf + r->end, room, 0};
                size_t rc = ZSTD_decompressStream(r->zstd, &out, &none);
                if (!ZSTD_isError(rc) && out.pos > 0) {
                    r->zframe_open = rc != 0;
                    return (ssize_t)out.pos;
                }
                dsk_fail(err, EX_DATAERR, "%s: zstd: truncated (the input ends inside a frame)", r->name);
                return -1;
            }
            if (got == 0)
                return 0;
            r->zstart = 0;
            r->zend = (size_t)got;
        }
        ZSTD_inBuffer in = {r->zbuf, r->zend, r->zstart};
        ZSTD_outBuffer out = {r->buf + r->end, room, 0};
        size_t rc = ZSTD_decompressStream(r->zstd, &out, &in);
        r->zstart = in.pos;
        r->zframe_open = rc != 0;   /* 0: a frame ended and was flushed whole */
        if (ZSTD_isError(rc)) {
            dsk_fail(err, EX_DATAERR, "%s: zstd: %s", r->name, ZSTD_getErrorName(rc));
            return -1;
        }
        if (out.pos > 0)
            return (ssize_t)out.pos;
    }
}

/* "FILE:LINE:" for lines; a NUL-terminated record is named by its number. */
static int too_long(const dsk_reader *r, int delim, uint64_t record_no, dsk_err *err)
{
    if (delim == '\n')
        return dsk_fail(err, EX_DATAERR, "%s:%llu: record longer than the %zu-byte limit", r->name,
                        (unsigned long long)record_no, r->max_record);
    return dsk_fail(err, EX_DATAERR, "%s: record %llu is longer than the %zu-byte limit", r->name,
                    (unsigned long long)record_no, r->max_record);
}

/* A record read past (skip_long): its bytes and newlines so far. */
static void count_skipped(dsk_reader *r, const char *p, size_t n)
{
    r->skipped_bytes += n;
    for (const char *end = p + n; (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        r->skipped_newlines++;
}

int dsk_reader_next(dsk_reader *r, int delim, const char **rec, size_t *len, dsk_err *err)
{
    size_t scanned = r->start;
    if (!r->skipping)
        r->skipped_bytes = r->skipped_newlines = 0;
    for (;;) {
        char *hit = memchr(r->buf + scanned, delim, r->end - scanned);
        if (hit) {
            *rec = r->buf + r->start;
            *len = (size_t)(hit - (r->buf + r->start));
            r->start = (size_t)(hit - r->buf) + 1;
            r->record_no++;
            if (r->skipping || *len > r->max_record) {   /* the end of a record too long */
                r->skipping = 0;
                count_skipped(r, *rec, *len);
                int rc = too_long(r, delim, r->record_no, err);
                return r->skip_long ? DSK_READER_SKIPPED : rc;
            }
            return 1;
        }
        scanned = r->end;
        if (r->end - r->start > r->max_record) {
            if (!r->skip_long)
                return too_long(r, delim, r->record_no + 1, err);
            r->skipping = 1;   /* drop what is read of it, and read on to its end */
            count_skipped(r, r->buf + r->start, r->end - r->start);
            r->start = r->end = scanned = 0;
        }
        if (r->eof) {
            if (r->skipping) {   /* the input ended inside it */
                count_skipped(r, r->buf + r->start, r->end - r->start);
                r->start = r->end;
                r->skipping = 0;
                r->record_no++;
                too_long(r, delim, r->record_no, err);
                return DSK_READER_SKIPPED;
            }
            if (r->start == r->end)
                return 0;
            *rec = r->buf + r->start;  /* last record without a delimiter */
            *len = r->end - r->start;
            r->start = r->end;
            r->record_no++;
            return 1;
        }
        /* make room: slide the partial record down, then grow if still full */
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            scanned -= r->start;
            r->start = 0;
        }
        if (r->cap - r->end < CHUNK / 2) {
            r->cap *= 2;
            r->buf = dsk_xrealloc(r->buf, r->cap);
        }
        ssize_t got = fill(r, err);
        if (got < 0)
            return err ? err->code : EX_IOERR;
        if (got == 0)
            r->eof = 1;
        r->end += (size_t)got;
    }
}
