/* Output directories that appear whole or not at all, the directory
 * counterpart of outfile.h.
 *
 * dsk_tempdir_create() makes "PATH.tmp.PID" beside the target and
 * registers it: dsk_die(), a fatal signal or exit without commit removes
 * it and the files in it (it must stay flat: no subdirectories).  Commit
 * fsyncs it and renames it to PATH.  With a replace marker (the file that
 * marks a directory dsk wrote: "MANIFEST" for a dataset, "quant.json" for
 * a dsk-quant output), an existing PATH that is such a directory (or an
 * empty one) is moved aside first and removed after; anything else there
 * is refused, before the work and again at commit. */
#ifndef DSK_CORE_TEMPDIR_H
#define DSK_CORE_TEMPDIR_H

#include "core/err.h"

typedef struct dsk_tempdir {
    char *path;      /* the target */
    char *tmp_path;  /* the directory being filled */
    int slot;
    const char *marker;  /* what marks a directory it may replace; NULL: none */
    const char *hint;    /* the exists_hint, for the check at commit */
} dsk_tempdir;

/* Whether PATH can be written now: not empty, its parent a directory,
 * and PATH absent or (with replace_marker) a directory dsk may replace:
 * not a symbolic link, holding the marker (or nothing), and no
 * subdirectory.  The marker must be dsk's own ("MANIFEST" a dataset's,
 * "format": "dsk-dataset"; "quant.json" a dsk-quant report), not a file of
 * the same name.  EX_USAGE for an empty path, else EX_CANTCREAT; a tool
 * calls it before its work, so that a refusal does not waste it.
 * exists_hint, when not NULL, follows the "already exists" refusal in
 * parentheses: how the user replaces it ("--force replaces a dataset"). */
int dsk_tempdir_check(const char *path, const char *replace_marker, const char *exists_hint, dsk_err *err);
int dsk_tempdir_create(dsk_tempdir *d, const char *path, const char *replace_marker, const char *exists_hint,
                       dsk_err *err);
/* tmp_path/name, for the caller to free. */
char *dsk_tempdir_file(const dsk_tempdir *d, const char *name);
int dsk_tempdir_commit(dsk_tempdir *d, dsk_err *err);
void dsk_tempdir_abort(dsk_tempdir *d);
/* Removes every registered temporary directory; dsk_outfile_remove_all_temps()
 * calls it, so dsk_die(), the signal handlers and exit clean up directories too. */
void dsk_tempdir_remove_all(void);
/* Removes the files of a flat directory and the directory; async-signal-safe. */
void dsk_remove_flat_dir(const char *path);

#endif
