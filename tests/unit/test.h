/* A small TAP test harness: TEST(name) defines a case, CHECK records a
 * failure without stopping the case, RUN_TESTS runs them and prints
 * "ok N - name" / "not ok N - name" and the plan. */
#ifndef DSK_TEST_H
#define DSK_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_case_failed;
static int test_total, test_failures;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);         \
            test_case_failed = 1;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_STR(got, want)                                                            \
    do {                                                                                \
        const char *g_ = (got), *w_ = (want);                                           \
        if (!g_ || strcmp(g_, w_) != 0) {                                               \
            printf("#   %s:%d: got \"%s\", want \"%s\"\n", __FILE__, __LINE__,          \
                   g_ ? g_ : "(null)", w_);                                             \
            test_case_failed = 1;                                                       \
        }                                                                               \
    } while (0)

#define CHECK_NEAR(got, want, tol)                                                      \
    do {                                                                                \
        double g_ = (got), w_ = (want);                                                 \
        if (!(fabs(g_ - w_) <= (tol))) {                                                \
            printf("#   %s:%d: got %g, want %g +- %g\n", __FILE__, __LINE__, g_, w_,    \
                   (double)(tol));                                                      \
            test_case_failed = 1;                                                       \
        }                                                                               \
    } while (0)

/* A float's bits and back (tests of number formats). */
static inline uint32_t test_bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float test_float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

#define TEST(name) static void name(void)
#define T(name) {#name, name}

static inline int run_tests(const test_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        test_case_failed = 0;
        cases[i].fn();
        test_total++;
        if (test_case_failed)
            test_failures++;
        printf("%sok %d - %s\n", test_case_failed ? "not " : "", test_total, cases[i].name);
        fflush(stdout);
    }
    printf("1..%d\n", test_total);
    return test_failures ? 1 : 0;
}

#define RUN_TESTS(...)                                                                  \
    int main(void)                                                                      \
    {                                                                                   \
        static const test_case cases[] = {__VA_ARGS__};                                 \
        return run_tests(cases, sizeof cases / sizeof cases[0]);                        \
    }

#endif
