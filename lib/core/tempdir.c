#include "core/tempdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/outfile.h"

#define MAX_TEMP_DIRS 8

static char *_Atomic temp_dirs[MAX_TEMP_DIRS];

void dsk_tempdir_remove_all(void)
{
    for (int i = 0; i < MAX_TEMP_DIRS; i++) {
        char *p = atomic_exchange(&temp_dirs[i], NULL);
        if (p)
            dsk_remove_flat_dir(p);
    }
}

/* Raw getdents64 records: opendir/readdir allocate, which a signal handler must not. */
struct linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

void dsk_remove_flat_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (long off = 0; off < n;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
            if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
                unlinkat(fd, d->d_name, 0);
            off += d->d_reclen;
        }
    }
    close(fd);
    rmdir(path);
}

/* Whether dir/marker is the file dsk writes there, not one of the same
 * name (a Python sdist's MANIFEST): a dataset's MANIFEST says
 * "format": "dsk-dataset", a dsk-quant report has "method" and "layers". */
static int marker_is_ours(const char *dir, const char *marker)
{
    char *p = dsk_path_join(dir, marker);
    dsk_buf b = {0};
    dsk_err err = {0};
    int ours = 0;
    if (dsk_read_regular_file(p, (size_t)1 << 28, &b, &err) == 0) {
        char msg[160];
        struct json_object *o = dsk_json_parse(b.data ? b.data : "", b.len, msg, sizeof msg), *v;
        if (o && !strcmp(marker, "MANIFEST"))
            ours = json_object_object_get_ex(o, "format", &v) && json_object_is_type(v, json_type_string) &&
                   !strcmp(json_object_get_string(v), "dsk-dataset");
        else if (o && !strcmp(marker, "quant.json"))
            ours = json_object_object_get_ex(o, "method", NULL) && json_object_object_get_ex(o, "layers", &v) &&
                   json_object_is_type(v, json_type_array);
        json_object_put(o);
    }
    dsk_buf_free(&b);
    free(p);
    return ours;
}

/* A directory dsk may replace: the marker and files only, or nothing.
 * lstat: a symbolic link is not followed into what it points at. */
static int replaceable(const char *path, const char *marker)
{
    struct stat st;
    if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int n = 0, marked = 0, nested = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        marked |= !strcmp(e->d_name, marker);
        struct stat es;
        if (fstatat(dirfd(d), e->d_name, &es, AT_SYMLINK_NOFOLLOW) != 0 || S_ISDIR(es.st_mode))
            nested = 1;
    }
    closedir(d);
    return !nested && (n == 0 || (marked && marker_is_ours(path, marker)));
}

static int check_stripped(const char *path, const char *replace_marker, const char *exists_hint, dsk_err *err)
{
    /* The parent must exist: the temporary goes beside PATH. */
    char *parent = dsk_xstrdup(path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *(slash == parent ? slash + 1 : slash) = '\0';
    struct stat st;
    int rc = 0;
    int found = stat(slash ? parent : ".", &st) == 0, missing = !found && errno == ENOENT;
    if (!found || !S_ISDIR(st.st_mode))
        rc = dsk_fail(err, EX_CANTCREAT, "%s: cannot create: %s %s", path, slash ? parent : ".",
                      missing ? "does not exist" : "is not a directory");
    free(parent);
    if (rc || lstat(path, &st) != 0)
        return rc;
    if (!replace_marker)
        return dsk_fail(err, EX_CANTCREAT, "%s already exists%s%s%s", path, exists_hint ? " (" : "",
                        exists_hint ? exists_hint : "", exists_hint ? ")" : "");
    if (S_ISLNK(st.st_mode))
        return dsk_fail(err, EX_CANTCREAT, "%s is a symbolic link; not replacing it (or what it points at)", path);
    if (!replaceable(path, replace_marker))
        return dsk_fail(err, EX_CANTCREAT, "%s exists and is not %s written by dsk (no %s of dsk's, or it holds a directory); "
                        "not replacing it", path, !strcmp(replace_marker, "MANIFEST") ? "a dataset" : "an output",
                        replace_marker);
    return 0;
}

int dsk_tempdir_check(const char *path_given, const char *replace_marker, const char *exists_hint, dsk_err *err)
{
    if (!*path_given)
        return dsk_fail(err, EX_USAGE, "the output directory is an empty path");
    /* "out/" is out: lstat("link/") would follow the link, and a file
     * with a slash would read as absent. */
    char *path = dsk_xstrdup(path_given);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    int rc = check_stripped(path, replace_marker, exists_hint, err);
    free(path);
    return rc;
}

int dsk_tempdir_create(dsk_tempdir *d, const char *path_given, const char *replace_marker, const char *exists_hint,
                       dsk_err *err)
{
    memset(d, 0, sizeof *d);
    d->slot = -1;
    /* "out/" (as a shell's completion writes it) is out: the temporary
     * goes beside it, not inside a directory that may not exist. */
    size_t len = strlen(path_given);
    while (len > 1 && path_given[len - 1] == '/')
        len--;
    char *path = dsk_xstrndup(path_given, len);
    int rc = dsk_tempdir_check(path, replace_marker, exists_hint, err);
    if (rc) {
        free(path);
        return rc;
    }
    d->marker = replace_marker;
    d->hint = exists_hint;
    size_t n = len + 32;
    d->tmp_path = dsk_xmalloc(n);
    snprintf(d->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    for (int i = 0; i < MAX_TEMP_DIRS && d->slot < 0; i++) {
        char *expected = NULL;
        if (atomic_compare_exchange_strong(&temp_dirs[i], &expected, d->tmp_path))
            d->slot = i;
    }
    if (d->slot < 0) {
        free(d->tmp_path);
        d->tmp_path = NULL;
        rc = dsk_fail(err, EX_SOFTWARE, "%s: too many temporary directories", path);
        free(path);
        return rc;
    }
    int made = mkdir(d->tmp_path, 0777) == 0;
    struct stat left;
    int ours_in_use = 0;   /* another of this process's temporaries by that name */
    for (int i = 0; i < MAX_TEMP_DIRS; i++) {
        const char *other = i == d->slot ? NULL : atomic_load(&temp_dirs[i]);
        ours_in_use |= other && strcmp(other, d->tmp_path) == 0;
    }
    if (!made && errno == EEXIST && !ours_in_use && lstat(d->tmp_path, &left) == 0 && S_ISDIR(left.st_mode)) {
        /* Left by a process of our own PID that was killed: stale (a
         * container's PIDs start again from 1), so it goes, as
         * dsk-checkpoint(5) says such temporaries may. */
        dsk_remove_flat_dir(d->tmp_path);
        made = mkdir(d->tmp_path, 0777) == 0;
    }
    if (!made) {
        int e = errno;
        atomic_store(&temp_dirs[d->slot], NULL);
        rc = dsk_fail(err, EX_CANTCREAT, "%s: cannot create: %s", d->tmp_path, strerror(e));
        free(d->tmp_path);
        d->tmp_path = NULL;
        free(path);
        return rc;
    }
    static int atexit_done;
    if (!atexit_done) {
        atexit(dsk_outfile_remove_all_temps);
        atexit_done = 1;
    }
    d->path = path;
    return 0;
}

char *dsk_tempdir_file(const dsk_tempdir *d, const char *name)
{
    size_t n = strlen(d->tmp_path) + strlen(name) + 2;
    char *p = dsk_xmalloc(n);
    snprintf(p, n, "%s/%s", d->tmp_path, name);
    return p;
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}


int dsk_tempdir_commit(dsk_tempdir *d, dsk_err *err)
{
    int rc = 0;
    if (fsync_path(d->tmp_path) != 0)
        return dsk_fail(err, EX_IOERR, "%s: fsync: %s", d->tmp_path, strerror(errno));
    struct stat st;
    char *old = NULL;
    if (lstat(d->path, &st) == 0) {
        /* Checked again: something may have appeared there during the work. */
        if ((rc = dsk_tempdir_check(d->path, d->marker, d->hint, err)) != 0) {
            dsk_tempdir_abort(d);
            return rc;
        }
        old = dsk_xmalloc(strlen(d->path) + 32);
        sprintf(old, "%s.old.%ld", d->path, (long)getpid());
        if (rename(d->path, old) != 0) {
            rc = dsk_fail(err, EX_CANTCREAT, "%s: cannot move aside: %s", d->path, strerror(errno));
            free(old);
            dsk_tempdir_abort(d);
            return rc;
        }
    }
    if (rename(d->tmp_path, d->path) != 0) {
        rc = dsk_fail(err, EX_CANTCREAT, "%s: cannot rename into place: %s", d->path, strerror(errno));
        if (old)
            rename(old, d->path);
        free(old);
        dsk_tempdir_abort(d);
        return rc;
    }
    atomic_store(&temp_dirs[d->slot], NULL);
    if (old)
        dsk_remove_flat_dir(old);
    free(old);
    char *parent = dsk_xstrdup(d->path);
    char *slash = strrchr(parent, '/');
    if (slash)
        *(slash == parent ? slash + 1 : slash) = '\0';
    fsync_path(slash ? parent : ".");
    free(parent);
    free(d->tmp_path);
    free(d->path);
    d->tmp_path = d->path = NULL;
    return 0;
}

void dsk_tempdir_abort(dsk_tempdir *d)
{
    if (!d->tmp_path)
        return;
    atomic_store(&temp_dirs[d->slot], NULL);
    dsk_remove_flat_dir(d->tmp_path);
    free(d->tmp_path);
    free(d->path);
    d->tmp_path = d->path = NULL;
}
