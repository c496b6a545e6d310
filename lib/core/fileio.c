#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

char *dsk_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = dsk_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* dsk_open_read as a stdio stream; NULL with err set. */
static FILE *open_stream(const char *path, int regular_only, dsk_err *err)
{
    int fd = dsk_open_read(path, regular_only, err);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        dsk_fail(err, EX_OSERR, "%s: %s", path, strerror(errno));
    }
    return f;
}

int dsk_copy_file(const char *from, const char *to, dsk_err *err)
{
    /* A regular file (a checkpoint's or dataset's tokenizer.json): a FIFO
     * there would block the open, or copy whatever a writer sent. */
    FILE *in = open_stream(from, 1, err);
    if (!in)
        return err->code;
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return dsk_fail(err, EX_CANTCREAT, "%s: %s", to, strerror(errno));
    }
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            break;
    int bad_in = ferror(in), bad_out = ferror(out) || fflush(out) != 0 || fsync(fileno(out)) != 0;
    fclose(in);
    bad_out |= fclose(out) != 0;
    if (bad_in)
        return dsk_fail(err, EX_IOERR, "%s: read error", from);
    if (bad_out)
        return dsk_fail(err, EX_IOERR, "%s: write error: %s", to, strerror(errno));
    return 0;
}

int dsk_write_file(const char *path, const dsk_buf *b, dsk_err *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return dsk_fail(err, EX_CANTCREAT, "%s: %s", path, strerror(errno));
    int bad = fwrite(b->data, 1, b->len, f) != b->len || fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    return bad ? dsk_fail(err, EX_IOERR, "%s: write error: %s", path, strerror(errno)) : 0;
}

int dsk_open_read(const char *path, int regular_only, dsk_err *err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        dsk_fail(err, errno == ENOENT || errno == EACCES ? EX_NOINPUT : EX_IOERR, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        dsk_fail(err, EX_IOERR, "%s: cannot stat: %s", path, strerror(e));
        return -1;
    }
    if (regular_only && !S_ISREG(sb.st_mode)) {
        close(fd);
        dsk_fail(err, EX_DATAERR, "%s: %s, not a regular file", path,
                 S_ISDIR(sb.st_mode) ? "a directory" : S_ISFIFO(sb.st_mode) ? "a FIFO" : "a device or socket");
        return -1;
    }
    /* Reads block again as usual: O_NONBLOCK was for the open only. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0) {
        dsk_fail(err, EX_IOERR, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int read_whole(const char *path, int regular_only, size_t max_bytes, dsk_buf *out, dsk_err *err)
{
    FILE *f = open_stream(path, regular_only, err);
    if (!f)
        return err->code;
    char chunk[65536];
    size_t n, total = 0;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        total += n;
        if (total > max_bytes) {
            fclose(f);
            return dsk_fail(err, EX_DATAERR, "%s: larger than %zu bytes", path, max_bytes);
        }
        dsk_buf_add(out, chunk, n);
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? dsk_fail(err, EX_IOERR, "%s: read error", path) : 0;
}

int dsk_read_file(const char *path, size_t max_bytes, dsk_buf *out, dsk_err *err)
{
    return read_whole(path, 0, max_bytes, out, err);
}

int dsk_read_regular_file(const char *path, size_t max_bytes, dsk_buf *out, dsk_err *err)
{
    return read_whole(path, 1, max_bytes, out, err);
}

int dsk_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* The directory of path, resolved, and its last name: "DIR/NAME", or NULL
 * when the directory does not exist. */
static char *resolved_target(const char *path)
{
    char *copy = dsk_xstrdup(path), *name = strrchr(copy, '/');
    char *dir = realpath(name ? (name == copy ? "/" : (*name = 0, copy)) : ".", NULL);
    char *out = dir ? dsk_path_join(dir, name ? name + 1 : copy) : NULL;
    free(dir);
    free(copy);
    return out;
}

int dsk_same_target(const char *a, const char *b)
{
    if (dsk_same_file(a, b))
        return 1;
    char *ra = resolved_target(a), *rb = resolved_target(b);
    int same = ra && rb && strcmp(ra, rb) == 0;
    free(ra);
    free(rb);
    return same;
}
