#include "pack/verify.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe/formats.h"
#include "bpe/tokenizer.h"
#include "core/digest.h"
#include "core/fileio.h"
#include "core/reader.h"
#include "pack/dataset.h"

/* Checks each "HEX  NAME" line of MD5SUMS, and that it names every file. */
static int check_sums(const char *dir, dsk_verify_report *rep, dsk_err *err)
{
    size_t n = strlen(dir) + 16;
    char *path = dsk_xmalloc(n);
    snprintf(path, n, "%s/MD5SUMS", dir);
    dsk_reader rd;
    int rc = dsk_reader_open(&rd, path, 4096, err);
    int opened = rc == 0;
    if (rc == EX_NOINPUT && access(dir, F_OK) != 0)
        rc = dsk_fail(err, EX_NOINPUT, "%s: no such dataset", dir);
    else if (rc == EX_NOINPUT)
        rc = dsk_fail(err, EX_DATAERR, "%s: no MD5SUMS: the dataset is incomplete", dir);
    char **listed = NULL;
    size_t n_listed = 0;
    const char *line;
    size_t len;
    while (!rc && (rc = dsk_reader_next(&rd, '\n', &line, &len, err)) == 1) {
        rc = 0;
        if (len && line[len - 1] == '\r')   /* CRLF lines and upper-case digits, as md5sum -c takes them */
            len--;
        /* "HEX  NAME", or "HEX *NAME" as md5sum -b writes it */
        if (len < 35 || line[32] != ' ' || (line[33] != ' ' && line[33] != '*') || memchr(line + 34, '/', len - 34) ||
            (len == 35 && line[34] == '.') || n_listed > 100010) {
            rc = dsk_fail(err, EX_DATAERR, "%s:%llu: not a 'HEX  NAME' line", path,
                          (unsigned long long)rd.record_no);
            break;
        }
        char *name = dsk_xstrndup(line + 34, len - 34), want[33], got[33];
        for (int i = 0; i < 32; i++)
            want[i] = (char)(line[i] >= 'A' && line[i] <= 'F' ? line[i] + 32 : line[i]);
        want[32] = '\0';
        for (size_t i = 0; i < n_listed && !rc; i++)
            if (strcmp(listed[i], name) == 0)
                rc = dsk_fail(err, EX_DATAERR, "%s:%llu: %s is listed twice", path, (unsigned long long)rd.record_no,
                              name);
        if (rc) {
            free(name);
            break;
        }
        listed = dsk_xrealloc(listed, (n_listed + 1) * sizeof *listed);
        listed[n_listed++] = name;
        size_t m = strlen(dir) + strlen(name) + 2;
        char *file = dsk_xmalloc(m);
        snprintf(file, m, "%s/%s", dir, name);
        rc = dsk_md5_file(file, got, err);
        if (rc == EX_NOINPUT && access(file, F_OK) != 0)   /* (not one that cannot be read: its own message) */
            rc = dsk_fail(err, EX_DATAERR, "%s: listed in MD5SUMS but missing", file);
        else if (!rc && strcmp(got, want) != 0)
            rc = dsk_fail(err, EX_DATAERR, "%s: MD5 mismatch (the file is damaged)", file);
        free(file);
        rep->files++;
    }
    if (rc == 1)
        rc = 0;
    if (opened)
        dsk_reader_close(&rd);
    DIR *d = rc ? NULL : opendir(dir);
    struct dirent *e;
    while (d && !rc && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "MD5SUMS") == 0)
            continue;
        int found = 0;
        for (size_t i = 0; i < n_listed && !found; i++)
            found = strcmp(listed[i], e->d_name) == 0;
        if (!found)
            rc = dsk_fail(err, EX_DATAERR, "%s/%s: not listed in MD5SUMS", dir, e->d_name);
    }
    if (d)
        closedir(d);
    for (size_t i = 0; i < n_listed; i++)
        free(listed[i]);
    free(listed);
    free(path);
    return rc;
}

/* tokenizer.json is the one the MANIFEST names by fingerprint (the other
 * tools refuse it otherwise, or train a model its tokenizer does not fit). */
static int check_tokenizer(const dsk_dataset *ds, dsk_err *err)
{
    char *path = dsk_path_join(ds->dir, "tokenizer.json");
    dsk_tokenizer t;
    dsk_tokenizer_init(&t);
    int rc = dsk_bpe_load_json_regular(&t, path, err);
    char got[33];
    if (!rc) {
        dsk_tokenizer_fingerprint(&t, got);
        if (strcmp(got, ds->m.fingerprint) != 0)
            rc = dsk_fail(err, EX_DATAERR, "%s: tokenizer %s, the MANIFEST says %s", path, got, ds->m.fingerprint);
        else if (t.n_vocab != ds->m.vocab_size)
            rc = dsk_fail(err, EX_DATAERR, "%s: %u tokens, the MANIFEST's vocab_size is %u", path, t.n_vocab,
                          ds->m.vocab_size);
    }
    dsk_tokenizer_free(&t);
    free(path);
    return rc;
}

/* A row's header agrees with the MANIFEST: its token width, and stored
 * (RAW) exactly when zstd_level is 0. */
static int check_row_header(dsk_dataset_reader *r, const dsk_dataset *ds, int split, uint64_t i, dsk_err *err)
{
    const void *v;
    size_t len;
    int rc = dsk_dataset_raw(r, split, i, &v, &len, err);
    if (rc || len < DSK_ROW_HEADER_BYTES)
        return rc;   /* (a short row is the decoder's to report) */
    const uint8_t *h = v;
    int raw = (h[1] & DSK_ROW_RAW) != 0;
    if (h[2] != ds->m.token_bytes)
        return dsk_fail(err, EX_DATAERR, "%s: %s row %llu has %u-byte tokens, the MANIFEST says %u", ds->dir,
                        dsk_split_names[split], (unsigned long long)i, h[2], ds->m.token_bytes);
    if (raw != (ds->m.zstd_level == 0))
        return dsk_fail(err, EX_DATAERR, "%s: %s row %llu is %s, but the MANIFEST's zstd_level is %d", ds->dir,
                        dsk_split_names[split], (unsigned long long)i, raw ? "stored raw" : "compressed",
                        ds->m.zstd_level);
    return 0;
}

int dsk_dataset_verify(const char *dir, dsk_verify_report *rep, dsk_err *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = dsk_manifest_present(dir, err);   /* not a dataset at all: 66, as info says */
    if (rc)
        return rc;
    rc = check_sums(dir, rep, err);
    if (rc)
        return rc;
    dsk_dataset ds;
    if ((rc = dsk_dataset_open(&ds, dir, err)))
        return rc;
    rep->shards = ds.m.n_shards;
    dsk_dataset_reader r;
    dsk_dataset_reader_init(&r, &ds);
    dsk_row row = {0};
    void *txn0 = NULL;
    const void *dict0 = NULL;
    size_t dict0_len = 0;
    if (ds.m.dict_bytes && !(rc = dsk_shard_begin(&ds.shards[0], &txn0, err)))
        rc = dsk_shard_get(&ds.shards[0], txn0, -1, 0, "zstd_dict", &dict0, &dict0_len, err);
    for (size_t i = 1; i < ds.m.n_shards && !rc && ds.m.dict_bytes; i++) {  /* one dictionary in every shard */
        const void *v;
        size_t len;
        void *txn;
        if (!(rc = dsk_shard_begin(&ds.shards[i], &txn, err))) {
            rc = dsk_shard_get(&ds.shards[i], txn, -1, 0, "zstd_dict", &v, &len, err);
            if (!rc && (len != dict0_len || memcmp(v, dict0, len) != 0))
                rc = dsk_fail(err, EX_DATAERR, "%s/%s: a different zstd dictionary", dir, ds.m.shards[i].file);
            dsk_shard_end(txn);
        }
    }
    dsk_shard_end(txn0);
    if (!rc)
        rc = check_tokenizer(&ds, err);
    for (int s = 0; s < DSK_SPLITS && !rc; s++) {
        for (uint64_t i = 0; i < ds.m.rows[s] && !rc; i++) {
            rc = check_row_header(&r, &ds, s, i, err);
            if (!rc)
                rc = dsk_dataset_read(&r, s, i, &row, err);
            if (!rc && ds.m.kind == DSK_KIND_DPO && (!(row.flags & DSK_ROW_PAIR) || row.split != row.n_tokens / 2))
                rc = dsk_fail(err, EX_DATAERR, "%s: %s row %llu is not a preference pair", dir, dsk_split_names[s],
                              (unsigned long long)i);
            rep->rows++;
            rep->tokens += row.n_tokens;
        }
    }
    dsk_row_free(&row);
    dsk_dataset_reader_free(&r);
    dsk_dataset_close(&ds);
    return rc;
}
