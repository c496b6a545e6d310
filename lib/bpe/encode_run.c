#include "bpe/encode_run.h"

#include <stdlib.h>
#include <string.h>

#include "bpe/document.h"
#include "bpe/dskt.h"
#include "core/json.h"
#include "core/ordered.h"
#include "text/utf8.h"

#define BATCH_BYTES (1u << 20)
#define BATCH_DOCS 2048

typedef struct doc {
    dskt_record rec;  /* reused across batches */
    int failed;
    size_t msg_off;
} doc;

typedef struct batch {
    dsk_record_batch in;  /* the raw records */
    dsk_buf msgs;
    doc *docs;            /* one per record */
    size_t cap;
} batch;

typedef struct run {
    const dsk_bpe_encode_opts *o;
    dsk_record_source src;
    dsk_bpe_encoder *enc;  /* one per worker */
    dsk_buf *repaired;     /* one per worker */
    dskt_writer w;
    dsk_buf line;
    FILE *out;
    dsk_err err;
} run;

static int produce(void *arg, void *batch_arg)
{
    run *r = arg;
    batch *b = batch_arg;
    dsk_buf_clear(&b->msgs);
    int rc = dsk_record_batch_fill(&b->in, &r->src, BATCH_BYTES, BATCH_DOCS, &r->err);
    if (rc != 0 && rc != 1)
        return -1;
    if (b->cap < b->in.n) {  /* new slots start empty: their records are reused */
        b->docs = dsk_xrealloc(b->docs, b->in.cap * sizeof *b->docs);
        memset(b->docs + b->cap, 0, (b->in.cap - b->cap) * sizeof *b->docs);
        b->cap = b->in.cap;
    }
    for (size_t i = 0; i < b->in.n; i++)
        b->docs[i].failed = 0;
    return rc;
}

static void work(void *arg, void *batch_arg, int worker)
{
    run *r = arg;
    batch *b = batch_arg;
    const dsk_bpe_encode_opts *o = r->o;
    dsk_bpe_encoder *enc = &r->enc[worker];
    dsk_buf *rep = &r->repaired[worker];
    for (size_t i = 0; i < b->in.n; i++) {
        doc *d = &b->docs[i];
        const dsk_record_ref *ref = &b->in.recs[i];
        const char *text = b->in.raw.data + ref->off;
        size_t len = ref->len;
        dsk_err err = {0};
        int rc;
        if (dsk_utf8_find_invalid(text, len) < len) {
            dsk_buf_clear(rep);
            dsk_utf8_repair(text, len, rep);
            text = rep->data;
            len = rep->len;
        }
        if (o->records->mode == DSK_REC_JSONL) {
            char why[160];
            struct json_object *obj = dsk_json_parse(text, len, why, sizeof why);
            if (!dsk_json_is(obj, json_type_object))
                rc = dsk_fail(&err, EX_DATAERR, "%s", obj ? "a document must be a JSON object" : why);
            else
                rc = dsk_bpe_encode_document(o->tokenizer, enc, obj, o->field, o->allow_special, &d->rec, &err);
            if (obj)
                json_object_put(obj);
        } else {
            rc = dsk_bpe_encode_text(o->tokenizer, enc, text, len, o->allow_special, DSKT_TRAIN, &d->rec, &err);
        }
        if (rc) {
            d->failed = rc;
            d->msg_off = b->msgs.len;  /* msgs is only touched by this batch's worker */
            const char *source = r->src.inputs[ref->input];
            dsk_buf_printf(&b->msgs, "%s:%llu: %s", strcmp(source, "-") ? source : "(stdin)",
                           (unsigned long long)ref->line_no, err.msg);
            dsk_buf_addc(&b->msgs, '\0');
        }
    }
}

/* The decimal digits of v, written back from end; returns the first. */
static char *put_decimal(char *end, uint32_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                                "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    while (v >= 100) {
        end -= 2;
        memcpy(end, pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (v >= 10) {
        end -= 2;
        memcpy(end, pairs + 2 * v, 2);
    } else {
        *--end = (char)('0' + v);
    }
    return end;
}

static void write_ids(run *r, const dskt_record *rec)
{
    dsk_buf *line = &r->line;
    dsk_buf_clear(line);
    dsk_buf_reserve(line, (size_t)rec->n_tokens * 11 + 1);
    char *o = line->data;
    for (uint32_t i = 0; i < rec->n_tokens; i++) {
        char digits[10], *first = put_decimal(digits + sizeof digits, rec->tokens[i]);
        size_t k = (size_t)(digits + sizeof digits - first);
        if (i)
            *o++ = ' ';
        memcpy(o, first, k);
        o += k;
    }
    *o++ = '\n';
    fwrite(line->data, 1, (size_t)(o - line->data), r->out);
}

static int commit(void *arg, void *batch_arg)
{
    run *r = arg;
    batch *b = batch_arg;
    for (size_t i = 0; i < b->in.n; i++) {
        doc *d = &b->docs[i];
        if (d->failed) {
            dsk_fail(&r->err, d->failed, "%s", b->msgs.data + d->msg_off);
            return -1;
        }
        if (r->o->ids)
            write_ids(r, &d->rec);
        else if (dskt_write(&r->w, &d->rec, &r->err))
            return -1;
    }
    return ferror(r->out) ? (dsk_fail(&r->err, EX_IOERR, "write error"), -1) : 0;
}

int dsk_bpe_encode_run(const dsk_bpe_encode_opts *o, const char *const *inputs, FILE *out, dsk_err *err)
{
    run r;
    memset(&r, 0, sizeof r);
    r.o = o;
    dsk_record_source_init(&r.src, inputs, o->records, o->max_record);
    r.out = out;
    int threads = o->threads < 1 ? 1 : o->threads;
    r.enc = dsk_xcalloc((size_t)threads, sizeof *r.enc);
    r.repaired = dsk_xcalloc((size_t)threads, sizeof *r.repaired);
    for (int i = 0; i < threads; i++)
        dsk_bpe_encoder_init(&r.enc[i], o->tokenizer);
    char fp[33];
    dsk_tokenizer_fingerprint(o->tokenizer, fp);
    int rc = o->ids ? 0 : dskt_writer_open(&r.w, out, o->tokenizer->n_vocab, fp, &r.err);
    int n_batches = threads > 1 ? 2 * threads + 2 : 1;
    batch *batches = dsk_xcalloc((size_t)n_batches, sizeof *batches);
    void **ptrs = dsk_xcalloc((size_t)n_batches, sizeof *ptrs);
    for (int i = 0; i < n_batches; i++)
        ptrs[i] = &batches[i];
    if (!rc) {
        dsk_ordered_ops ops = {&r, produce, work, commit};
        rc = dsk_ordered_run(&ops, ptrs, n_batches, threads);
    }
    if (!rc && !o->ids)
        rc = dskt_writer_close(&r.w, &r.err);
    else if (!o->ids)
        dskt_writer_abort(&r.w);  /* no trailer: the partial stream stays visibly incomplete */
    if (rc)
        *err = r.err;
    dsk_record_source_free(&r.src);
    for (int i = 0; i < n_batches; i++) {
        for (size_t k = 0; k < batches[i].cap; k++)
            dskt_record_free(&batches[i].docs[k].rec);
        free(batches[i].docs);
        dsk_record_batch_free(&batches[i].in);
        dsk_buf_free(&batches[i].msgs);
    }
    for (int i = 0; i < threads; i++) {
        dsk_bpe_encoder_free(&r.enc[i]);
        dsk_buf_free(&r.repaired[i]);
    }
    free(r.enc);
    free(r.repaired);
    free(batches);
    free(ptrs);
    dsk_buf_free(&r.line);
    return rc ? (err->code ? err->code : EX_SOFTWARE) : 0;
}
