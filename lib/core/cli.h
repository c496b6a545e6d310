/* Pieces of command-line handling every tool shares: one --version format,
 * strict number and size parsing (a bad value is a usage error naming the
 * option), and the thread count default. */
#ifndef DSK_CORE_CLI_H
#define DSK_CORE_CLI_H

#include <stddef.h>
#include <stdint.h>

#define DSK_VERSION "0.1.0"

void dsk_print_version(void);

/* Each dies with EX_USAGE and "OPTION: ..." when the value is not valid. */
long long dsk_parse_int(const char *option, const char *value, long long min, long long max);
double dsk_parse_double(const char *option, const char *value, double min, double max);
/* Sizes with an optional K, M, G or T suffix (powers of 1024). */
uint64_t dsk_parse_size(const char *option, const char *value);

/* Dies with the usual "Try 'PROG --help'" hint. */
_Noreturn void dsk_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Usage errors exit with 64 without a word: the ranks of a launched run
 * other than rank 0 (they have the same command line, rank 0 says it). */
void dsk_usage_quiet(int quiet);
/* What getopt_long returned for a bad option (its optstring starting with
 * ':', so that getopt says nothing itself): ':' for a missing argument,
 * else an unknown, ambiguous or misused option.  Names the option (and,
 * for an ambiguous abbreviation, what it could be) and dies as above. */
struct option;
_Noreturn void dsk_usage_bad_option(int opt, char *const *argv, const struct option *longopts);
/* "--name" of the long option whose value is val, else "-c" (for
 * messages; the text lives until the next call). */
const char *dsk_option_name(int val, const struct option *longopts);

/* Where each option of a tool applies (a bit per command, mode or
 * method): given[opt] set for each option seen, an option given where it
 * does not apply is a usage error ("NAME does not apply to WHAT"), not
 * silently ignored. */
typedef struct dsk_option_scope {
    int opt;
    const char *name;
    unsigned where;
} dsk_option_scope;
void dsk_check_option_scope(const dsk_option_scope *table, size_t n, const unsigned char *given, unsigned where,
                            const char *what);

int dsk_default_threads(void);

#endif
