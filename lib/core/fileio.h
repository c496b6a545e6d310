/* Whole small files: copy, write and read, each fsynced or checked.
 * For files that must appear atomically, write them into a dsk_tempdir
 * or through dsk_outfile. */
#ifndef DSK_CORE_FILEIO_H
#define DSK_CORE_FILEIO_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* "dir/name", for the caller to free. */
char *dsk_path_join(const char *dir, const char *name);
int dsk_copy_file(const char *from, const char *to, dsk_err *err);
int dsk_write_file(const char *path, const dsk_buf *b, dsk_err *err);
/* Appends the file to out; files over max_bytes are EX_DATAERR. */
int dsk_read_file(const char *path, size_t max_bytes, dsk_buf *out, dsk_err *err);

#endif
