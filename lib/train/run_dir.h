/* A training run's output directory (OUT of dsk-train --out): the step
 * directories it holds, the checks before a run writes into it, and the
 * lock that keeps two runs from writing into it at once.
 *
 * A run owns OUT: a new run refuses a directory that already holds step
 * directories or `latest`; a resumed one refuses step directories past
 * the step it resumes from (they belong to a later state of the run, and
 * --keep would mix them with its own).  Both are checked before any
 * training, not at the first save. */
#ifndef DSK_TRAIN_RUN_DIR_H
#define DSK_TRAIN_RUN_DIR_H

#include <stddef.h>

#include "core/err.h"

/* The step numbers of OUT's step directories ("step-" and digits), in
 * increasing order, for the caller to free; NULL and 0 when none or OUT
 * is missing. */
long *dsk_run_dir_steps(const char *out, size_t *n);

/* The checks above; resumed_step < 0 for a new run.  EX_CANTCREAT, also
 * when OUT is itself a checkpoint (a step directory, or latest): a run
 * written there would nest in it. */
int dsk_run_dir_check(const char *out, long resumed_step, dsk_err *err);

/* The step directory --resume -o OUT goes on from, for the caller to
 * free: the one latest names, or when there is no latest (a run stopped
 * between committing its first step directory and making latest) the
 * newest step directory, which was renamed into place whole; the next
 * save makes latest.  NULL and EX_CANTCREAT when OUT is itself a
 * checkpoint or its latest is a directory, not a link (a copied run: the
 * next save could not move it); EX_NOINPUT when OUT holds no
 * checkpoint. */
char *dsk_run_dir_resume_from(const char *out, int quiet, dsk_err *err);

typedef struct dsk_run_lock {
    int fd;        /* OUT opened and flock()ed; -1 when not held */
    int created;   /* OUT was made by the lock: removed again if left empty */
    char *path;
} dsk_run_lock;

/* Creates OUT if needed and locks it (flock on the directory itself, so
 * nothing is left in it).  Another process holding it is EX_CANTCREAT. */
int dsk_run_lock_take(dsk_run_lock *l, const char *out, dsk_err *err);
void dsk_run_lock_release(dsk_run_lock *l);

#endif
