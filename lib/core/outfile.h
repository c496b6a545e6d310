/* Output files that appear whole or not at all.
 *
 * dsk_outfile_open() writes to "PATH.tmp.PID.N" beside the target; commit
 * flushes, fsyncs and renames it over PATH.  Every open temporary is
 * registered so that dsk_die(), a fatal signal (SIGINT, SIGTERM, SIGHUP,
 * SIGPIPE) or exit without commit removes it: an interrupted tool never
 * leaves a file that looks complete.  A NULL path or "-" means stdout;
 * an existing device or pipe (/dev/null, a FIFO) is written in place, and
 * so is one of the process's descriptors named as a file (/dev/stdout,
 * /dev/stderr, /dev/fd/N, /proc/self/fd/N, or a link to one), through
 * that descriptor.  A symbolic link to a file: the file is replaced, the
 * link kept. */
#ifndef DSK_CORE_OUTFILE_H
#define DSK_CORE_OUTFILE_H

#include <stdio.h>

#include "core/err.h"

typedef struct dsk_outfile {
    FILE *fp;
    char *path;      /* target path, NULL for stdout */
    char *tmp_path;  /* temporary being written, NULL for stdout and a device or pipe */
    int slot;        /* index in the temporaries registry, -1 if none */
} dsk_outfile;

int dsk_outfile_open(dsk_outfile *f, const char *path, dsk_err *err);

/* The descriptor a path names when it is one of this process's open files
 * by number (/dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N, or a
 * link to one); -1 when it is not. */
int dsk_named_fd(const char *path);
/* fopen for a log written as it goes (not atomically): a descriptor named
 * as a file is written through that descriptor, as stdout is (reopening
 * /dev/stdout with "w" would empty a file the shell opened for
 * appending); anything else is fopen(path, mode), and when appending to
 * a file whose last line has no newline, that line is ended first.  NULL
 * with errno set. */
FILE *dsk_fopen_log(const char *path, const char *mode);
int dsk_outfile_commit(dsk_outfile *f, dsk_err *err);
void dsk_outfile_abort(dsk_outfile *f);

/* Unlink every registered temporary; async-signal-safe. */
void dsk_outfile_remove_all_temps(void);

/* Install handlers for SIGINT, SIGTERM, SIGHUP, SIGPIPE and the other
 * signals that end a process by default (SIGQUIT, SIGUSR1, SIGUSR2,
 * SIGALRM, SIGXCPU, SIGIO, ...; not the real-time ones, which libraries
 * may use) that remove the temporaries
 * and then die of the same signal, so a closed pipe downstream ends the
 * tool quietly and the shell sees the usual status.  A signal the process
 * was started with ignored (nohup) stays ignored. */
void dsk_signals_init(void);
/* The process was started with sig ignored (nohup's SIGHUP, the SIGINT of
 * a script's background job): dsk(7) says it stays so. */
int dsk_signal_ignored(int sig);

#endif
