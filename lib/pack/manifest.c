#include "pack/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/reader.h"

#define MAX_MANIFEST_BYTES (64u << 20)

static const char *const stat_names[] = {"documents", "document_tokens", "rows", "row_tokens",
                                         "padding",   "cropped",         "cut_documents"};

static uint64_t *stat_field(dsk_pack_stats *s, int i)
{
    uint64_t *f[] = {&s->documents, &s->document_tokens, &s->rows, &s->row_tokens,
                     &s->padding,   &s->cropped,         &s->cut_documents};
    return f[i];
}

void dsk_manifest_write(const dsk_manifest *m, dsk_buf *out)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "format", json_object_new_string(DSK_DATASET_FORMAT));
    json_object_object_add(o, "version", json_object_new_int(DSK_DATASET_VERSION));
    json_object_object_add(o, "kind", json_object_new_string(dsk_kind_name(m->kind)));
    json_object_object_add(o, "pack", json_object_new_string(dsk_pack_mode_name(m->kind, m->pack_mode)));
    json_object_object_add(o, "seq_len", json_object_new_int64(m->seq_len));
    json_object_object_add(o, "row_tokens", json_object_new_int64(m->row_tokens));
    json_object_object_add(o, "vocab_size", json_object_new_int64(m->vocab_size));
    json_object_object_add(o, "token_bytes", json_object_new_int64(m->token_bytes));
    json_object_object_add(o, "eot_id", json_object_new_int64(m->eot));
    json_object_object_add(o, "tokenizer_fingerprint", json_object_new_string(m->fingerprint));
    json_object_object_add(o, "tokenizer", m->tokenizer ? json_object_new_string(m->tokenizer) : NULL);
    json_object_object_add(o, "zstd_level", json_object_new_int(m->zstd_level));
    json_object_object_add(o, "zstd_dict_bytes", json_object_new_int64(m->dict_bytes));
    struct json_object *rows = json_object_new_object(), *stats = json_object_new_object();
    for (int s = 0; s < DSK_SPLITS; s++) {
        json_object_object_add(rows, dsk_split_names[s], json_object_new_int64((int64_t)m->rows[s]));
        struct json_object *st = json_object_new_object();
        dsk_pack_stats copy = m->stats[s];
        for (int i = 0; i < 7; i++)
            json_object_object_add(st, stat_names[i], json_object_new_int64((int64_t)*stat_field(&copy, i)));
        json_object_object_add(stats, dsk_split_names[s], st);
    }
    json_object_object_add(o, "rows", rows);
    if (m->no_stats)   /* not made up as zeros that contradict the rows */
        json_object_put(stats);
    else
        json_object_object_add(o, "stats", stats);
    struct json_object *shards = json_object_new_array();
    for (size_t i = 0; i < m->n_shards; i++) {
        const dsk_shard_info *sh = &m->shards[i];
        struct json_object *j = json_object_new_object(), *r = json_object_new_object();
        json_object_object_add(j, "file", json_object_new_string(sh->file));
        json_object_object_add(j, "bytes", json_object_new_int64((int64_t)sh->bytes));
        for (int s = 0; s < DSK_SPLITS; s++)
            json_object_object_add(r, dsk_split_names[s], json_object_new_int64((int64_t)sh->rows[s]));
        json_object_object_add(j, "rows", r);
        json_object_array_add(shards, j);
    }
    json_object_object_add(o, "shards", shards);
    json_object_object_add(o, "created_by", json_object_new_string(m->created_by ? m->created_by : ""));
    json_object_object_add(o, "command", json_object_new_string(m->command ? m->command : ""));
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                          JSON_C_TO_STRING_NOSLASHESCAPE);
    dsk_buf_adds(out, s);
    dsk_buf_addc(out, '\n');
    json_object_put(o);
}

/* Field readers: each fails with the field's name. */
static int get_u64(struct json_object *o, const char *key, uint64_t max, uint64_t *v, const char *name, dsk_err *err)
{
    struct json_object *j;
    if (!json_object_object_get_ex(o, key, &j) || !dsk_json_is(j, json_type_int))
        return dsk_fail(err, EX_DATAERR, "%s: \"%s\" must be an integer", name, key);
    int64_t x = json_object_get_int64(j);
    if (x < 0 || (uint64_t)x > max)
        return dsk_fail(err, EX_DATAERR, "%s: \"%s\" is out of range (%" PRId64 ")", name, key, x);
    *v = (uint64_t)x;
    return 0;
}

static int get_u32(struct json_object *o, const char *key, uint32_t max, uint32_t *v, const char *name, dsk_err *err)
{
    uint64_t x;
    int rc = get_u64(o, key, max, &x, name, err);
    if (!rc)
        *v = (uint32_t)x;
    return rc;
}

static const char *get_str(struct json_object *o, const char *key)
{
    struct json_object *j = dsk_json_get_string(o, key);
    return j ? json_object_get_string(j) : NULL;
}

static int valid_shard_name(const char *s)
{
    if (strlen(s) != 15 || strncmp(s, "shard-", 6) != 0 || strcmp(s + 11, ".mdb") != 0)
        return 0;
    for (int i = 6; i < 11; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int is_hex32(const char *s)
{
    if (!s || strlen(s) != 32)
        return 0;
    for (int i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

static int parse_fields(dsk_manifest *m, struct json_object *o, const char *name, dsk_err *err)
{
    if (!dsk_json_is(o, json_type_object))
        return dsk_fail(err, EX_DATAERR, "%s: not a JSON object", name);
    const char *format = get_str(o, "format");
    if (!format || strcmp(format, DSK_DATASET_FORMAT) != 0)
        return dsk_fail(err, EX_DATAERR, "%s: \"format\" is not \"%s\"", name, DSK_DATASET_FORMAT);
    uint32_t version;
    int rc = get_u32(o, "version", 1000, &version, name, err);
    if (rc)
        return rc;
    if (version != DSK_DATASET_VERSION)
        return dsk_fail(err, EX_DATAERR, "%s: dataset version %u (this dsk reads version %d)", name, version,
                        DSK_DATASET_VERSION);
    const char *kind = get_str(o, "kind"), *pack = get_str(o, "pack");
    m->kind = !kind ? 0 : strcmp(kind, "pretrain") == 0 ? DSK_KIND_PRETRAIN : strcmp(kind, "sft") == 0 ? DSK_KIND_SFT
              : strcmp(kind, "dpo") == 0 ? DSK_KIND_DPO : 0;
    if (!m->kind)
        return dsk_fail(err, EX_DATAERR, "%s: \"kind\" must be pretrain, sft or dpo", name);
    m->pack_mode = pack && strcmp(pack, "bestfit") == 0 ? DSK_PACK_BESTFIT : DSK_PACK_CONCAT;
    if (!pack || strcmp(pack, dsk_pack_mode_name(m->kind, m->pack_mode)) != 0)
        return dsk_fail(err, EX_DATAERR, "%s: \"pack\" does not fit kind %s", name, kind);
    uint32_t level = 0;
    if ((rc = get_u32(o, "seq_len", DSK_ROW_MAX_TOKENS / 2 - 1, &m->seq_len, name, err)) ||
        (rc = get_u32(o, "row_tokens", DSK_ROW_MAX_TOKENS, &m->row_tokens, name, err)) ||
        (rc = get_u32(o, "vocab_size", 1u << 24, &m->vocab_size, name, err)) ||
        (rc = get_u32(o, "token_bytes", 4, &m->token_bytes, name, err)) ||
        (rc = get_u32(o, "eot_id", 1u << 24, &m->eot, name, err)) ||
        (rc = get_u32(o, "zstd_level", 22, &level, name, err)) ||
        (rc = get_u32(o, "zstd_dict_bytes", 1u << 24, &m->dict_bytes, name, err)))
        return rc;
    m->zstd_level = (int)level;
    uint32_t want_row = (m->seq_len + 1) * (m->kind == DSK_KIND_DPO ? 2 : 1);
    if (m->seq_len < 1 || m->row_tokens != want_row)
        return dsk_fail(err, EX_DATAERR, "%s: \"row_tokens\" %u does not fit \"seq_len\" %u", name, m->row_tokens,
                        m->seq_len);
    if ((m->token_bytes != 2 && m->token_bytes != 4) || m->vocab_size < 1 ||
        (m->token_bytes == 2 && m->vocab_size > 65536) || m->eot >= m->vocab_size)
        return dsk_fail(err, EX_DATAERR, "%s: vocab_size, token_bytes and eot_id do not agree", name);
    const char *fp = get_str(o, "tokenizer_fingerprint");
    if (!is_hex32(fp))
        return dsk_fail(err, EX_DATAERR, "%s: \"tokenizer_fingerprint\" must be 32 hex digits", name);
    memcpy(m->fingerprint, fp, 33);
    const char *tok = get_str(o, "tokenizer");
    if (tok) {
        if (strcmp(tok, "tokenizer.json") != 0)
            return dsk_fail(err, EX_DATAERR, "%s: \"tokenizer\" must be \"tokenizer.json\"", name);
        m->tokenizer = dsk_xstrdup(tok);
    }
    const char *cmd = get_str(o, "command"), *by = get_str(o, "created_by");
    m->command = dsk_xstrdup(cmd ? cmd : "");
    m->created_by = dsk_xstrdup(by ? by : "");

    struct json_object *rows, *stats, *shards;
    if (!json_object_object_get_ex(o, "rows", &rows) || !dsk_json_is(rows, json_type_object))
        return dsk_fail(err, EX_DATAERR, "%s: \"rows\" must be an object", name);
    int have_stats = json_object_object_get_ex(o, "stats", &stats) && dsk_json_is(stats, json_type_object);
    m->no_stats = !have_stats;
    for (int s = 0; s < DSK_SPLITS; s++) {
        if ((rc = get_u64(rows, dsk_split_names[s], UINT64_MAX >> 1, &m->rows[s], name, err)))
            return rc;
        struct json_object *st;
        if (have_stats && json_object_object_get_ex(stats, dsk_split_names[s], &st) &&
            dsk_json_is(st, json_type_object))
            for (int i = 0; i < 7; i++)
                if ((rc = get_u64(st, stat_names[i], UINT64_MAX >> 1, stat_field(&m->stats[s], i), name, err)))
                    return rc;
    }
    if (!json_object_object_get_ex(o, "shards", &shards) || !dsk_json_is(shards, json_type_array) ||
        json_object_array_length(shards) < 1 || json_object_array_length(shards) > DSK_MAX_SHARDS)
        return dsk_fail(err, EX_DATAERR, "%s: \"shards\" must be a list of 1 to %d shards", name, DSK_MAX_SHARDS);
    m->n_shards = json_object_array_length(shards);
    m->shards = dsk_xcalloc(m->n_shards, sizeof *m->shards);
    uint64_t next[DSK_SPLITS] = {0};
    for (size_t i = 0; i < m->n_shards; i++) {
        struct json_object *j = json_object_array_get_idx(shards, i), *r;
        dsk_shard_info *sh = &m->shards[i];
        const char *file = dsk_json_is(j, json_type_object) ? get_str(j, "file") : NULL;
        if (!file || !valid_shard_name(file))
            return dsk_fail(err, EX_DATAERR, "%s: shard %zu: \"file\" must be shard-NNNNN.mdb", name, i);
        snprintf(sh->file, sizeof sh->file, "%s", file);
        if ((rc = get_u64(j, "bytes", UINT64_MAX >> 1, &sh->bytes, name, err)))
            return rc;
        if (!json_object_object_get_ex(j, "rows", &r) || !dsk_json_is(r, json_type_object))
            return dsk_fail(err, EX_DATAERR, "%s: shard %zu: \"rows\" must be an object", name, i);
        for (int s = 0; s < DSK_SPLITS; s++) {
            if ((rc = get_u64(r, dsk_split_names[s], UINT64_MAX >> 1, &sh->rows[s], name, err)))
                return rc;
            sh->first[s] = next[s];
            next[s] += sh->rows[s];
            if (next[s] > m->rows[s])
                return dsk_fail(err, EX_DATAERR, "%s: the shards hold more %s rows than \"rows\" says", name,
                                dsk_split_names[s]);
        }
    }
    for (int s = 0; s < DSK_SPLITS; s++)
        if (next[s] != m->rows[s])
            return dsk_fail(err, EX_DATAERR, "%s: the shards hold %" PRIu64 " %s rows, \"rows\" says %" PRIu64,
                            name, next[s], dsk_split_names[s], m->rows[s]);
    return 0;
}

int dsk_manifest_parse(dsk_manifest *m, const char *text, size_t len, const char *name, dsk_err *err)
{
    memset(m, 0, sizeof *m);
    char msg[256];
    struct json_object *o = dsk_json_parse(text, len, msg, sizeof msg);
    if (!o)
        return dsk_fail(err, EX_DATAERR, "%s: not valid JSON: %s", name, msg);
    int rc = parse_fields(m, o, name, err);
    json_object_put(o);
    if (rc)
        dsk_manifest_free(m);
    return rc;
}

int dsk_manifest_present(const char *dir, dsk_err *err)
{
    char *path = dsk_path_join(dir, "MANIFEST");
    int rc = 0;
    if (access(path, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR)) {
        int not_dir = errno == ENOTDIR;
        rc = not_dir ? dsk_fail(err, EX_NOINPUT, "%s: not a directory: a dataset is the directory dsk-pack wrote", dir)
             : access(dir, F_OK) != 0 ? dsk_fail(err, EX_NOINPUT, "%s: no such dataset", dir)
                                      : dsk_fail(err, EX_NOINPUT, "%s: no MANIFEST: not a dataset, or an incomplete one", dir);
    }
    free(path);
    return rc;
}

int dsk_manifest_load(dsk_manifest *m, const char *dir, dsk_err *err)
{
    memset(m, 0, sizeof *m);
    int rc = dsk_manifest_present(dir, err);
    if (rc)
        return rc;
    size_t n = strlen(dir) + 16;
    char *path = dsk_xmalloc(n);
    snprintf(path, n, "%s/MANIFEST", dir);
    dsk_buf b = {0};
    rc = dsk_read_regular_file(path, MAX_MANIFEST_BYTES, &b, err);
    if (!rc)
        rc = dsk_manifest_parse(m, b.data ? b.data : "", b.len, path, err);
    dsk_buf_free(&b);
    free(path);
    return rc;
}

void dsk_manifest_free(dsk_manifest *m)
{
    free(m->shards);
    free(m->tokenizer);
    free(m->command);
    free(m->created_by);
    memset(m, 0, sizeof *m);
}
