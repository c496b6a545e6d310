/* The dsk-clean pipeline: read records in batches, clean them on worker
 * threads, then deduplicate, count and write them in input order. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clean/clean_internal.h"
#include "clean/clean_stats.h"
#include "clean/dedup.h"
#include "core/json.h"
#include "core/ordered.h"
#include "core/progress.h"
#include "text/utf8.h"

#define BATCH_BYTES (1u << 20)
#define BATCH_DOCS 4096

typedef struct run {
    clean_ctx ctx;
    const char *const *inputs;
    size_t n_inputs;
    char **sources;  /* input names made valid UTF-8, for messages and output */
    dsk_record_source src;
    clean_worker *workers;
    dsk_dedup dedup;
    FILE *out, *rejects;
    dsk_clean_stats *stats;
    dsk_progress progress;
    dsk_err err;
} run;

static int produce(void *arg, void *batch_arg)
{
    run *r = arg;
    clean_batch *b = batch_arg;
    dsk_buf_clear(&b->out);
    dsk_buf_clear(&b->msgs);
    int rc = dsk_record_batch_fill(&b->in, &r->src, BATCH_BYTES, BATCH_DOCS, &r->err);
    if (rc != 0 && rc != 1)
        return -1;
    b->n = b->in.n;
    if (b->cap < b->n) {
        b->cap = b->in.cap;
        b->docs = dsk_xrealloc(b->docs, b->cap * sizeof *b->docs);
    }
    for (size_t i = 0; i < b->n; i++) {
        const dsk_record_ref *rec = &b->in.recs[i];
        doc_slot *d = &b->docs[i];
        memset(d, 0, sizeof *d);
        d->source = r->sources[rec->input];
        d->line_no = rec->line_no;
        d->raw_off = rec->off;
        d->raw_len = rec->len;
        if (rec->too_long) {   /* read past (--on-error skip): a malformed record, with no text */
            d->status = DOC_FAIL;   /* before clean_doc, which it does not go through */
            d->raw_len = rec->too_long;   /* for bytes_in; nothing reads it */
            d->msg_off = b->msgs.len;
            dsk_buf_printf(&b->msgs, "%s:%llu: record longer than the %zu-byte limit", d->source,
                           (unsigned long long)d->line_no, r->ctx.cfg->max_record);
            dsk_buf_addc(&b->msgs, '\0');
        }
    }
    b->bytes_done = dsk_record_source_bytes(&r->src);
    return rc;
}

static void work(void *arg, void *batch_arg, int worker)
{
    run *r = arg;
    clean_batch *b = batch_arg;
    size_t nb = (size_t)r->ctx.cfg->minhash_bands;
    if (r->ctx.cfg->dedup & DSK_DEDUP_MINHASH && b->cap_bands < b->n * nb) {
        b->cap_bands = b->cap * nb;
        b->bands = dsk_xrealloc(b->bands, b->cap_bands * sizeof *b->bands);
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->docs[i].status != DOC_FAIL)   /* a record read past (produce) */
            clean_doc(&r->workers[worker], &r->ctx, b, &b->docs[i]);
}

/* Writes a kept document's line to the rejects stream with the rule that
 * dropped it in the in-order stage spliced in before the closing brace. */
static void write_late_reject(run *r, const clean_batch *b, const doc_slot *d, const char *rule)
{
    const char *line = b->out.data + d->out_off;
    size_t len = d->out_len;  /* ends with "}\n" */
    fwrite(line, 1, len - 2, r->rejects);
    fprintf(r->rejects, ",\"rejected_by\":\"%s\"}\n", rule);
}

static void write_failure_reject(run *r, const doc_slot *d, const char *msg)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "rejected_by", json_object_new_string("malformed"));
    json_object_object_add(o, "error", json_object_new_string(msg));
    json_object_object_add(o, "source", json_object_new_string(d->source));
    json_object_object_add(o, "line", json_object_new_uint64(d->line_no));
    dsk_buf line = {0};
    dsk_json_append(o, &line);
    dsk_buf_addc(&line, '\n');
    fwrite(line.data, 1, line.len, r->rejects);
    dsk_buf_free(&line);
    json_object_put(o);
}

static int commit(void *arg, void *batch_arg)
{
    run *r = arg;
    clean_batch *b = batch_arg;
    const dsk_clean_config *c = r->ctx.cfg;
    if (dsk_dedup_begin(&r->dedup, &r->err))
        return -1;
    for (size_t i = 0; i < b->n; i++) {
        doc_slot *d = &b->docs[i];
        const char *late_rule = NULL;
        if (d->status == DOC_FAIL) {
            const char *msg = b->msgs.data + d->msg_off;
            if (!c->skip_errors) {
                dsk_fail(&r->err, EX_DATAERR, "%s", msg);
                return -1;
            }
            if (!c->quiet && r->stats->malformed < 10)
                dsk_warn("skipped: %s", msg);
            if (r->rejects)
                write_failure_reject(r, d, msg);
        } else if (d->status == DOC_KEEP && c->dedup) {
            int seen = 0;
            if (c->dedup & DSK_DEDUP_EXACT) {
                seen = dsk_dedup_exact(&r->dedup, d->hash_lo, d->hash_hi, &r->err);
                if (seen > 0)
                    late_rule = "dedup.exact";
            }
            if (!seen && d->has_bands) {
                seen = dsk_dedup_near(&r->dedup, b->bands + d->bands_off, r->ctx.minhash.bands, &r->err);
                if (seen > 0)
                    late_rule = "dedup.minhash";
            }
            if (seen < 0)
                return -1;
            if (late_rule)
                d->status = DOC_DROP;
        }
        clean_stats_count(r->stats, d, d->raw_len, late_rule);
        if (d->status == DOC_KEEP) {
            fwrite(b->out.data + d->out_off, 1, d->out_len, r->out);
        } else if (d->status == DOC_DROP && r->rejects) {
            if (late_rule)
                write_late_reject(r, b, d, late_rule);
            else
                fwrite(b->out.data + d->out_off, 1, d->out_len, r->rejects);
        }
    }
    if (dsk_dedup_commit(&r->dedup, &r->err))
        return -1;
    r->stats->dedup_memory_bytes = dsk_dedup_memory_bytes(&r->dedup);
    dsk_progress_update(&r->progress, b->bytes_done, r->stats->docs_in);
    if (ferror(r->out))
        return dsk_fail(&r->err, EX_IOERR, "write error on output"), -1;
    return 0;
}

static uint64_t total_input_size(const char *const *inputs, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (strcmp(inputs[i], "-") == 0 || stat(inputs[i], &st) != 0 || !S_ISREG(st.st_mode))
            return 0;
        total += (uint64_t)st.st_size;
    }
    return total;
}

int dsk_clean_run(const dsk_clean_config *c, const char *const *inputs, FILE *out, FILE *rejects,
                  dsk_clean_stats **stats_out, dsk_clean_commit_fn commit_outputs, void *commit_arg, dsk_err *err)
{
    static const char *const stdin_only[] = {"-", NULL};
    if (!inputs || !inputs[0])
        inputs = stdin_only;
    run r;
    memset(&r, 0, sizeof r);
    r.ctx.cfg = c;
    r.ctx.want_rejects = rejects != NULL;
    r.inputs = inputs;
    while (inputs[r.n_inputs])
        r.n_inputs++;
    r.out = out;
    r.rejects = rejects;
    r.stats = clean_stats_new(c);
    *stats_out = r.stats;
    dsk_record_source_init(&r.src, inputs, &c->records, c->max_record);
    r.src.skip_long = c->skip_errors;

    r.sources = dsk_xcalloc(r.n_inputs, sizeof *r.sources);
    for (size_t i = 0; i < r.n_inputs; i++) {
        const char *name = strcmp(inputs[i], "-") == 0 ? "(stdin)" : inputs[i];
        dsk_buf tmp = {0};
        dsk_utf8_repair(name, strlen(name), &tmp);
        r.sources[i] = tmp.data ? tmp.data : dsk_xstrdup("");
    }

    int rc = 0;
    if (c->dedup & DSK_DEDUP_MINHASH &&
        dsk_minhash_init(&r.ctx.minhash, c->minhash_ngram, c->minhash_bands, c->minhash_rows))
        rc = dsk_fail(err, EX_USAGE, "minhash: ngram, bands (<= %d) and rows (<= %d) must be positive",
                      DSK_MINHASH_MAX_BANDS, DSK_MINHASH_MAX_ROWS);
    if (!rc) {
        if (c->dedup_db) {
            char params[128];
            snprintf(params, sizeof params, "minhash ngram=%d bands=%d rows=%d " DSK_MINHASH_PARAMS,
                     c->minhash_ngram, c->minhash_bands, c->minhash_rows);
            rc = dsk_dedup_open_lmdb(&r.dedup, c->dedup_db, params, err);
        } else {
            rc = dsk_dedup_open_memory(&r.dedup, c->dedup_memory);
        }
    }
    if (rc) {
        dsk_minhash_free(&r.ctx.minhash);
        for (size_t i = 0; i < r.n_inputs; i++)
            free(r.sources[i]);
        free(r.sources);
        return rc;
    }

    int threads = c->threads < 1 ? 1 : c->threads;
    int n_batches = threads > 1 ? 2 * threads + 2 : 1;
    r.workers = dsk_xcalloc((size_t)threads, sizeof *r.workers);
    for (int i = 0; i < threads; i++)
        clean_worker_init(&r.workers[i], &r.ctx);
    clean_batch *batches = dsk_xcalloc((size_t)n_batches, sizeof *batches);
    void **ptrs = dsk_xcalloc((size_t)n_batches, sizeof *ptrs);
    for (int i = 0; i < n_batches; i++)
        ptrs[i] = &batches[i];

    dsk_progress_start(&r.progress, "dsk-clean", total_input_size(inputs, r.n_inputs), c->quiet);
    double t0 = dsk_now();
    dsk_ordered_ops ops = {&r, produce, work, commit};
    rc = dsk_ordered_run(&ops, ptrs, n_batches, threads);
    dsk_progress_finish(&r.progress);
    r.stats->seconds = dsk_now() - t0;

    if (!rc && commit_outputs && commit_outputs(commit_arg, r.stats, &r.err))
        rc = -1;
    dsk_err close_err = {0};
    int close_rc = dsk_dedup_close(&r.dedup, rc == 0, &close_err);
    if (!rc && close_rc)
        r.err = close_err;
    if (rc || close_rc) {
        *err = r.err;
        rc = err->code ? err->code : EX_SOFTWARE;
    }
    dsk_record_source_free(&r.src);
    for (int i = 0; i < threads; i++)
        clean_worker_free(&r.workers[i]);
    for (int i = 0; i < n_batches; i++) {
        dsk_record_batch_free(&batches[i].in);
        dsk_buf_free(&batches[i].out);
        dsk_buf_free(&batches[i].msgs);
        free(batches[i].docs);
        free(batches[i].bands);
    }
    free(batches);
    free(ptrs);
    free(r.workers);
    for (size_t i = 0; i < r.n_inputs; i++)
        free(r.sources[i]);
    free(r.sources);
    dsk_minhash_free(&r.ctx.minhash);
    return rc;
}
