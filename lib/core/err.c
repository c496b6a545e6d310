#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/outfile.h"

static const char *progname = "dsk";

void dsk_set_progname(const char *argv0)
{
    const char *slash = argv0 ? strrchr(argv0, '/') : NULL;
    if (argv0)
        progname = slash ? slash + 1 : argv0;
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
