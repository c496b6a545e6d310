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

/* A directory dsk may replace: one with a MANIFEST, or an empty one. */
static int is_dataset_or_empty(const char *path, const struct stat *st)
{
    if (!S_ISDIR(st->st_mode))
        return 0;
    char *m = dsk_xmalloc(strlen(path) + 16);
    sprintf(m, "%s/MANIFEST", path);
    int ok = access(m, F_OK) == 0;
    free(m);
    DIR *d = ok ? NULL : opendir(path);
    if (d) {
        struct dirent *e;
        ok = 1;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, ".."))
                ok = 0;
        closedir(d);
    }
    return ok;
}

int dsk_tempdir_create(dsk_tempdir *d, const char *path_given, int replace, dsk_err *err)
{
    memset(d, 0, sizeof *d);
    d->slot = -1;
    /* "out/" (as a shell's completion writes it) is out: the temporary
     * goes beside it, not inside a directory that may not exist. */
    size_t len = strlen(path_given);
    while (len > 1 && path_given[len - 1] == '/')
        len--;
    char *path = dsk_xstrndup(path_given, len);
    struct stat st;
    int rc = 0;
    if (stat(path, &st) == 0 && !replace)
        rc = dsk_fail(err, EX_CANTCREAT, "%s already exists (--force replaces it)", path);
    else if (stat(path, &st) == 0 && !is_dataset_or_empty(path, &st))
        rc = dsk_fail(err, EX_CANTCREAT, "%s exists and is not a dataset; not replacing it", path);
    if (rc) {
        free(path);
        return rc;
    }
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
    if (mkdir(d->tmp_path, 0777) != 0) {
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
    if (stat(d->path, &st) == 0) {  /* replacing (--force): only a dataset, never another directory */
        if (!is_dataset_or_empty(d->path, &st)) {
            rc = dsk_fail(err, EX_CANTCREAT, "%s exists and is not a dataset; not replacing it", d->path);
            dsk_tempdir_abort(d);
            return rc;
        }
        if (access(d->path, F_OK) == 0) {
            old = dsk_xmalloc(strlen(d->path) + 32);
            sprintf(old, "%s.old.%ld", d->path, (long)getpid());
            if (rename(d->path, old) != 0) {
                rc = dsk_fail(err, EX_CANTCREAT, "%s: cannot move aside: %s", d->path, strerror(errno));
                free(old);
                dsk_tempdir_abort(d);
                return rc;
            }
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
