#include <unistd.h>

#include "clean/dedup.h"
#include <sys/wait.h>

#include "test.h"

TEST(memory_exact_and_near)
{
    dsk_dedup d;
    dsk_err err = {0};
    dsk_dedup_open_memory(&d, 1 << 30);
    CHECK(dsk_dedup_exact(&d, 1, 2, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 1, 2, &err) == 1);
    CHECK(dsk_dedup_exact(&d, 1, 3, &err) == 0);  /* low half collides, text differs */
    uint64_t a[3] = {10, 11, 12}, b[3] = {20, 11, 22}, c[3] = {30, 31, 32};
    CHECK(dsk_dedup_near(&d, a, 3, &err) == 0);
    CHECK(dsk_dedup_near(&d, b, 3, &err) == 1);  /* shares band 1 */
    CHECK(dsk_dedup_near(&d, c, 3, &err) == 0);
    uint64_t chained[3] = {20, 99, 98};          /* b was a duplicate: its bands were not added */
    CHECK(dsk_dedup_near(&d, chained, 3, &err) == 0);
    CHECK(dsk_dedup_memory_bytes(&d) > 0);
    dsk_dedup_close(&d, 1, &err);
}

TEST(memory_budget_is_enforced)
{
    dsk_dedup d;
    dsk_err err = {0};
    dsk_dedup_open_memory(&d, 64 * 1024);
    int rc = 0;
    for (uint64_t i = 1; i < 100000 && rc == 0; i++)
        rc = dsk_dedup_exact(&d, i * 0x9E3779B97F4A7C15ull, i, &err);
    CHECK(rc == -1);
    CHECK(strstr(err.msg, "--dedup-db") != NULL);
    dsk_dedup_close(&d, 1, &err);
}

/* A fresh name for a database (mkstemp's, the file itself removed: LMDB makes it). */
static void new_db_path(char *path)
{
    int fd = mkstemp(path);
    close(fd);
    unlink(path);
}

static void remove_db(const char *path)
{
    char lock[64];
    snprintf(lock, sizeof lock, "%s-lock", path);
    unlink(path);
    unlink(lock);
}

TEST(lmdb_index_is_shared_across_runs)
{
    char path[] = "/tmp/dsk-dedup-XXXXXX";
    new_db_path(path);
    dsk_dedup d;
    dsk_err err = {0};
    uint64_t bands[2] = {5, 6}, other[2] = {7, 6};
    CHECK(dsk_dedup_open_lmdb(&d, path, "minhash ngram=5 bands=2 rows=8", &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 42, 43, &err) == 0);
    CHECK(dsk_dedup_near(&d, bands, 2, &err) == 0);
    CHECK(dsk_dedup_commit(&d, &err) == 0);
    CHECK(dsk_dedup_close(&d, 1, &err) == 0);

    CHECK(dsk_dedup_open_lmdb(&d, path, "minhash ngram=5 bands=2 rows=8", &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 42, 43, &err) == 1);
    CHECK(dsk_dedup_near(&d, other, 2, &err) == 1);
    CHECK(dsk_dedup_close(&d, 1, &err) == 0);

    CHECK(dsk_dedup_open_lmdb(&d, path, "minhash ngram=3 bands=2 rows=8", &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "different dedup settings") != NULL);
    remove_db(path);
}

/* A run that fails leaves nothing marked as seen: its committed batches'
 * keys stop counting, and the next run takes them over. */
TEST(lmdb_failed_run_leaves_no_keys)
{
    char path[] = "/tmp/dsk-dedup-XXXXXX";
    new_db_path(path);
    dsk_dedup d, other;
    dsk_err err = {0};
    uint64_t bands[2] = {5, 6};
    const char *params = "minhash ngram=5 bands=2 rows=8";
    CHECK(dsk_dedup_open_lmdb(&d, path, params, &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 1, 2, &err) == 0);
    CHECK(dsk_dedup_commit(&d, &err) == 0);
    /* while it runs, another run sees its keys */
    CHECK(dsk_dedup_open_lmdb(&other, path, params, &err) == 0);
    CHECK(dsk_dedup_begin(&other, &err) == 0);
    CHECK(dsk_dedup_exact(&other, 1, 2, &err) == 1);
    CHECK(dsk_dedup_commit(&other, &err) == 0);
    CHECK(dsk_dedup_close(&other, 1, &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_near(&d, bands, 2, &err) == 0);   /* in the batch open when it fails */
    CHECK(dsk_dedup_close(&d, 0, &err) == 0);

    CHECK(dsk_dedup_open_lmdb(&d, path, params, &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 1, 2, &err) == 0);      /* the failed run's key: absent, taken over */
    CHECK(dsk_dedup_exact(&d, 1, 2, &err) == 1);      /* now this run's */
    CHECK(dsk_dedup_near(&d, bands, 2, &err) == 0);
    CHECK(dsk_dedup_close(&d, 1, &err) == 0);
    CHECK(dsk_dedup_open_lmdb(&d, path, params, &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 1, 2, &err) == 1);      /* kept by the run that succeeded */
    CHECK(dsk_dedup_near(&d, bands, 2, &err) == 1);
    CHECK(dsk_dedup_close(&d, 1, &err) == 0);
    remove_db(path);
}

/* A run killed before it could mark itself (a signal, the OOM killer): its
 * keys count while its process lives, and not once it is gone. */
TEST(lmdb_killed_run_leaves_no_keys)
{
    char path[] = "/tmp/dsk-dedup-XXXXXX";
    new_db_path(path);
    const char *params = "minhash ngram=5 bands=2 rows=8";
    int ready[2], go[2];   /* child to parent, parent to child */
    CHECK(pipe(ready) == 0 && pipe(go) == 0);
    pid_t child = fork();
    if (child == 0) {   /* commits a batch, then dies when told, without closing */
        dsk_dedup c;
        dsk_err e = {0};
        if (dsk_dedup_open_lmdb(&c, path, params, &e) || dsk_dedup_begin(&c, &e) || dsk_dedup_exact(&c, 7, 8, &e) ||
            dsk_dedup_commit(&c, &e))
            _exit(1);
        char byte;
        if (write(ready[1], "k", 1) != 1 || read(go[0], &byte, 1) != 1)
            _exit(2);
        _exit(0);
    }
    char byte;
    CHECK(read(ready[0], &byte, 1) == 1);   /* the child's batch is in */
    dsk_dedup d;
    dsk_err err = {0};
    CHECK(dsk_dedup_open_lmdb(&d, path, params, &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 7, 8, &err) == 1);   /* alive: its key counts */
    CHECK(dsk_dedup_close(&d, 0, &err) == 0);      /* (this run fails: it adds nothing) */
    CHECK(write(go[1], "x", 1) == 1);
    /* gone without succeeding: absent, even while a zombie nobody reaped */
    int seen = 1;
    for (int tries = 0; tries < 100 && seen == 1; tries++) {
        usleep(50000);
        CHECK(dsk_dedup_open_lmdb(&d, path, params, &err) == 0);
        CHECK(dsk_dedup_begin(&d, &err) == 0);
        seen = dsk_dedup_exact(&d, 7, 8, &err);
        CHECK(dsk_dedup_close(&d, 0, &err) == 0);   /* (failing: it keeps nothing it took over) */
    }
    CHECK(seen == 0);
    int status;
    CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(dsk_dedup_open_lmdb(&d, path, params, &err) == 0);
    CHECK(dsk_dedup_begin(&d, &err) == 0);
    CHECK(dsk_dedup_exact(&d, 7, 8, &err) == 0);
    CHECK(dsk_dedup_close(&d, 1, &err) == 0);
    close(go[0]);
    close(go[1]);
    close(ready[0]);
    close(ready[1]);
    remove_db(path);
}

RUN_TESTS(T(memory_exact_and_near), T(memory_budget_is_enforced), T(lmdb_index_is_shared_across_runs),
          T(lmdb_failed_run_leaves_no_keys), T(lmdb_killed_run_leaves_no_keys))
