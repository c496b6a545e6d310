#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"

char *dsk_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = dsk_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int dsk_copy_file(const char *from, const char *to, dsk_err *err)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return dsk_fail(err, EX_NOINPUT, "%s: %s", from, strerror(errno));
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

int dsk_read_file(const char *path, size_t max_bytes, dsk_buf *out, dsk_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dsk_fail(err, EX_NOINPUT, "%s: %s", path, strerror(errno));
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
