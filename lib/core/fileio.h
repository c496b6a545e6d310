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
/* from must be a regular file (EX_DATAERR otherwise, as dsk_open_read). */
int dsk_copy_file(const char *from, const char *to, dsk_err *err);
int dsk_write_file(const char *path, const dsk_buf *b, dsk_err *err);
/* Appends the file to out; files over max_bytes are EX_DATAERR.  A FIFO
 * nobody writes to reads as empty rather than blocking the open. */
int dsk_read_file(const char *path, size_t max_bytes, dsk_buf *out, dsk_err *err);
/* The same for a file that must be a regular one (a dataset's or a
 * checkpoint's): anything else is EX_DATAERR, as in dsk_open_read. */
int dsk_read_regular_file(const char *path, size_t max_bytes, dsk_buf *out, dsk_err *err);
/* A descriptor to read path from, or -1 with err set (EX_NOINPUT when it
 * is missing or unreadable).  The open never blocks: a FIFO without a
 * writer then reads as empty.  With regular_only, anything but a regular
 * file (a directory, a FIFO, a device) is EX_DATAERR: the files of a
 * dataset or checkpoint. */
int dsk_open_read(const char *path, int regular_only, dsk_err *err);
/* Whether a and b name one existing file (links and other spellings
 * included): an output that would replace one of the command's inputs. */
int dsk_same_file(const char *a, const char *b);
/* Whether paths a and b would name one file once written: one existing
 * file, or the same name in one directory (links to it followed). */
int dsk_same_target(const char *a, const char *b);

#endif
