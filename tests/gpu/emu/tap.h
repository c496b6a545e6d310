/* The emulation's own tests' TAP output (test_cublas_emu.cc,
 * test_cudnn_emu.cc): CHECK counts a check towards the family under way
 * and says a failure in a "# FAIL" line; tap() ends the family with its
 * "ok" or "not ok" line. */
#ifndef DSK_EMU_TAP_H
#define DSK_EMU_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int n_tests, n_failed;          /* TAP lines, and those not ok */
static int family_checks, family_failed;
static int n_checks, n_checks_failed;  /* over all families */

__attribute__((format(printf, 3, 4))) static int check_at(int ok, int line, const char *fmt, ...)
{
    family_checks++;
    if (!ok) {
        family_failed++;
        printf("# FAIL line %d: ", line);
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    return ok;
}
#define CHECK(cond, ...) check_at((cond) ? 1 : 0, __LINE__, __VA_ARGS__)

static void tap(const char *what)
{
    n_tests++;
    n_failed += family_failed != 0;
    if (family_failed)
        printf("not ok %d - %s (%d of %d checks failed)\n", n_tests, what, family_failed, family_checks);
    else
        printf("ok %d - %s\n", n_tests, what);
    fflush(stdout);
    n_checks += family_checks, n_checks_failed += family_failed;
    family_checks = family_failed = 0;
}

#endif
