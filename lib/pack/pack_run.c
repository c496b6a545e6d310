#include "pack/pack_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
/* ZDICT_trainFromBuffer_fastCover and its parameters: zstd's experimental
 * API, used only with the library version built against (fast_cover_ok). */
#define ZDICT_STATIC_LINKING_ONLY
#include <zdict.h>
#include <zstd.h>

#include "bpe/dskt.h"
#include "bpe/formats.h"
#include "core/fileio.h"
#include "core/cli.h"
#include "core/digest.h"
#include "core/ordered.h"
#include "core/outfile.h"
#include "core/progress.h"
#include "core/tempdir.h"
#include "pack/shard.h"

#define BATCH_ROWS 256
#define MAX_DICT_BYTES (110u << 10)

/* Rows as the packer emits them, back to back, before compression. */
typedef struct row_ref {
    int split;
    unsigned flags;
    uint32_t n, nb, pair_split;
    size_t tok, msk, bnd;  /* offsets in tokens and bounds (elements) and masks (bytes) */
} row_ref;

typedef struct batch {
    row_ref *rows;
    size_t n_rows, cap_rows;
    dsk_buf tokens, masks, bounds;
    dsk_buf out;      /* encoded values back to back */
    size_t *ends;
    size_t cap_ends;
    int rc;
    dsk_err err;
} batch;

typedef struct run {
    const dsk_pack_run_opts *o;
    const char *const *inputs;
    size_t n_inputs, next_input;
    FILE *f;
    dskt_reader reader;
    int reader_open, input_done;
    dskt_record rec;
    dsk_packer *packer;
    batch *cur;         /* where emitted rows go */
    batch prefix;       /* rows packed before the dictionary was trained */
    int prefix_pending;
    unsigned token_bytes;
    char fingerprint[33];
    dsk_row_codec *codecs;
    void *cdict;
    dsk_buf dict;
    /* output */
    dsk_tempdir dir;
    dsk_shard shard;
    int shard_open;
    dsk_manifest *m;
    uint64_t next_index[DSK_SPLITS];
    uint64_t bytes_in, total_in;
    uint64_t docs_in;            /* records of the inputs already closed */
    dsk_progress progress;
    dsk_err err;
} run;

/* ---- batches --------------------------------------------------------------------- */

static void batch_reset(batch *b)
{
    b->n_rows = 0;
    dsk_buf_clear(&b->tokens), dsk_buf_clear(&b->masks), dsk_buf_clear(&b->bounds), dsk_buf_clear(&b->out);
    b->rc = 0;
}

static void batch_free(batch *b)
{
    free(b->rows);
    free(b->ends);
    dsk_buf_free(&b->tokens), dsk_buf_free(&b->masks), dsk_buf_free(&b->bounds), dsk_buf_free(&b->out);
    memset(b, 0, sizeof *b);
}

static int emit(void *ctx, int split, const dsk_row *row, dsk_err *err)
{
    batch *b = ((run *)ctx)->cur;
    if (b->n_rows == b->cap_rows) {
        b->cap_rows = b->cap_rows ? 2 * b->cap_rows : BATCH_ROWS;
        b->rows = dsk_xrealloc(b->rows, b->cap_rows * sizeof *b->rows);
    }
    uint32_t nb = (row->flags & DSK_ROW_BOUNDARIES) ? row->n_boundaries : 0;
    b->rows[b->n_rows++] = (row_ref){split, row->flags, row->n_tokens, nb, row->split,
                                     b->tokens.len / sizeof(uint32_t), b->masks.len, b->bounds.len / sizeof(uint32_t)};
    dsk_buf_add(&b->tokens, row->tokens, (size_t)row->n_tokens * sizeof *row->tokens);
    if (row->flags & DSK_ROW_MASK)  /* rows without the flag train on every token */
        dsk_buf_add(&b->masks, row->mask, row->n_tokens);
    dsk_buf_add(&b->bounds, row->boundaries, (size_t)nb * sizeof *row->boundaries);
    return 0;
}

static dsk_row row_view(const batch *b, size_t i)
{
    const row_ref *r = &b->rows[i];
    dsk_row v = {0};
    v.tokens = (uint32_t *)b->tokens.data + r->tok;
    v.mask = (uint8_t *)b->masks.data + r->msk;
    v.boundaries = (uint32_t *)b->bounds.data + r->bnd;
    v.n_tokens = r->n, v.n_boundaries = r->nb, v.split = r->pair_split, v.flags = r->flags;
    return v;
}

/* ---- input ------------------------------------------------------------------------ */

static int open_next_input(run *r)
{
    const char *path = r->inputs[r->next_input++];
    int is_stdin = strcmp(path, "-") == 0;
    r->f = is_stdin ? stdin : fopen(path, "rb");
    if (!r->f)
        return dsk_fail(&r->err, EX_NOINPUT, "%s: %s", path, strerror(errno));
    if (!is_stdin)   /* records average a few hundred bytes: read 1 MiB at a time, not stdio's 4 KiB */
        setvbuf(r->f, NULL, _IOFBF, (size_t)1 << 20);
    int rc = dskt_reader_open(&r->reader, r->f, is_stdin ? "(stdin)" : path, &r->err);
    if (rc)
        return rc;
    r->reader_open = 1;
    char got[33];
    dskt_fingerprint_hex(r->reader.h.fingerprint, got);
    if (strcmp(got, r->fingerprint) != 0)
        return dsk_fail(&r->err, EX_DATAERR,
                        "%s: made with tokenizer %s, but the tokenizer given is %s; refusing to mix them",
                        r->reader.name, got, r->fingerprint);
    if (r->reader.h.vocab_size != r->o->tokenizer->n_vocab)
        return dsk_fail(&r->err, EX_DATAERR, "%s: vocab size %u, the tokenizer's is %u", r->reader.name,
                        r->reader.h.vocab_size, r->o->tokenizer->n_vocab);
    return 0;
}

static void close_input(run *r)
{
    if (r->reader_open)
        dskt_reader_close(&r->reader);
    if (r->f && r->f != stdin)
        fclose(r->f);
    r->f = NULL;
    r->reader_open = 0;
}

/* Packs records until the current batch holds enough rows (or payload
 * bytes, for the dictionary sample); 0 when there is more input. */
static int pack_until(run *r, size_t rows, size_t token_bytes)
{
    while (!r->input_done && r->cur->n_rows < rows && r->cur->tokens.len < token_bytes) {
        if (!r->reader_open) {
            if (r->next_input == r->n_inputs) {
                r->input_done = 1;
                return dsk_packer_finish(r->packer, &r->err);
            }
            int rc = open_next_input(r);
            if (rc)
                return rc;
        }
        int got = dskt_read(&r->reader, &r->rec, &r->err);
        if (got < 0 || got > 1)
            return got;
        if (got == 0) {
            r->bytes_in += r->reader.offset;
            r->docs_in += r->reader.records;
            close_input(r);
            continue;
        }
        int rc = dsk_packer_add(r->packer, &r->rec, &r->err);
        if (rc) {
            char why[sizeof r->err.msg];
            memcpy(why, r->err.msg, sizeof why);
            return dsk_fail(&r->err, rc, "%s: record %llu: %s", r->reader.name,
                            (unsigned long long)r->reader.records, why);
        }
    }
    return 0;
}

/* ---- the ordered pipeline ----------------------------------------------------------- */

static int produce(void *ctx, void *bp)
{
    run *r = ctx;
    batch *b = bp;
    batch_reset(b);
    if (r->prefix_pending) {
        batch t = *b;
        *b = r->prefix;
        r->prefix = t;
        r->prefix_pending = 0;
        return b->n_rows > 0 || !r->input_done ? 1 : 0;
    }
    r->cur = b;
    int rc = pack_until(r, BATCH_ROWS, SIZE_MAX);
    if (rc)
        return -1;
    return b->n_rows > 0 ? 1 : 0;
}

static void work(void *ctx, void *bp, int worker)
{
    run *r = ctx;
    batch *b = bp;
    if (b->cap_ends < b->n_rows) {
        b->cap_ends = b->n_rows;
        b->ends = dsk_xrealloc(b->ends, b->cap_ends * sizeof *b->ends);
    }
    for (size_t i = 0; i < b->n_rows && !b->rc; i++) {
        dsk_row v = row_view(b, i);
        b->rc = dsk_row_encode(&r->codecs[worker], &v, r->token_bytes, &b->out, &b->err);
        b->ends[i] = b->out.len;
    }
}

static int put_shard_meta(run *r)
{
    dsk_shard_info *sh = &r->m->shards[r->m->n_shards - 1];
    dsk_buf j = {0};
    dsk_buf_printf(&j, "{\"format\": \"%s\", \"version\": %d, \"shard\": %zu, \"tokenizer_fingerprint\": \"%s\"",
                   DSK_DATASET_FORMAT, DSK_DATASET_VERSION, r->m->n_shards - 1, r->fingerprint);
    for (int s = 0; s < DSK_SPLITS; s++)
        dsk_buf_printf(&j, ", \"%s\": [%llu, %llu]", dsk_split_names[s], (unsigned long long)sh->first[s],
                       (unsigned long long)sh->rows[s]);
    dsk_buf_adds(&j, "}");
    int rc = dsk_shard_put_meta(&r->shard, "shard", j.data, j.len, &r->err);
    if (!rc && r->dict.len)
        rc = dsk_shard_put_meta(&r->shard, "zstd_dict", r->dict.data, r->dict.len, &r->err);
    dsk_buf_free(&j);
    return rc;
}

static int finish_shard(run *r)
{
    int rc = put_shard_meta(r);
    if (!rc)
        rc = dsk_shard_finish(&r->shard, &r->m->shards[r->m->n_shards - 1].bytes, &r->err);
    else
        dsk_shard_abort(&r->shard);
    r->shard_open = 0;
    return rc;
}

static int open_shard(run *r)
{
    if (r->m->n_shards == DSK_MAX_SHARDS)
        return dsk_fail(&r->err, EX_DATAERR, "over %d shards: use a larger --shard-size", DSK_MAX_SHARDS);
    r->m->shards = dsk_xrealloc(r->m->shards, (r->m->n_shards + 1) * sizeof *r->m->shards);
    dsk_shard_info *sh = &r->m->shards[r->m->n_shards++];
    memset(sh, 0, sizeof *sh);
    snprintf(sh->file, sizeof sh->file, "shard-%05zu.mdb", r->m->n_shards - 1);
    for (int s = 0; s < DSK_SPLITS; s++)
        sh->first[s] = r->next_index[s];
    char *path = dsk_tempdir_file(&r->dir, sh->file);
    /* The map only reserves address space; the file grows with the data. */
    uint64_t map = 2 * r->o->shard_size + (256u << 20);
    int rc = dsk_shard_create(&r->shard, path, map, &r->err);
    free(path);
    if (rc)
        dsk_shard_abort(&r->shard);
    else
        r->shard_open = 1;
    return rc;
}

static int commit(void *ctx, void *bp)
{
    run *r = ctx;
    batch *b = bp;
    if (b->rc) {
        r->err = b->err;
        return b->rc;
    }
    size_t start = 0;
    for (size_t i = 0; i < b->n_rows; i++) {
        size_t len = b->ends[i] - start;
        const void *v = b->out.data + start;
        start = b->ends[i];
        if (r->shard_open && dsk_shard_size_estimate(&r->shard) + len > r->o->shard_size) {
            int rc = finish_shard(r);
            if (rc)
                return rc;
        }
        if (!r->shard_open) {
            int rc = open_shard(r);
            if (rc)
                return rc;
        }
        int split = b->rows[i].split;
        int rc = dsk_shard_put(&r->shard, split, r->next_index[split]++, v, len, &r->err);
        if (rc)
            return rc;
        r->m->shards[r->m->n_shards - 1].rows[split]++;
        r->m->rows[split]++;
    }
    dsk_progress_update(&r->progress, r->bytes_in + (r->reader_open ? r->reader.offset : 0),
                        r->docs_in + (r->reader_open ? r->reader.records : 0));
    return 0;
}

/* ---- dictionary ------------------------------------------------------------------------- */

/* zstd's experimental API may change between versions: only the one this
 * was compiled against is trusted with it. */
static int fast_cover_ok(void)
{
    return ZSTD_versionNumber() / 100 == ZSTD_VERSION_NUMBER / 100;
}

/* ZDICT_trainFromBuffer searches fastCover's parameters, which took a tenth
 * of a whole run of dsk-pack (0.1 s for a 1 MiB sample).  One fixed choice
 * (segments of 512 bytes, 8-byte d-mers, accel 4) trains on 4 MiB in a
 * quarter of that, and the 110 KiB dictionary it makes compresses GPT-2
 * rows 1.5% smaller than the search's 32 KiB one (dict-gcide, level 3). */
static size_t train_zstd_dictionary(void *dict, size_t cap, const dsk_buf *samples, const size_t *sizes,
                                    size_t n_samples, int level)
{
    if (!fast_cover_ok())
        return ZDICT_trainFromBuffer(dict, cap, samples->data, sizes, (unsigned)n_samples);
    ZDICT_fastCover_params_t p = {.k = 512, .d = 8, .f = 20, .accel = 4, .splitPoint = 1.0};
    p.zParams.compressionLevel = level;
    return ZDICT_trainFromBuffer_fastCover(dict, cap, samples->data, sizes, (unsigned)n_samples, p);
}

/* Trains the dataset's dictionary on the payloads of the first rows.  Too
 * little data for a useful dictionary is not an error: rows go without. */
static int train_dictionary(run *r)
{
    r->cur = &r->prefix;
    int rc = pack_until(r, SIZE_MAX, r->o->dict_sample / r->token_bytes * sizeof(uint32_t));
    if (rc)
        return rc;
    r->prefix_pending = 1;
    batch *b = &r->prefix;
    if (b->n_rows < 32)
        return 0;
    dsk_buf samples = {0};
    size_t *sizes = dsk_xmalloc(b->n_rows * sizeof *sizes);
    for (size_t i = 0; i < b->n_rows; i++) {
        dsk_row v = row_view(b, i);
        size_t before = samples.len;
        if ((rc = dsk_row_payload(&v, r->token_bytes, &samples, &r->err))) {
            free(sizes);
            dsk_buf_free(&samples);
            return rc;
        }
        sizes[i] = samples.len - before;
    }
    size_t cap = samples.len / 32 < MAX_DICT_BYTES ? samples.len / 32 : MAX_DICT_BYTES;
    if (cap >= 1024) {
        dsk_buf_reserve(&r->dict, cap);
        size_t n = train_zstd_dictionary(r->dict.data, cap, &samples, sizes, b->n_rows, r->o->zstd_level);
        if (!ZDICT_isError(n)) {
            r->dict.len = n;
            r->cdict = ZSTD_createCDict(r->dict.data, n, r->o->zstd_level);
        }
    }
    free(sizes);
    dsk_buf_free(&samples);
    return 0;
}

/* ---- the dataset's other files ------------------------------------------------------------- */

/* MANIFEST, then MD5SUMS over every other file: the last two files written. */
static int write_manifest_and_sums(run *r)
{
    dsk_buf text = {0}, sums = {0};
    dsk_manifest_write(r->m, &text);
    char *path = dsk_tempdir_file(&r->dir, "MANIFEST");
    int rc = dsk_write_file(path, &text, &r->err);
    free(path);
    size_t n_files = r->m->n_shards + 2;
    for (size_t i = 0; i < n_files && !rc; i++) {
        const char *name = i < r->m->n_shards ? r->m->shards[i].file : i == r->m->n_shards ? "tokenizer.json"
                                                                                            : "MANIFEST";
        char hex[33];
        path = dsk_tempdir_file(&r->dir, name);
        rc = dsk_md5_file(path, hex, &r->err);
        free(path);
        if (!rc)
            dsk_buf_printf(&sums, "%s  %s\n", hex, name);
    }
    path = dsk_tempdir_file(&r->dir, "MD5SUMS");
    if (!rc)
        rc = dsk_write_file(path, &sums, &r->err);
    free(path);
    dsk_buf_free(&text);
    dsk_buf_free(&sums);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------ */

/* The dataset's own tokenizer.json: the file given, byte for byte, when it
 * is a regular file.  A pipe (bash's <(...)) was drained by the load, so a
 * copy would be empty: the tokenizer loaded is written out instead, which
 * has the same fingerprint. */
static int keep_tokenizer(const dsk_pack_run_opts *o, const char *to, dsk_err *err)
{
    struct stat sb;
    if (stat(o->tokenizer_path, &sb) == 0 && S_ISREG(sb.st_mode))
        return dsk_copy_file(o->tokenizer_path, to, err);
    dsk_outfile f;
    int rc = dsk_outfile_open(&f, to, err);
    if (rc)
        return rc;
    if ((rc = dsk_bpe_write_json(o->tokenizer, f.fp, err)) != 0) {
        dsk_outfile_abort(&f);
        return rc;
    }
    return dsk_outfile_commit(&f, err);
}

int dsk_pack_run(const dsk_pack_run_opts *o, const char *const *inputs, size_t n_inputs, dsk_manifest *m,
                 dsk_err *err)
{
    static const char *const stdin_only[] = {"-"};
    run r;
    memset(&r, 0, sizeof r);
    memset(m, 0, sizeof *m);
    r.o = o;
    r.inputs = n_inputs ? inputs : stdin_only;
    r.n_inputs = n_inputs ? n_inputs : 1;
    r.m = m;
    r.token_bytes = o->tokenizer->n_vocab <= 65536 ? 2 : 4;
    dsk_tokenizer_fingerprint(o->tokenizer, r.fingerprint);
    m->pack_mode = o->pack.mode;
    m->seq_len = o->pack.row_len - 1;
    m->vocab_size = o->tokenizer->n_vocab;
    m->token_bytes = r.token_bytes;
    m->eot = o->pack.eot;
    memcpy(m->fingerprint, r.fingerprint, 33);
    m->zstd_level = o->zstd_level;
    m->tokenizer = dsk_xstrdup("tokenizer.json");
    m->command = dsk_xstrdup(o->command ? o->command : "");
    m->created_by = dsk_xstrdup("dsk-pack " DSK_VERSION);
    for (size_t i = 0; i < r.n_inputs; i++) {
        struct stat st;
        if (strcmp(r.inputs[i], "-") != 0 && stat(r.inputs[i], &st) == 0)
            r.total_in += (uint64_t)st.st_size;
    }

    int rc = dsk_tempdir_create(&r.dir, o->dir, o->force ? "MANIFEST" : NULL, "--force replaces a dataset", &r.err);
    int threads = o->threads < 1 ? 1 : o->threads;
    r.codecs = dsk_xcalloc((size_t)threads, sizeof *r.codecs);
    r.packer = dsk_packer_new(&o->pack, emit, &r);
    dsk_progress_start(&r.progress, "pack", r.total_in, o->quiet);
    if (!rc && o->dict && o->zstd_level > 0)  /* stored rows need no dictionary */
        rc = train_dictionary(&r);
    else
        r.prefix_pending = 0;
    if (!rc) {
        for (int t = 0; t < threads; t++)
            r.codecs[t] = (dsk_row_codec){.level = o->zstd_level, .cdict = r.cdict};
        m->dict_bytes = (uint32_t)r.dict.len;
        enum { N_BATCHES = 8 };
        batch batches[N_BATCHES];
        void *ptrs[N_BATCHES];
        memset(batches, 0, sizeof batches);
        for (int i = 0; i < N_BATCHES; i++)
            ptrs[i] = &batches[i];
        dsk_ordered_ops ops = {&r, produce, work, commit};
        rc = dsk_ordered_run(&ops, ptrs, threads > 1 ? N_BATCHES : 1, threads);
        if (rc < 0)
            rc = r.err.code ? r.err.code : EX_SOFTWARE;
        for (int i = 0; i < N_BATCHES; i++)
            batch_free(&batches[i]);
    }
    dsk_progress_finish(&r.progress);
    m->kind = dsk_packer_kind(r.packer);
    for (int s = 0; s < DSK_SPLITS; s++)
        m->stats[s] = *dsk_packer_stats(r.packer, s);
    m->row_tokens = o->pack.row_len * (m->kind == DSK_KIND_DPO ? 2 : 1);
    if (!rc && m->rows[0] + m->rows[1] + m->rows[2] == 0)
        rc = dsk_fail(&r.err, EX_DATAERR, "%s: no records: nothing to pack", n_inputs ? r.inputs[0] : "(stdin)");
    if (!rc && r.shard_open)
        rc = finish_shard(&r);
    if (!rc) {
        char *to = dsk_tempdir_file(&r.dir, "tokenizer.json");
        rc = keep_tokenizer(o, to, &r.err);
        free(to);
    }
    if (!rc)
        rc = write_manifest_and_sums(&r);
    if (!rc)
        rc = dsk_tempdir_commit(&r.dir, &r.err);
    if (rc) {
        *err = r.err;
        if (!err->code)
            err->code = rc;
        if (r.shard_open)
            dsk_shard_abort(&r.shard);
        dsk_tempdir_abort(&r.dir);
    }
    close_input(&r);
    dskt_record_free(&r.rec);
    dsk_packer_free(r.packer);
    batch_free(&r.prefix);
    for (int t = 0; t < threads; t++)
        dsk_row_codec_free(&r.codecs[t]);
    free(r.codecs);
    ZSTD_freeCDict(r.cdict);
    dsk_buf_free(&r.dict);
    return rc;
}
