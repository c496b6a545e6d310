#include "core/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/outfile.h"

void dsk_print_version(void)
{
    printf("%s (dsk) %s\n", dsk_progname(), DSK_VERSION);
}

static int usage_quiet;

void dsk_usage_quiet(int quiet) { usage_quiet = quiet; }

void dsk_usage_error(const char *fmt, ...)
{
    dsk_failing();
    if (!usage_quiet) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "%s: ", dsk_progname());
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry '%s --help' for more information.\n", dsk_progname());
    }
    dsk_outfile_remove_all_temps();
    exit(EX_USAGE);
}

const char *dsk_option_name(int val, const struct option *longopts)
{
    static char name[64];
    for (const struct option *o = longopts; o && o->name; o++)
        if (o->val == val) {
            snprintf(name, sizeof name, "--%s", o->name);
            return name;
        }
    snprintf(name, sizeof name, "-%c", val);
    return name;
}

void dsk_usage_bad_option(int opt, char *const *argv, const struct option *longopts)
{
    /* getopt_long leaves optopt the option's character or value (0 for a
     * long name it does not know) and optind past the argument it took,
     * except inside a cluster of short options ("-xq"), where argv[optind
     * - 1] is still the argument before. */
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    int is_long = strncmp(arg, "--", 2) == 0;
    int name_len = (int)strcspn(arg, "=");
    if (opt == ':' && is_long)
        dsk_usage_error("option '%.*s' needs an argument", name_len, arg);
    if (opt == ':')
        dsk_usage_error("option '-%c' needs an argument", optopt);
    if (optopt && is_long && arg[name_len] == '=')
        dsk_usage_error("option '%.*s' takes no argument", name_len, arg);
    if (optopt > 0 && optopt < 128)
        dsk_usage_error("unknown option '-%c'", optopt);
    /* An abbreviation of several long names reads as unknown to getopt_long. */
    char matches[256] = "";
    int n_match = 0;
    for (const struct option *o = longopts; is_long && o && o->name; o++)
        if (name_len > 2 && !strncmp(o->name, arg + 2, (size_t)name_len - 2) && ++n_match <= 4)
            snprintf(matches + strlen(matches), sizeof matches - strlen(matches), "%s--%s", n_match > 1 ? ", " : "",
                     o->name);
    if (n_match > 1)
        dsk_usage_error("option '%.*s' is ambiguous: %s%s", name_len, arg, matches, n_match > 4 ? ", ..." : "");
    dsk_usage_error("unknown option '%.*s'", name_len, arg);
}

long long dsk_parse_int(const char *option, const char *value, long long min, long long max)
{
    char *end;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno == ERANGE && end != value && !*end)   /* digits, past a long long */
        dsk_usage_error("%s: %s is out of range [%lld, %lld]", option, value, min, max);
    if (errno || end == value || *end)
        dsk_usage_error("%s: '%s' is not an integer", option, value);
    if (v < min || v > max)
        dsk_usage_error("%s: %lld is out of range [%lld, %lld]", option, v, min, max);
    return v;
}

double dsk_parse_double(const char *option, const char *value, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || isnan(v))
        dsk_usage_error("%s: '%s' is not a number", option, value);
    if (v < min || v > max)
        dsk_usage_error("%s: %s is out of range [%g, %g]", option, value, min, max);   /* as given: %g rounds */
    return v;
}

uint64_t dsk_parse_size(const char *option, const char *value)
{
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || v < 0 || isnan(v))
        dsk_usage_error("%s: '%s' is not a size", option, value);
    double mult = 1;
    switch (*end) {
    case 'k': case 'K': mult = 1024.0; end++; break;
    case 'm': case 'M': mult = 1024.0 * 1024; end++; break;
    case 'g': case 'G': mult = 1024.0 * 1024 * 1024; end++; break;
    case 't': case 'T': mult = 1024.0 * 1024 * 1024 * 1024; end++; break;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v * mult >= 1.8e19)
        dsk_usage_error("%s: '%s' is not a size (use e.g. 512M, 4G)", option, value);
    return (uint64_t)(v * mult);
}

int dsk_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > 256)
        n = 256;
    return (int)n;
}

void dsk_check_option_scope(const dsk_option_scope *table, size_t n, const unsigned char *given, unsigned where,
                            const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (given[table[i].opt] && !(table[i].where & where))
            dsk_usage_error("%s does not apply to %s", table[i].name, what);
}
