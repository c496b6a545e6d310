#include "core/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/outfile.h"

static const char *progname = "dsk";

/* At exit, standard output flushed and checked, as coreutils' close_stdout
 * does: a report that could not be written (a full disk, /dev/full) is an
 * I/O error, not a silent success.  Not when the tool is already failing
 * (dsk_die and usage errors: their status and message stand), and not for
 * a closed pipe, left to SIGPIPE's quiet end (dsk_signals_init) or to
 * the tool that ignores it. */
static int failing;

void dsk_failing(void) { failing = 1; }

static void check_stdout_at_exit(void)
{
    if (failing)
        return;
    errno = 0;
    int flushed = fflush(stdout) == 0;
    int e = errno;
    if (flushed && !ferror(stdout))
        return;
    if (e == EPIPE)
        return;
    if (e)   /* an earlier failure (ferror) has no errno left to tell */
        fprintf(stderr, "%s: standard output: write error: %s\n", progname, strerror(e));
    else
        fprintf(stderr, "%s: standard output: write error\n", progname);
    dsk_outfile_remove_all_temps();
    _exit(EX_IOERR);
}

void dsk_set_progname(const char *argv0)
{
    static int checking;
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    if (argv0)
        progname = slash ? slash + 1 : argv0;
    if (!checking && atexit(check_stdout_at_exit) == 0)
        checking = 1;
}

const char *dsk_progname(void) { return progname; }

int dsk_fail(dsk_err *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

static void vreport(const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void dsk_die(int code, const char *fmt, ...)
{
    failing = 1;
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
    dsk_outfile_remove_all_temps();
    exit(code);
}

void dsk_die_err(const dsk_err *err)
{
    dsk_die(err->code ? err->code : EX_SOFTWARE, "%s", err->msg);
}

void dsk_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(fmt, ap);
    va_end(ap);
}

static void *check_alloc(void *p, size_t n)
{
    if (!p && n)
        dsk_die(EX_OSERR, "out of memory allocating %zu bytes", n);
    return p;
}

void *dsk_xmalloc(size_t n) { return check_alloc(malloc(n ? n : 1), n); }
void *dsk_xcalloc(size_t c, size_t s) { return check_alloc(calloc(c ? c : 1, s ? s : 1), c * s); }
void *dsk_xrealloc(void *p, size_t n) { return check_alloc(realloc(p, n ? n : 1), n); }
char *dsk_xstrdup(const char *s) { return dsk_xstrndup(s, strlen(s)); }

char *dsk_xstrndup(const char *s, size_t n)
{
    char *d = dsk_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}
