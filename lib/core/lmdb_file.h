/* A check of an LMDB file's two meta pages before LMDB maps it.
 *
 * LMDB trusts its file: a shard or dedup database cut short (an
 * interrupted copy, a full disk) or with a damaged meta page makes it
 * read past the end of its map (SIGBUS) or fail an assertion.  The
 * check costs two small reads and catches those; damage inside the
 * B-tree's pages is not caught here: dataset readers run LMDB's reads in
 * a fault region (core/fault_guard.h), and dsk-pack verify's MD5 sums
 * find the rest. */
#ifndef DSK_CORE_LMDB_FILE_H
#define DSK_CORE_LMDB_FILE_H

#include "core/err.h"

/* 0 when path is a regular file whose meta pages hold together (magic,
 * version, page size, the trees' roots within the file), or is empty and
 * allow_empty (a database LMDB may start afresh); else EX_DATAERR
 * (EX_NOINPUT when it cannot be opened) with a message that names the
 * file. */
int dsk_lmdb_file_check(const char *path, int allow_empty, dsk_err *err);

#endif
