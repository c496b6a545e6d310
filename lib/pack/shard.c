#include "pack/shard.h"

#include <errno.h>
#include <lmdb.h>
#include <sys/statvfs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fault_guard.h"
#include "core/lmdb_file.h"

static const char *const db_names[1 + DSK_SPLITS] = {"meta", "train", "val", "test"};

/* Rows are committed in transactions of about this many bytes, which bounds
 * the dirty pages LMDB holds in memory. */
#define COMMIT_BYTES (32u << 20)

static int lmdb_fail(dsk_err *err, const char *path, const char *what, int rc)
{
    /* LMDB answers a short write with EIO: on a file system with no room
     * left, say so (a full disk is the common cause, and one a user fixes) */
    struct statvfs fs;
    int full = (rc == EIO || rc == ENOSPC) && statvfs(path, &fs) == 0 &&
               (uint64_t)fs.f_bavail * fs.f_frsize < (64u << 10);
    return dsk_fail(err, rc == MDB_MAP_FULL ? EX_SOFTWARE : rc == ENOENT ? EX_NOINPUT : EX_IOERR, "%s: %s: %s%s", path,
                    what, full ? "the file system is full" : mdb_strerror(rc),
                    full && rc != ENOSPC ? " (LMDB: a short write)" : "");
}

/* A read of a shard that LMDB refuses: what its errors mean there is a
 * damaged file (a pointer to a page past the end reads as
 * MDB_MAP_RESIZED, a bad page as MDB_PAGE_NOTFOUND or MDB_CORRUPTED, a
 * branch page whose bounds were changed as MDB_CURSOR_FULL: a tree deeper
 * than any dsk-pack writes), bad data, 65; other errors are the system's. */
static int read_fail(dsk_err *err, const char *path, const char *what, int rc)
{
    if (rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_MAP_RESIZED || rc == MDB_BAD_TXN ||
        rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE || rc == MDB_BAD_VALSIZE ||
        rc == MDB_BAD_DBI || rc == MDB_PANIC || rc == MDB_CURSOR_FULL)
        return dsk_fail(err, EX_DATAERR, "%s: the shard is damaged (LMDB %s: %s; dsk-pack verify checks a dataset)",
                        path, what, mdb_strerror(rc));
    return lmdb_fail(err, path, what, rc);
}

/* LMDB's assertion text, kept for the message of the region it ends. */
static _Thread_local char lmdb_assertion[200];

/* LMDB calls this before abort() when a check of its pages fails: a
 * reader in a fault region leaves the region instead. */
static void on_lmdb_assert(MDB_env *env, const char *msg)
{
    snprintf(lmdb_assertion, sizeof lmdb_assertion, "%s", msg);
    dsk_fault_escape(SIGABRT);
}

/* A memory fault or a failed LMDB assertion while LMDB walked the shard's
 * pages: a damaged page (a read sent outside the file), 65.  A bus error
 * inside the file is the storage's: the file shrank while open, or a
 * network filesystem failed the read (74). */
static int fault_fail(dsk_err *err, const dsk_shard *s, const char *what, const dsk_fault_region *fr)
{
    const char *map = s->map, *at = fr->addr, *path = s->path;
    if (fr->sig == SIGBUS && map && at >= map && (size_t)(at - map) < s->map_bytes)
        return dsk_fail(err, EX_IOERR, "%s: I/O error (LMDB %s: a bus error inside the file: it shrank while open, "
                        "or the storage failed the read)", path, what);
    return dsk_fail(err, EX_DATAERR,
                    "%s: the shard is damaged (LMDB %s: %s reading its pages; dsk-pack verify checks a dataset)", path,
                    what,
                    fr->sig == SIGBUS    ? "bus error"
                    : fr->sig == SIGABRT ? lmdb_assertion
                                         : "segmentation fault");
}

static void key_bytes(uint64_t index, uint8_t k[8])
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(index >> (56 - 8 * i));
}

static uint64_t key_value(const uint8_t *k)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | k[i];
    return v;
}

/* Creates s->env over the single file path and opens it; on failure the
 * environment is closed again and the LMDB error returned. */
static int open_env(dsk_shard *s, const char *path, size_t map_size, unsigned flags, mdb_mode_t mode)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc)
        return rc;
    mdb_env_set_maxdbs(env, 1 + DSK_SPLITS);
    mdb_env_set_mapsize(env, map_size);
    mdb_env_set_assert(env, on_lmdb_assert);
    if ((rc = mdb_env_open(env, path, MDB_NOSUBDIR | MDB_NOLOCK | flags, mode))) {
        mdb_env_close(env);
        return rc;
    }
    s->env = env;
    return 0;
}

/* Opens meta, train, val and test in txn; *failed names the one that did not open. */
static int open_dbs(dsk_shard *s, MDB_txn *txn, unsigned flags, const char **failed)
{
    for (int d = 0; d <= DSK_SPLITS; d++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(txn, db_names[d], flags, &dbi);
        if (rc) {
            *failed = db_names[d];
            return rc;
        }
        s->dbi[d] = dbi;
    }
    return 0;
}

int dsk_shard_create(dsk_shard *s, const char *path, uint64_t map_size, dsk_err *err)
{
    memset(s, 0, sizeof *s);
    s->path = dsk_xstrdup(path);
    int rc = open_env(s, path, (size_t)map_size, MDB_NOSYNC | MDB_NOMETASYNC, 0644);
    if (rc)
        return lmdb_fail(err, path, "cannot create", rc);
    MDB_stat st;
    mdb_env_stat(s->env, &st);
    s->page_size = st.ms_psize;
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
        return lmdb_fail(err, path, "mdb_txn_begin", rc);
    s->txn = txn;
    const char *failed;
    if ((rc = open_dbs(s, txn, MDB_CREATE, &failed)))
        return lmdb_fail(err, path, "mdb_dbi_open", rc);
    return 0;
}

static int commit(dsk_shard *s, int reopen, dsk_err *err)
{
    int rc = mdb_txn_commit(s->txn);
    s->txn = NULL;
    if (rc)
        return lmdb_fail(err, s->path, "commit", rc);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->committed_bytes = ((uint64_t)info.me_last_pgno + 1) * s->page_size;
    s->pending_bytes = 0;
    if (reopen) {
        MDB_txn *txn;
        if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
            return lmdb_fail(err, s->path, "mdb_txn_begin", rc);
        s->txn = txn;
    }
    return 0;
}

static int put(dsk_shard *s, unsigned dbi, const void *key, size_t klen, const void *value, size_t len,
               unsigned flags, dsk_err *err)
{
    MDB_val k = {klen, (void *)key}, v = {len, (void *)value};
    int rc = mdb_put(s->txn, dbi, &k, &v, flags);
    if (rc)
        return lmdb_fail(err, s->path, "put", rc);
    /* A leaf node holds key, value and an 8-byte header; values too big for
     * half a page go to whole overflow pages. */
    size_t node = 8 + klen + len;
    s->pending_bytes += node > s->page_size / 2 - 16 ? (len + 16 + s->page_size - 1) / s->page_size * s->page_size
                                                      : node + 2;
    return 0;
}

int dsk_shard_put(dsk_shard *s, int split, uint64_t index, const void *value, size_t len, dsk_err *err)
{
    uint8_t k[8];
    key_bytes(index, k);
    int rc = put(s, s->dbi[1 + split], k, 8, value, len, MDB_APPEND, err);
    if (!rc && s->pending_bytes >= COMMIT_BYTES)
        rc = commit(s, 1, err);
    return rc;
}

int dsk_shard_put_meta(dsk_shard *s, const char *key, const void *value, size_t len, dsk_err *err)
{
    return put(s, s->dbi[0], key, strlen(key), value, len, 0, err);
}

uint64_t dsk_shard_size_estimate(const dsk_shard *s) { return s->committed_bytes + s->pending_bytes; }

int dsk_shard_finish(dsk_shard *s, uint64_t *bytes, dsk_err *err)
{
    int rc = commit(s, 0, err);
    if (!rc && (rc = mdb_env_sync(s->env, 1)) != 0)
        rc = lmdb_fail(err, s->path, "sync", rc);
    mdb_env_close(s->env);
    s->env = NULL;
    struct stat st;
    if (!rc && stat(s->path, &st) != 0)
        rc = dsk_fail(err, EX_IOERR, "%s: stat: %s", s->path, strerror(errno));
    if (!rc)
        *bytes = (uint64_t)st.st_size;
    free(s->path);
    s->path = NULL;
    return rc;
}

void dsk_shard_abort(dsk_shard *s)
{
    if (s->txn)
        mdb_txn_abort(s->txn);
    if (s->env)
        mdb_env_close(s->env);
    free(s->path);
    memset(s, 0, sizeof *s);
}

/* Little-endian bytes at p, read one by one: p may be anywhere. */
DSK_NO_ASAN static uint64_t wild_le(uintptr_t p, int bytes)
{
    const volatile unsigned char *b = (const volatile unsigned char *)p;
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* The start of the map from a pointer p into one of its pages: a page
 * begins with its own number (LMDB's page header, whose meta pages
 * lmdb_file.c reads), so the map starts that many pages before.  Taken
 * only when pages 0 and 1 there are meta pages (number, flag P_META 0x08,
 * magic 0xBEEFC0DE); NULL when not, or when a read faults (a damaged
 * number can point anywhere). */
DSK_NO_ASAN static const char *map_from_page(const void *p, size_t psize, size_t file_bytes)
{
    dsk_fault_region fr;
    dsk_fault_enter(&fr);
    if (sigsetjmp(fr.jmp, 0)) {
        dsk_fault_leave(&fr);
        return NULL;
    }
    uintptr_t page = (uintptr_t)p & ~(uintptr_t)(psize - 1), map = 0;
    uint64_t pgno = wild_le(page, 8);
    int meta = pgno < file_bytes / psize && pgno * psize <= page;
    if (meta)
        map = page - (uintptr_t)(pgno * psize);
    for (unsigned i = 0; i < 2 && meta; i++) {
        uintptr_t m = map + i * psize;
        meta = wild_le(m, 8) == i && (wild_le(m + 10, 2) & 0x08) && wild_le(m + 16, 4) == 0xBEEFC0DEu;
    }
    dsk_fault_leave(&fr);
    return meta ? (const char *)map : NULL;
}

/* The first meta key, read in a fault region.  Every shard has meta
 * keys: none readable is damage. */
static int first_meta_key(dsk_shard *s, MDB_txn *txn, MDB_val *k, dsk_err *err)
{
    MDB_cursor *c;
    MDB_val v;
    int rc = mdb_cursor_open(txn, s->dbi[0], &c);
    if (rc)
        return read_fail(err, s->path, "cursor", rc);
    dsk_fault_region fr;
    dsk_fault_enter(&fr);
    if (sigsetjmp(fr.jmp, 0)) {
        dsk_fault_leave(&fr);
        mdb_cursor_close(c);
        return fault_fail(err, s, "cursor", &fr);
    }
    rc = mdb_cursor_get(c, k, &v, MDB_FIRST);
    dsk_fault_leave(&fr);
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND)
        return dsk_fail(err, EX_DATAERR, "%s: the shard is damaged (no meta keys; dsk-pack verify checks a dataset)",
                        s->path);
    return rc ? read_fail(err, s->path, "cursor", rc) : 0;
}

/* Where LMDB mapped the file, which its API does not say (mdb_env_info's
 * address is the one asked for with MDB_FIXEDMAP), from the first meta
 * key, which lies in a leaf page of the map: by its page's number, or
 * else the mapping that holds it in /proc/self/maps (which a dataset of
 * thousands of shards would read thousands of times). */
static int find_map(dsk_shard *s, MDB_txn *txn, const struct stat *file, dsk_err *err)
{
    MDB_val k;
    int rc = first_meta_key(s, txn, &k, err);
    if (rc)
        return rc;
    MDB_stat st;
    mdb_env_stat(s->env, &st);
    s->page_size = st.ms_psize;
    size_t file_bytes = (size_t)file->st_size;
    const void *start = map_from_page(k.mv_data, st.ms_psize, file_bytes);
    /* The page's number can fail an intact file only when its pages are
     * larger than this system's (a 16 KiB-page file on 4 KiB pages);
     * /proc then says where the map is, or that the key lies outside it. */
    rc = start ? 0 : dsk_mapping_of(k.mv_data, file->st_dev, file->st_ino, &start);
    if (rc == -1)
        return dsk_fail(err, EX_DATAERR, "%s: the shard is damaged (its first meta key lies outside the file; "
                        "dsk-pack verify checks a dataset)", s->path);
    if (rc == 0) {   /* -2, no /proc (a sandbox): values go unchecked, as LMDB gives them */
        s->map = start;
        s->map_bytes = file_bytes;
    }
    return 0;
}

/* open_dbs for reading, in a fault region: -1 with err set when a page
 * was damaged. */
static int open_dbs_guarded(dsk_shard *s, MDB_txn *txn, const char **failed, dsk_err *err)
{
    dsk_fault_region fr;
    dsk_fault_enter(&fr);
    if (sigsetjmp(fr.jmp, 0)) {
        dsk_fault_leave(&fr);
        fault_fail(err, s, "mdb_dbi_open", &fr);   /* (no map yet) */
        return -1;
    }
    int rc = open_dbs(s, txn, 0, failed);
    dsk_fault_leave(&fr);
    return rc;
}

int dsk_shard_open(dsk_shard *s, const char *path, dsk_err *err)
{
    memset(s, 0, sizeof *s);
    s->path = dsk_xstrdup(path);
    struct stat st;
    int rc = 0;
    MDB_txn *txn;
    const char *failed;
    if ((rc = dsk_lmdb_file_check(path, 0, err)) != 0)
        ;   /* missing, not a regular file, or cut short: LMDB would trust it */
    else if (stat(path, &st) != 0)
        rc = dsk_fail(err, errno == ENOENT ? EX_NOINPUT : EX_IOERR, "%s: %s", path, strerror(errno));
    else if ((rc = open_env(s, path, (size_t)st.st_size, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0)))
        rc = dsk_fail(err, EX_DATAERR, "%s: not an LMDB shard: %s", path, mdb_strerror(rc));
    else if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)))
        rc = read_fail(err, path, "mdb_txn_begin", rc);
    else if ((rc = open_dbs_guarded(s, txn, &failed, err)) == -1) {
        rc = err->code;
        mdb_txn_abort(txn);
    } else if (rc) {
        rc = dsk_fail(err, EX_DATAERR, "%s: no '%s' database: %s", path, failed, mdb_strerror(rc));
        mdb_txn_abort(txn);
    } else {
        rc = find_map(s, txn, &st, err);
        mdb_txn_commit(txn);  /* committing a read transaction keeps its dbi handles for the environment */
    }
    if (rc)
        dsk_shard_close(s);
    return rc;
}

int dsk_shard_begin(dsk_shard *s, void **txn, dsk_err *err)
{
    MDB_txn *t;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &t);
    if (rc)
        return read_fail(err, s->path, "mdb_txn_begin", rc);
    *txn = t;
    return 0;
}

void dsk_shard_end(void *txn)
{
    if (txn)
        mdb_txn_abort(txn);
}

int dsk_shard_get(dsk_shard *s, void *txn, int split, uint64_t index, const char *meta_key, const void **value,
                  size_t *len, dsk_err *err)
{
    uint8_t kb[8];
    MDB_val k, v;
    if (split >= 0) {
        key_bytes(index, kb);
        k.mv_size = 8, k.mv_data = kb;
    } else {
        k.mv_size = strlen(meta_key), k.mv_data = (void *)meta_key;
    }
    dsk_fault_region fr;
    dsk_fault_enter(&fr);
    if (sigsetjmp(fr.jmp, 0)) {
        dsk_fault_leave(&fr);
        return fault_fail(err, s, "get", &fr);
    }
    int rc = mdb_get(txn, s->dbi[split >= 0 ? 1 + split : 0], &k, &v);
    dsk_fault_leave(&fr);
    if (rc == MDB_NOTFOUND) {
        if (split >= 0)
            return dsk_fail(err, EX_DATAERR, "%s: no %s row %llu", s->path, dsk_split_names[split],
                            (unsigned long long)index);
        return dsk_fail(err, EX_DATAERR, "%s: no meta key '%s'", s->path, meta_key);
    }
    if (rc)
        return read_fail(err, s->path, "get", rc);
    /* A damaged leaf can give a value that runs past the file's end, which
     * the caller's read of it would fault on. */
    const char *map = s->map;
    if (map && ((const char *)v.mv_data < map || v.mv_size > s->map_bytes ||
        (size_t)((const char *)v.mv_data - map) > s->map_bytes - v.mv_size))
        return dsk_fail(err, EX_DATAERR,
                        "%s: the shard is damaged (a value of %zu bytes out of the file; dsk-pack verify checks a "
                        "dataset)", s->path, v.mv_size);
    *value = v.mv_data;
    *len = v.mv_size;
    return 0;
}

int dsk_shard_range(dsk_shard *s, void *txn, int split, uint64_t *rows, uint64_t *first, uint64_t *last,
                    dsk_err *err)
{
    MDB_cursor *volatile cursor = NULL;  /* closed on the fault's path too */
    dsk_fault_region fr;
    dsk_fault_enter(&fr);
    if (sigsetjmp(fr.jmp, 0)) {
        dsk_fault_leave(&fr);
        if (cursor)
            mdb_cursor_close(cursor);
        return fault_fail(err, s, "read", &fr);
    }
    /* mdb_stat may search the main tree (a database's record is read
     * again there), so it is in the region too. */
    MDB_stat st;
    int rc = mdb_stat(txn, s->dbi[1 + split], &st);
    *rows = rc ? 0 : st.ms_entries;
    *first = *last = 0;
    if (!rc && st.ms_entries) {
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(txn, s->dbi[1 + split], &c)) == 0)
            cursor = c;
        MDB_val k, v;
        for (int end = 0; end < 2 && !rc; end++) {
            rc = mdb_cursor_get(c, &k, &v, end ? MDB_LAST : MDB_FIRST);
            if (!rc && k.mv_size != 8)
                rc = -1;
            if (!rc)
                *(end ? last : first) = key_value(k.mv_data);
        }
    }
    dsk_fault_leave(&fr);
    if (cursor)
        mdb_cursor_close(cursor);
    if (rc == -1 || rc == MDB_NOTFOUND)
        return dsk_fail(err, EX_DATAERR, "%s: bad %s keys", s->path, dsk_split_names[split]);
    if (rc)
        return read_fail(err, s->path, "read", rc);
    return 0;
}

void dsk_shard_close(dsk_shard *s)
{
    if (s->env)
        mdb_env_close(s->env);
    free(s->path);
    memset(s, 0, sizeof *s);
}
