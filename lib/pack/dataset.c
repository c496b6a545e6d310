#include "pack/dataset.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "core/json.h"

/* Checks a shard's own record (meta "shard") against the manifest. */
static int check_shard_meta(dsk_dataset *ds, size_t i, void *txn, dsk_err *err)
{
    dsk_shard *sh = &ds->shards[i];
    const dsk_shard_info *info = &ds->m.shards[i];
    const void *v;
    size_t len;
    int rc = dsk_shard_get(sh, txn, -1, 0, "shard", &v, &len, err);
    if (rc)
        return rc;
    char msg[128];
    struct json_object *o = dsk_json_parse(v, len, msg, sizeof msg), *j;
    rc = !o || !dsk_json_is(o, json_type_object);
    if (!rc) {
        struct json_object *fp = dsk_json_get_string(o, "tokenizer_fingerprint");
        rc = !json_object_object_get_ex(o, "shard", &j) || json_object_get_int64(j) != (int64_t)i || !fp ||
             strcmp(json_object_get_string(fp), ds->m.fingerprint) != 0;
    }
    for (int s = 0; s < DSK_SPLITS && !rc; s++) {
        rc = !json_object_object_get_ex(o, dsk_split_names[s], &j) || !dsk_json_is(j, json_type_array) ||
             json_object_array_length(j) != 2 ||
             json_object_get_int64(json_object_array_get_idx(j, 0)) != (int64_t)info->first[s] ||
             json_object_get_int64(json_object_array_get_idx(j, 1)) != (int64_t)info->rows[s];
        uint64_t rows, first, last;
        if (!rc && (rc = dsk_shard_range(sh, txn, s, &rows, &first, &last, err)) != 0) {
            json_object_put(o);
            return rc;
        }
        rc = rc || rows != info->rows[s] || (rows && (first != info->first[s] || last != first + rows - 1));
    }
    json_object_put(o);
    return rc ? dsk_fail(err, EX_DATAERR, "%s/%s: the shard does not match the MANIFEST", ds->dir, info->file) : 0;
}

static int load_dictionary(dsk_dataset *ds, void *txn, dsk_err *err)
{
    if (!ds->m.dict_bytes)
        return 0;
    const void *v;
    size_t len;
    int rc = dsk_shard_get(&ds->shards[0], txn, -1, 0, "zstd_dict", &v, &len, err);
    if (rc)
        return rc;
    if (len != ds->m.dict_bytes)
        return dsk_fail(err, EX_DATAERR, "%s: the dictionary is %zu bytes, the MANIFEST says %u", ds->dir, len,
                        ds->m.dict_bytes);
    ds->ddict = ZSTD_createDDict(v, len);
    if (!ds->ddict)
        return dsk_fail(err, EX_DATAERR, "%s: the zstd dictionary is not valid", ds->dir);
    return 0;
}

int dsk_dataset_open(dsk_dataset *ds, const char *dir, dsk_err *err)
{
    memset(ds, 0, sizeof *ds);
    ds->dir = dsk_xstrdup(dir);
    int rc = dsk_manifest_load(&ds->m, dir, err);
    if (rc) {
        dsk_dataset_close(ds);
        return rc;
    }
    ds->shards = dsk_xcalloc(ds->m.n_shards, sizeof *ds->shards);
    for (size_t i = 0; i < ds->m.n_shards && !rc; i++) {
        size_t n = strlen(dir) + strlen(ds->m.shards[i].file) + 2;
        char *path = dsk_xmalloc(n);
        snprintf(path, n, "%s/%s", dir, ds->m.shards[i].file);
        /* The size the MANIFEST records: a shard cut short (an interrupted
         * copy) is found before LMDB maps it, which would die of SIGBUS. */
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size != ds->m.shards[i].bytes)
            rc = dsk_fail(err, EX_DATAERR, "%s: %lld bytes, the MANIFEST says %llu (cut short, or changed)", path,
                          (long long)sb.st_size, (unsigned long long)ds->m.shards[i].bytes);
        if (!rc)
            rc = dsk_shard_open(&ds->shards[i], path, err);
        free(path);
        void *txn = NULL;
        if (!rc)
            rc = dsk_shard_begin(&ds->shards[i], &txn, err);
        if (!rc)
            rc = check_shard_meta(ds, i, txn, err);
        if (!rc && i == 0)
            rc = load_dictionary(ds, txn, err);
        dsk_shard_end(txn);
    }
    if (rc)
        dsk_dataset_close(ds);
    return rc;
}

int dsk_dataset_check_tokenizer(const dsk_dataset *ds, const char *fingerprint_hex, uint32_t vocab_size,
                                dsk_err *err)
{
    if (strcmp(ds->m.fingerprint, fingerprint_hex) != 0)
        return dsk_fail(err, EX_DATAERR, "%s: made with tokenizer %s, not %s", ds->dir, ds->m.fingerprint,
                        fingerprint_hex);
    if (ds->m.vocab_size != vocab_size)
        return dsk_fail(err, EX_DATAERR, "%s: vocab size %u, not %u", ds->dir, ds->m.vocab_size, vocab_size);
    return 0;
}

void dsk_dataset_close(dsk_dataset *ds)
{
    for (size_t i = 0; ds->shards && i < ds->m.n_shards; i++)
        dsk_shard_close(&ds->shards[i]);
    free(ds->shards);
    ZSTD_freeDDict(ds->ddict);
    dsk_manifest_free(&ds->m);
    free(ds->dir);
    memset(ds, 0, sizeof *ds);
}

void dsk_dataset_reader_init(dsk_dataset_reader *r, const dsk_dataset *ds)
{
    memset(r, 0, sizeof *r);
    r->ds = ds;
    r->txns = dsk_xcalloc(ds->m.n_shards, sizeof *r->txns);
    r->codec.ddict = ds->ddict;
}

void dsk_dataset_reader_free(dsk_dataset_reader *r)
{
    for (size_t i = 0; r->txns && i < r->ds->m.n_shards; i++)
        dsk_shard_end(r->txns[i]);
    free(r->txns);
    dsk_row_codec_free(&r->codec);
    memset(r, 0, sizeof *r);
}

int dsk_dataset_raw(dsk_dataset_reader *r, int split, uint64_t index, const void **value, size_t *len,
                    dsk_err *err)
{
    const dsk_manifest *m = &r->ds->m;
    if (split < 0 || split >= DSK_SPLITS || index >= m->rows[split])
        return dsk_fail(err, EX_USAGE, "%s: no %s row %llu (it has %llu)", r->ds->dir,
                        split >= 0 && split < DSK_SPLITS ? dsk_split_names[split] : "?", (unsigned long long)index,
                        split >= 0 && split < DSK_SPLITS ? (unsigned long long)m->rows[split] : 0ull);
    /* The last shard whose first row is <= index.  It holds the row: a shard
     * without rows of this split has the same first row as the next one, and
     * the manifest check makes the counts add up to rows[split]. */
    size_t lo = 0, hi = m->n_shards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (m->shards[mid].first[split] <= index)
            lo = mid;
        else
            hi = mid;
    }
    if (!r->txns[lo]) {
        int rc = dsk_shard_begin(&r->ds->shards[lo], &r->txns[lo], err);
        if (rc)
            return rc;
    }
    return dsk_shard_get(&r->ds->shards[lo], r->txns[lo], split, index, NULL, value, len, err);
}

int dsk_dataset_read(dsk_dataset_reader *r, int split, uint64_t index, dsk_row *row, dsk_err *err)
{
    const void *v;
    size_t len;
    int rc = dsk_dataset_raw(r, split, index, &v, &len, err);
    if (!rc && (rc = dsk_row_decode(&r->codec, v, len, r->ds->m.vocab_size, row, err)) != 0) {
        char why[sizeof err->msg];
        memcpy(why, err->msg, sizeof why);
        return dsk_fail(err, rc, "%s: %s row %llu: %s", r->ds->dir, dsk_split_names[split],
                        (unsigned long long)index, why);
    }
    if (!rc && row->n_tokens != r->ds->m.row_tokens)
        return dsk_fail(err, EX_DATAERR, "%s: %s row %llu has %u tokens, not %u", r->ds->dir,
                        dsk_split_names[split], (unsigned long long)index, row->n_tokens, r->ds->m.row_tokens);
    return rc;
}
