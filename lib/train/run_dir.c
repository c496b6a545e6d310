#include "train/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"

/* "step-" and digits only: the temporaries ("step-N.tmp.PID") are not steps. */
static int step_of(const char *name, long *step)
{
    if (strncmp(name, "step-", 5) != 0 || !name[5])
        return 0;
    long v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || v > (__LONG_MAX__ - 9) / 10)
            return 0;
        v = v * 10 + (*p - '0');
    }
    /* As dsk-train names them (8 digits or more), so the name comes back from the number. */
    char canon[32];
    snprintf(canon, sizeof canon, "step-%08ld", v);
    *step = v;
    return strcmp(canon, name) == 0;
}

static int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

long *dsk_run_dir_steps(const char *out, size_t *n)
{
    *n = 0;
    DIR *d = opendir(out);
    if (!d)
        return NULL;
    long *steps = NULL;
    size_t cap = 0;
    struct dirent *e;
    long s;
    while ((e = readdir(d)))
        if (step_of(e->d_name, &s)) {
            if (*n == cap)
                steps = dsk_xrealloc(steps, (cap = cap ? 2 * cap : 16) * sizeof *steps);
            steps[(*n)++] = s;
        }
    closedir(d);
    /* By number: 9-digit steps sort after 8-digit ones. */
    if (*n)
        qsort(steps, *n, sizeof *steps, by_value);
    return steps;
}

int dsk_run_dir_check(const char *out, long resumed_step, dsk_err *err)
{
    struct stat sb;
    if (stat(out, &sb) != 0)
        return errno == ENOENT ? 0 : dsk_fail(err, EX_CANTCREAT, "%s: %s", out, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return dsk_fail(err, EX_CANTCREAT, "%s: not a directory: --out names the run's directory", out);
    size_t n;
    long *steps = dsk_run_dir_steps(out, &n);
    char *latest = dsk_path_join(out, "latest");
    int has_latest = lstat(latest, &sb) == 0;
    free(latest);
    int rc = 0;
    if (resumed_step < 0 && (has_latest || n))
        rc = dsk_fail(err, EX_CANTCREAT, "%s holds a run already: continue it with --resume, or choose another --out",
                      out);
    else if (resumed_step >= 0 && n && steps[n - 1] > resumed_step)
        rc = dsk_fail(err, EX_CANTCREAT,
                      "%s/step-%08ld is past the step resumed from (%ld): it belongs to a later state of the run, "
                      "and this run would mix its checkpoints with it; move the later steps away first",
                      out, steps[n - 1], resumed_step);
    free(steps);
    return rc;
}

int dsk_run_lock_take(dsk_run_lock *l, const char *out, dsk_err *err)
{
    l->fd = -1;
    l->created = mkdir(out, 0777) == 0;
    l->path = dsk_xstrdup(out);
    if (!l->created && errno != EEXIST)
        return dsk_fail(err, EX_CANTCREAT, "%s: %s", out, strerror(errno));
    l->fd = open(out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->fd < 0)
        return dsk_fail(err, EX_CANTCREAT, "%s: %s", out, strerror(errno));
    if (flock(l->fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(l->fd);
        l->fd = -1;
        l->created = 0;
        return e == EWOULDBLOCK ? dsk_fail(err, EX_CANTCREAT, "%s: another dsk-train is writing to it", out)
                                : dsk_fail(err, EX_CANTCREAT, "%s: cannot lock: %s", out, strerror(e));
    }
    return 0;
}

void dsk_run_lock_release(dsk_run_lock *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->created && l->path)
        rmdir(l->path);   /* only when the run left it empty */
    free(l->path);
    memset(l, 0, sizeof *l);
    l->fd = -1;
}
