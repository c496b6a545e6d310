/* The run directory of dsk-train: step directories by number, the checks
 * before a run writes into OUT, and the lock on it. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "test.h"
#include "train/run_dir.h"

static char *make_root(void)
{
    char tmpl[] = "/tmp/dsk-run-dir-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? dsk_xstrdup(d) : NULL;
}

static void remove_root(char *root)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
    free(root);
}

static void make_dir(const char *root, const char *name)
{
    char *p = dsk_path_join(root, name);
    mkdir(p, 0777);
    free(p);
}

TEST(steps_in_number_order)
{
    char *root = make_root();
    CHECK(root != NULL);
    /* 9 digits after 8 (name order would put step-100000000 first); the
     * temporaries, other spellings and other names are not steps. */
    const char *names[] = {"step-100000000", "step-99999999", "step-00000005", "step-00000007.tmp.12",
                           "step-5", "step-", "latest-not", "step-0000000x"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        make_dir(root, names[i]);
    size_t n;
    long *steps = dsk_run_dir_steps(root, &n);
    CHECK(n == 3);
    if (n == 3)
        CHECK(steps[0] == 5 && steps[1] == 99999999 && steps[2] == 100000000);
    free(steps);
    char *none = dsk_path_join(root, "absent");
    CHECK(dsk_run_dir_steps(none, &n) == NULL && n == 0);
    free(none);
    remove_root(root);
}

TEST(checks_before_a_run)
{
    char *root = make_root();
    dsk_err err = {0};
    char *out = dsk_path_join(root, "run");
    CHECK(dsk_run_dir_check(out, -1, &err) == 0);   /* missing: a new run makes it */
    mkdir(out, 0777);
    CHECK(dsk_run_dir_check(out, -1, &err) == 0);   /* empty */
    make_dir(out, "step-00000020");
    CHECK(dsk_run_dir_check(out, -1, &err) == EX_CANTCREAT);   /* steps without latest */
    CHECK(strstr(err.msg, "holds a run already") != NULL);
    CHECK(dsk_run_dir_check(out, 20, &err) == 0);   /* resuming at the last step */
    CHECK(dsk_run_dir_check(out, 10, &err) == EX_CANTCREAT);   /* a later step is there */
    CHECK(strstr(err.msg, "step-00000020 is past the step resumed from (10)") != NULL);
    char *file = dsk_path_join(root, "file");
    dsk_buf b = {0};
    dsk_buf_adds(&b, "x");
    CHECK(dsk_write_file(file, &b, &err) == 0);
    dsk_buf_free(&b);
    CHECK(dsk_run_dir_check(file, -1, &err) == EX_CANTCREAT);
    CHECK(strstr(err.msg, "not a directory") != NULL);
    free(file);
    free(out);
    remove_root(root);
}

TEST(lock)
{
    char *root = make_root();
    dsk_err err = {0};
    char *out = dsk_path_join(root, "run");
    dsk_run_lock a, b;
    CHECK(dsk_run_lock_take(&a, out, &err) == 0);
    struct stat sb;
    CHECK(stat(out, &sb) == 0 && S_ISDIR(sb.st_mode));
    /* flock belongs to the open file: a second open conflicts, even here. */
    CHECK(dsk_run_lock_take(&b, out, &err) == EX_CANTCREAT);
    CHECK(strstr(err.msg, "another dsk-train is writing to it") != NULL);
    dsk_run_lock_release(&b);
    CHECK(stat(out, &sb) == 0);   /* b did not make it: not removed */
    dsk_run_lock_release(&a);
    CHECK(stat(out, &sb) != 0);   /* a made it and it is empty: removed */
    /* A directory with something in it stays. */
    CHECK(dsk_run_lock_take(&a, out, &err) == 0);
    make_dir(out, "step-00000001");
    dsk_run_lock_release(&a);
    CHECK(stat(out, &sb) == 0);
    CHECK(dsk_run_lock_take(&a, out, &err) == 0);   /* free again */
    dsk_run_lock_release(&a);
    free(out);
    remove_root(root);
}

RUN_TESTS(T(steps_in_number_order), T(checks_before_a_run), T(lock))
