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
#include "train/checkpoint.h"

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

/* OUT is a checkpoint's step directory (or latest): it has config.json. */
static int is_step_dir(const char *out, dsk_err *err)
{
    struct stat sb;
    char *cfg = dsk_path_join(out, "config.json");
    int step_dir = stat(cfg, &sb) == 0;
    free(cfg);
    return step_dir ? dsk_fail(err, EX_CANTCREAT, "%s is a checkpoint (a step directory, or latest): --out names "
                               "the run's directory, the one that holds latest and the step directories", out)
                    : 0;
}

int dsk_run_dir_check(const char *out, long resumed_step, dsk_err *err)
{
    struct stat sb;
    if (stat(out, &sb) != 0)
        return errno == ENOENT ? 0 : dsk_fail(err, EX_CANTCREAT, "%s: %s", out, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return dsk_fail(err, EX_CANTCREAT, "%s: not a directory: --out names the run's directory", out);
    if (is_step_dir(out, err))
        return err->code;
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
                      "%s/step-%08ld is past the step resumed from (%ld), which latest names, and this run would mix "
                      "its checkpoints with it: if a run stopped while saving it, point latest at it (ln -sfn "
                      "step-%08ld %s/latest); if latest was moved back from it, move the later steps away",
                      out, steps[n - 1], resumed_step, steps[n - 1], out);
    free(steps);
    return rc;
}

char *dsk_run_dir_resume_from(const char *out, int quiet, dsk_err *err)
{
    if (is_step_dir(out, err))
        return NULL;
    struct stat sb;
    char *latest = dsk_path_join(out, "latest");
    int latest_dir = lstat(latest, &sb) == 0 && S_ISDIR(sb.st_mode);
    free(latest);
    if (latest_dir) {
        dsk_fail(err, EX_CANTCREAT, "%s/latest is a directory, not a link to a step directory (a copied run?): "
                 "the run could not move it on at its next save; make it the step directory it is, and latest a "
                 "link to it (mv %s/latest %s/step-N && ln -s step-N %s/latest, N its state.json's step in 8 digits)",
                 out, out, out, out);
        return NULL;
    }
    dsk_err resolve_err = {0};
    char *from = dsk_checkpoint_resolve(out, &resolve_err);
    size_t n;
    long *steps = dsk_run_dir_steps(out, &n);
    if (!from && n) {
        /* No latest yet (or it names nothing): a run stopped between
         * committing its first step directory and making latest, which
         * the next save makes.  A latest that names a step is kept to,
         * even with newer steps beside it (dsk_run_dir_check). */
        char name[32];
        snprintf(name, sizeof name, "step-%08ld", steps[n - 1]);
        char *newer = dsk_path_join(out, name), *cfg = dsk_path_join(newer, "config.json");
        if (stat(cfg, &sb) == 0) {
            if (!quiet)
                fprintf(stderr, "dsk-train: %s: latest is missing or names no step directory; going on from %s, "
                        "its newest step\n", out, name);
            from = newer;
        } else {
            free(newer);
        }
        free(cfg);
    }
    free(steps);
    if (!from)
        *err = resolve_err;
    return from;
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
