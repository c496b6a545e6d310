/* Errors, exit codes and allocation for every dsk tool.
 *
 * Library functions never exit: they fill a dsk_err and return its code
 * (a <sysexits.h> value, 0 for success).  Tools turn that into a message
 * on stderr and an exit status with dsk_die_err().  Allocation failure is
 * the one exception: the x*alloc helpers exit with EX_OSERR, as git does. */
#ifndef DSK_CORE_ERR_H
#define DSK_CORE_ERR_H

#include <stddef.h>
#include <sysexits.h>

typedef struct dsk_err {
    int code;        /* a sysexits code, 0 when no error */
    char msg[1024];  /* "FILE:LINE: what is wrong", without the program name */
} dsk_err;

/* Fills err and returns code, so callers can write `return dsk_fail(...)`. */
int dsk_fail(dsk_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void dsk_set_progname(const char *argv0);
const char *dsk_progname(void);

/* The process is ending on an error it has reported: the exit-time check
 * of standard output (a write error is 74) leaves the status alone. */
void dsk_failing(void);
/* Print "prog: message" on stderr, remove temporary files, exit(code). */
_Noreturn void dsk_die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
_Noreturn void dsk_die_err(const dsk_err *err);
void dsk_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void *dsk_xmalloc(size_t n);
void *dsk_xcalloc(size_t count, size_t size);
void *dsk_xrealloc(void *p, size_t n);
char *dsk_xstrdup(const char *s);
char *dsk_xstrndup(const char *s, size_t n);

#endif
