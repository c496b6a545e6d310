#include "clean/dedup.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/lmdb_file.h"

int dsk_dedup_open_memory(dsk_dedup *d, uint64_t max_bytes)
{
    memset(d, 0, sizeof *d);
    dsk_u64map_init(&d->exact, 1024);
    dsk_u64map_init(&d->bands, 1024);
    d->max_bytes = max_bytes;
    return 0;
}

static int lmdb_fail(dsk_err *err, const char *path, const char *what, int rc)
{
    return dsk_fail(err, rc == MDB_MAP_FULL ? EX_CANTCREAT : EX_IOERR, "%s: %s: %s", path, what,
                    mdb_strerror(rc));
}

/* This boot's id (a process id and start time name a process only within
 * one boot); "" without /proc. */
static const char *boot_id(void)
{
    static char id[64];
    if (!id[0]) {
        FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
        if (f) {
            if (!fgets(id, sizeof id, f))
                id[0] = '\0';
            fclose(f);
        }
        id[strcspn(id, "\n")] = '\0';
        if (!id[0])
            strcpy(id, "-");
    }
    return id;
}

/* A process's start time (clock ticks after boot, /proc/PID/stat's 22nd
 * field), or 0 when it is not running (or there is no /proc). */
static unsigned long long process_start(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');   /* after the command name, which may hold spaces */
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X')   /* field 3, the state: a zombie has ended */
        return 0;
    unsigned long long start = 0;
    for (int field = 2; p && field < 22; field++)
        p = strchr(p + 1, ' ');
    if (p)
        start = strtoull(p + 1, NULL, 10);
    return start;
}

/* This process's PID namespace ("pid:[4026531836]"): a pid names a process
 * only within one; "-" without /proc. */
static const char *pid_namespace(void)
{
    static char ns[64];
    if (!ns[0]) {
        ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
        if (n <= 0 || strchr(ns, ' '))
            n = 0;
        ns[n] = '\0';
        if (!ns[0])
            strcpy(ns, "-");
    }
    return ns;
}

/* Whether the run an "R BOOT PIDNS PID START" entry names is still
 * running.  One this process cannot judge counts as running, so its keys
 * count, as they did before runs were marked: an entry without these
 * fields, written without /proc, or from another PID namespace (another
 * container on this machine: its pids are not ours to look up). */
static int run_alive(const char *v, size_t len)
{
    char entry[200], boot[64], ns[64];
    long pid;
    unsigned long long start;
    snprintf(entry, sizeof entry, "%.*s", (int)(len < sizeof entry ? len : sizeof entry - 1), v);
    if (sscanf(entry, "R %63s %63s %ld %llu", boot, ns, &pid, &start) != 4 || !strcmp(boot, "-") || start == 0)
        return 1;
    if (strcmp(boot, boot_id()) != 0)   /* the machine has restarted since */
        return 0;
    if (!strcmp(ns, "-") || strcmp(ns, pid_namespace()) != 0)
        return 1;
    return process_start(pid) == start;
}

int dsk_dedup_open_lmdb(dsk_dedup *d, const char *path, const char *params, dsk_err *err)
{
    memset(d, 0, sizeof *d);
    if (!*path)
        return dsk_fail(err, EX_USAGE, "--dedup-db: an empty path");
    /* An existing file is checked before LMDB maps it (it trusts its
     * file: one cut short crashed it); a missing one is made. */
    int rc = access(path, F_OK) == 0 ? dsk_lmdb_file_check(path, 1, err) : 0;
    if (rc)
        return rc;
    MDB_env *env;
    rc = mdb_env_create(&env);
    if (rc)
        return lmdb_fail(err, path, "cannot create environment", rc);
    mdb_env_set_maxdbs(env, 4);
    mdb_env_set_mapsize(env, (size_t)1 << 40);  /* address space only; the file grows as needed */
    /* LMDB makes PATH-lock beside the file even when it then refuses it:
     * one made here for a refused file goes again. */
    char *lock = dsk_xmalloc(strlen(path) + 8);
    sprintf(lock, "%s-lock", path);
    int had_lock = access(lock, F_OK) == 0;
    rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOTLS, 0666);
    if (rc) {
        mdb_env_close(env);
        int not_lmdb = rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH;
        if (not_lmdb && !had_lock)   /* only then: another process may be using a lock it made meanwhile */
            unlink(lock);
        free(lock);
        if (not_lmdb)
            return dsk_fail(err, EX_DATAERR, "%s: not a dedup database: %s", path, mdb_strerror(rc));
        if (rc == ENOENT || rc == EACCES || rc == ENOTDIR || rc == EROFS)   /* a place it cannot be made, as -o's */
            return dsk_fail(err, EX_CANTCREAT, "%s: cannot create: %s", path, mdb_strerror(rc));
        return lmdb_fail(err, path, "cannot open", rc);
    }
    MDB_txn *txn = NULL;
    MDB_dbi meta, exact, bands, runs, main_db;
    MDB_stat main_stat;
    MDB_val key = {6, "params"}, val;
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        txn = NULL;
    if (txn && mdb_dbi_open(txn, NULL, 0, &main_db) == 0 &&
        mdb_stat(txn, main_db, &main_stat) == 0 && main_stat.ms_entries > 0 &&
        (mdb_dbi_open(txn, "meta", 0, &meta) != 0 || mdb_get(txn, meta, &key, &val) != 0)) {
        /* Not empty, and no settings of ours: some other LMDB file (a
         * dataset's shard).  Nothing is written to it. */
        mdb_txn_abort(txn);
        mdb_env_close(env);
        if (!had_lock)
            unlink(lock);
        free(lock);
        return dsk_fail(err, EX_DATAERR, "%s: an LMDB file that is not a dedup database (it holds other data)",
                        path);
    }
    free(lock);
    if (rc || (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &meta)) ||
        (rc = mdb_dbi_open(txn, "exact", MDB_CREATE, &exact)) ||
        (rc = mdb_dbi_open(txn, "bands", MDB_CREATE, &bands)) ||
        (rc = mdb_dbi_open(txn, "runs", MDB_CREATE, &runs))) {
        if (txn)
            mdb_txn_abort(txn);
        mdb_env_close(env);
        return lmdb_fail(err, path, "cannot open databases", rc);
    }
    rc = mdb_get(txn, meta, &key, &val);
    if (rc == MDB_NOTFOUND) {
        val.mv_size = strlen(params);
        val.mv_data = (void *)params;
        rc = mdb_put(txn, meta, &key, &val, 0);
    } else if (rc == 0 && (val.mv_size != strlen(params) || memcmp(val.mv_data, params, val.mv_size) != 0)) {
        int n = (int)(val.mv_size > 200 ? 200 : val.mv_size);
        /* format before closing: val points into the map */
        dsk_fail(err, EX_DATAERR, "%s: made with different dedup settings (%.*s), not %s", path, n,
                 (const char *)val.mv_data, params);
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return EX_DATAERR;
    }
    /* This run, as running, until it ends: "R" and who runs it, so that
     * a run killed before it could mark itself is known to be over. */
    uint64_t id = 0;
    while (id == 0 && getrandom(&id, sizeof id, 0) == (ssize_t)sizeof id)
        ;
    char me[192];
    unsigned long long started = process_start(getpid());
    snprintf(me, sizeof me, "R %s %s %ld %llu", boot_id(), pid_namespace(), (long)getpid(), started);
    MDB_val run_key = {sizeof id, &id}, running = {strlen(me), me};
    if (!rc && id == 0)
        rc = EIO;
    if (rc || (rc = mdb_put(txn, runs, &run_key, &running, 0))) {
        mdb_txn_abort(txn);
        mdb_env_close(env);
        return lmdb_fail(err, path, "cannot write settings", rc);
    }
    if ((rc = mdb_txn_commit(txn))) {   /* the transaction is freed, committed or not */
        mdb_env_close(env);
        return lmdb_fail(err, path, "cannot write settings", rc);
    }
    d->env = env;
    d->dbi_exact = exact;
    d->dbi_bands = bands;
    d->dbi_runs = runs;
    d->run_id = id;
    dsk_u64map_init(&d->run_state, 16);
    d->path = dsk_xstrdup(path);
    return 0;
}

/* The run's end: its keys stay in effect (its entry goes) or stop
 * counting (it is marked failed). */
static int finish_run(dsk_dedup *d, int ok, dsk_err *err)
{
    MDB_txn *txn;
    MDB_val key = {sizeof d->run_id, &d->run_id}, failed = {1, "F"};
    int rc = mdb_txn_begin(d->env, NULL, 0, &txn);
    if (!rc) {
        rc = ok ? mdb_del(txn, d->dbi_runs, &key, NULL) : mdb_put(txn, d->dbi_runs, &key, &failed, 0);
        rc = rc == MDB_NOTFOUND ? 0 : rc;
        rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    }
    return rc ? lmdb_fail(err, d->path, "cannot record the run's end", rc) : 0;
}

int dsk_dedup_close(dsk_dedup *d, int ok, dsk_err *err)
{
    int rc = 0;
    if (d->env) {
        if (d->txn && ok) {
            rc = dsk_dedup_commit(d, err);
        } else if (d->txn) {
            mdb_txn_abort(d->txn);
            d->txn = NULL;
        }
        int end_rc = finish_run(d, ok && !rc, err);
        rc = rc ? rc : end_rc;
        mdb_env_close(d->env);
        dsk_u64map_free(&d->run_state);
        free(d->path);
    } else {
        dsk_u64map_free(&d->exact);
        dsk_u64map_free(&d->bands);
    }
    memset(d, 0, sizeof *d);
    return rc;
}

int dsk_dedup_begin(dsk_dedup *d, dsk_err *err)
{
    if (!d->env || d->txn)
        return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(d->env, NULL, 0, &txn);
    if (rc)
        return lmdb_fail(err, d->path, "cannot begin transaction", rc);
    d->txn = txn;
    return 0;
}

int dsk_dedup_commit(dsk_dedup *d, dsk_err *err)
{
    if (!d->txn)
        return 0;
    int rc = mdb_txn_commit(d->txn);
    d->txn = NULL;
    return rc ? lmdb_fail(err, d->path, "cannot commit", rc) : 0;
}

static int over_budget(dsk_dedup *d, dsk_err *err)
{
    if (dsk_dedup_memory_bytes(d) <= d->max_bytes)
        return 0;
    dsk_fail(err, EX_SOFTWARE,
             "the dedup index outgrew its %.*f MiB budget; raise --dedup-memory or keep it on disk "
             "with --dedup-db PATH",
             d->max_bytes < (10u << 20) ? 2 : 0, (double)d->max_bytes / 1048576.0);
    return -1;
}

/* Whether a key whose value is val counts: added by a run that did not
 * fail (or by an older dsk-clean, with no run id).  -1 on error. */
static int key_counts(dsk_dedup *d, const MDB_val *val, dsk_err *err)
{
    uint64_t id;
    if (val->mv_size != sizeof id)
        return 1;
    memcpy(&id, val->mv_data, sizeof id);
    if (id == d->run_id)
        return 1;
    uint64_t *known = dsk_u64map_find(&d->run_state, id);
    if (known)
        return (int)*known;
    MDB_val key = {sizeof id, &id}, state;
    int rc = mdb_get(d->txn, d->dbi_runs, &key, &state);
    if (rc && rc != MDB_NOTFOUND) {
        lmdb_fail(err, d->path, "lookup", rc);
        return -1;
    }
    /* Gone: it succeeded.  'F': it failed.  'R': running now (its keys
     * count), or killed before it could say (they do not).  Only the
     * final answers are kept: a running run may yet fail. */
    const char *v = rc ? NULL : state.mv_data;
    int counts, final = 1;
    if (!v || state.mv_size == 0)
        counts = 1;
    else if (v[0] == 'F')
        counts = 0;
    else {
        counts = run_alive(v, state.mv_size);
        final = !counts;
    }
    if (final)
        *dsk_u64map_upsert(&d->run_state, id, NULL) = (uint64_t)counts;
    return counts;
}

/* LMDB lookup-or-insert: 1 if present, 0 if inserted (or absent, without
 * insert), -1 on error.  A key of a failed run is absent, and taken over. */
static int lmdb_seen(dsk_dedup *d, unsigned dbi, const void *k, size_t klen, int insert, dsk_err *err)
{
    MDB_val key = {klen, (void *)k}, val = {0, ""};
    int rc = mdb_get(d->txn, dbi, &key, &val);
    if (rc == 0) {
        int counts = key_counts(d, &val, err);
        if (counts != 0)
            return counts;
        rc = MDB_NOTFOUND;
    }
    if (rc != MDB_NOTFOUND) {
        lmdb_fail(err, d->path, "lookup", rc);
        return -1;
    }
    val = (MDB_val){sizeof d->run_id, &d->run_id};
    if (insert && (rc = mdb_put(d->txn, dbi, &key, &val, 0))) {
        lmdb_fail(err, d->path, "insert", rc);
        return -1;
    }
    return 0;
}

int dsk_dedup_exact(dsk_dedup *d, uint64_t lo, uint64_t hi, dsk_err *err)
{
    if (d->env) {
        uint64_t k[2] = {lo, hi};
        return lmdb_seen(d, d->dbi_exact, k, sizeof k, 1, err);
    }
    int is_new;
    uint64_t *v = dsk_u64map_upsert(&d->exact, lo, &is_new);
    if (!is_new)
        return *v == hi;  /* same low half, different text: treat as new but keep the first */
    *v = hi;
    return over_budget(d, err);
}

int dsk_dedup_near(dsk_dedup *d, const uint64_t *keys, int n, dsk_err *err)
{
    for (int b = 0; b < n; b++) {
        int seen = d->env ? lmdb_seen(d, d->dbi_bands, &keys[b], sizeof keys[b], 0, err)
                          : dsk_u64map_find(&d->bands, keys[b]) != NULL;
        if (seen)
            return seen;
    }
    for (int b = 0; b < n; b++) {
        if (d->env) {
            if (lmdb_seen(d, d->dbi_bands, &keys[b], sizeof keys[b], 1, err) < 0)
                return -1;
        } else {
            dsk_u64map_upsert(&d->bands, keys[b], NULL);
        }
    }
    return d->env ? 0 : over_budget(d, err);
}

uint64_t dsk_dedup_memory_bytes(const dsk_dedup *d)
{
    if (d->env)
        return 0;
    return dsk_u64map_bytes(&d->exact) + dsk_u64map_bytes(&d->bands);
}
