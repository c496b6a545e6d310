#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "bpe/document.h"
#include "bpe/formats.h"
#include "core/fileio.h"
#include "core/json.h"
#include "core/reader.h"
#include "eval/eval.h"
#include "eval/gen_all.h"
#include "eval/task_file.h"
#include "text/utf8.h"
#include "model/config.h"
#include "pack/dataset.h"
#include "quant/quant_io.h"
#include "train/batch.h"
#include "train/checkpoint.h"

int dsk_load_checkpoint_meta(dsk_loaded *l, const char *path, dsk_model_config *cfg, dsk_err *err)
{
    memset(l, 0, sizeof *l);
    dsk_tokenizer_init(&l->tok);
    l->dir = dsk_checkpoint_resolve(path, err);
    if (!l->dir)
        return err->code;
    char *p = dsk_path_join(l->dir, "config.json");
    int rc = dsk_config_load(cfg, p, err);
    free(p);
    if (!rc && cfg->vocab_size < 2)
        rc = dsk_fail(err, EX_DATAERR, "%s/config.json: vocab_size %d", l->dir, cfg->vocab_size);
    if (!rc) {
        p = dsk_path_join(l->dir, "tokenizer.json");
        rc = dsk_bpe_load_json_regular(&l->tok, p, err);
        free(p);
    }
    /* Every id the tokenizer can give must have a row: a larger tokenizer
     * (a tokenizer.json swapped in) fails later, mid-generation. */
    if (!rc && l->tok.n_vocab > (uint32_t)cfg->vocab_size)
        rc = dsk_fail(err, EX_DATAERR, "%s/tokenizer.json: %u tokens, more than the model's vocab_size %d", l->dir,
                      l->tok.n_vocab, cfg->vocab_size);
    if (!rc)
        dsk_tokenizer_fingerprint(&l->tok, l->fingerprint);
    l->max_positions = cfg->max_seq_len;
    return rc;
}

int dsk_load_checkpoint(dsk_loaded *l, const char *path, const char *backend, int threads, dsk_err *err)
{
    dsk_model_config cfg;
    int rc = dsk_load_checkpoint_meta(l, path, &cfg, err);
    if (!rc) {
        l->be = dsk_backend_new(backend, threads, err);   /* 64 unknown, 69 no device */
        if (!l->be)
            rc = err->code;
    }
    if (!rc) {
        l->model = dsk_model_create(&cfg, l->be);
        int group;
        int quantized = dsk_quant_is_quantized(l->dir, &group, err);
        if (quantized < 0)
            rc = err->code;
        else if (quantized) {
            /* The dequantized weights serve batched passes; decoding
             * reads the 4-bit layers through the backend. */
            dsk_model *m = l->model;
            l->int4 = dsk_xcalloc(m->n_tensors, sizeof *l->int4);
            rc = dsk_quant_load_weights(l->dir, m, l->int4, err);
            const char *off = getenv("DSK_NO_INT4");   /* for comparisons: the fp32 path only */
            for (size_t i = 0; !rc && i < m->n_tensors && !(off && *off && strcmp(off, "0")); i++)
                if (l->int4[i].qweight && l->be->register_int4 && (rc = dsk_q4_prepare(&l->int4[i], err)) == 0)
                    l->be->register_int4(l->be, m->params + m->tensors[i].offset, &l->int4[i]);
        }
        else
            rc = dsk_checkpoint_load_weights(l->dir, l->model, err);
        l->quantized = quantized > 0;
    }
    return rc;
}

void dsk_loaded_freeze(dsk_loaded *l)
{
    dsk_model *m = l->model;
    if (!l->be->freeze_weights)
        return;
    /* The matrices products read: every 2-D tensor but an embedding
     * table that is only looked up (untied from the LM head). */
    const float **W = dsk_xmalloc(m->n_tensors * sizeof *W);
    int *N = dsk_xmalloc(m->n_tensors * sizeof *N), *K = dsk_xmalloc(m->n_tensors * sizeof *K), n = 0;
    for (size_t i = 0; i < m->n_tensors; i++) {
        const dsk_tensor_info *t = &m->tensors[i];
        const float *w = m->params + t->offset;
        if (t->ndim != 2 || (w == m->w.embed && m->w.lm_head != m->w.embed))
            continue;
        W[n] = w, N[n] = (int)t->shape[0], K[n] = (int)t->shape[1];
        n++;
    }
    l->be->freeze_weights(l->be, n, W, N, K);
    free(W), free(N), free(K);
}

void dsk_loaded_free(dsk_loaded *l)
{
    size_t n = l->model ? l->model->n_tensors : 0;
    dsk_model_free(l->model);
    if (l->be)
        l->be->destroy(l->be);
    for (size_t i = 0; l->int4 && i < n; i++)
        dsk_q4_free(&l->int4[i]);
    free(l->int4);
    dsk_tokenizer_free(&l->tok);
    free(l->dir);
    memset(l, 0, sizeof *l);
}

/* ---- perplexity --------------------------------------------------------------------------- */

/* Opens data for perplexity: made with the tokenizer of this
 * fingerprint and vocab, not of preference pairs.  Closed on failure. */
static int open_ppl_dataset(dsk_dataset *ds, const char *data, const char *fingerprint, uint32_t vocab, dsk_err *err)
{
    int rc = dsk_dataset_open(ds, data, err);
    if (rc)
        return rc;
    rc = dsk_dataset_check_tokenizer(ds, fingerprint, vocab, err);
    if (!rc && ds->m.kind == DSK_KIND_DPO)
        rc = dsk_fail(err, EX_DATAERR, "%s: preference rows have no perplexity; use a text or chat dataset", data);
    if (rc)
        dsk_dataset_close(ds);
    return rc;
}

int dsk_eval_ppl_check(const dsk_loaded *l, int vocab, const char *data, dsk_err *err)
{
    dsk_dataset ds;
    int rc = open_ppl_dataset(&ds, data, l->fingerprint, (uint32_t)vocab, err);
    if (!rc)
        dsk_dataset_close(&ds);
    return rc;
}

int dsk_eval_ppl(dsk_loaded *l, const char *data, int split, int batch, long rows, dsk_ppl_result *res,
                 dsk_err *err)
{
    memset(res, 0, sizeof *res);
    dsk_dataset ds;
    dsk_model *m = l->model;
    int rc = open_ppl_dataset(&ds, data, l->fingerprint, (uint32_t)m->cfg.vocab_size, err);
    if (rc)
        return rc;
    /* Rows longer than the model are scored in windows of its length, each
     * from its own start, so that every target counts. */
    int T = (int)ds.m.seq_len, windows = 1;
    if (T > m->cfg.max_seq_len) {
        T = m->cfg.max_seq_len;
        windows = (int)((ds.m.seq_len + (uint32_t)T - 1) / (uint32_t)T);
    }
    res->windows = windows;
    uint64_t total = ds.m.rows[split];
    if (total == 0) {
        dsk_dataset_close(&ds);
        return dsk_fail(err, EX_DATAERR, "%s: the %s split has no rows", data, dsk_split_names[split]);
    }
    if (rows > 0 && (uint64_t)rows < total)
        total = (uint64_t)rows;
    uint64_t units = total * (uint64_t)windows;   /* (row, window) in order; a batch holds `batch` of them */
    if (units > 0 && (uint64_t)batch > units)
        batch = (int)units;   /* memory for the rows there are, not for --batch's */
    m->recompute = 1;   /* forward passes only: one shared set of layer buffers */
    dsk_model_alloc_batch(m, batch, T);
    size_t n = (size_t)batch * T;
    int32_t *tok = dsk_xmalloc(n * 4), *tgt = dsk_xmalloc(n * 4), *pos = dsk_xmalloc(n * 4);
    float *w = dsk_xmalloc(n * 4);
    dsk_dataset_reader rd;
    dsk_dataset_reader_init(&rd, &ds);
    dsk_row row = {0};
    res->row_loss = dsk_xcalloc(total ? total : 1, sizeof *res->row_loss);
    double *row_targets = dsk_xcalloc(total ? total : 1, sizeof *row_targets);
    double *batch_loss = dsk_xmalloc((size_t)batch * sizeof *batch_loss), *batch_targets = dsk_xcalloc((size_t)batch, sizeof *batch_targets);
    uint64_t *batch_row = dsk_xmalloc((size_t)batch * sizeof *batch_row);
    for (uint64_t next = 0; next < units && !rc;) {
        int used = 0;
        for (int b = 0; b < batch && !rc; b++) {
            size_t at = (size_t)b * T;
            if (next >= units) {
                dsk_batch_blank_row(tok + at, tgt + at, pos + at, w + at, T);
                continue;
            }
            uint64_t r = next / (uint64_t)windows;
            uint32_t window = (uint32_t)(next % (uint64_t)windows);
            next++;
            if (window == 0 && (rc = dsk_dataset_read(&rd, split, r, &row, err)))
                break;
            dsk_batch_fill_window(tok + at, tgt + at, pos + at, w + at, T, &row, window * (uint32_t)T, 1);
            batch_row[b] = r;
            batch_targets[b] = 0;
            for (int t = 0; t < T; t++)
                if (w[at + t] != 0) {
                    res->bytes += dsk_tokenizer_text_bytes(&l->tok, (uint32_t)tgt[at + t]);
                    batch_targets[b] += w[at + t];
                }
            res->rows += window == 0;
            used++;
        }
        dsk_batch bt = {batch, T, tok, tgt, pos, w};
        if (rc || (rc = dsk_model_set_batch(m, &bt, err)))
            break;
        dsk_model_forward(m, 0);
        res->nats += m->loss_sum;
        res->tokens += m->n_targets;
        dsk_model_row_losses(m, batch_loss);
        for (int b = 0; b < used; b++) {
            res->row_loss[batch_row[b]] += batch_loss[b];
            row_targets[batch_row[b]] += batch_targets[b];
        }
    }
    for (uint64_t r = 0; r < total; r++)   /* summed nats to the mean per target */
        res->row_loss[r] = row_targets[r] > 0 ? res->row_loss[r] / row_targets[r] : 0;
    free(row_targets);
    free(batch_row);
    free(batch_loss);
    free(batch_targets);
    dsk_row_free(&row);
    dsk_dataset_reader_free(&rd);
    dsk_dataset_close(&ds);
    free(tok), free(tgt), free(pos), free(w);
    if (!rc && res->tokens == 0)
        rc = dsk_fail(err, EX_DATAERR, "%s: no targets in the %s split", data, dsk_split_names[split]);
    if (!rc) {
        res->loss = res->nats / res->tokens;
        res->ppl = exp(res->loss);
        res->bpb = res->bytes > 0 ? res->nats / log(2.0) / res->bytes : 0;
    }
    return rc;
}

void dsk_ppl_result_free(dsk_ppl_result *r)
{
    free(r->row_loss);
    memset(r, 0, sizeof *r);
}

/* ---- generation tasks --------------------------------------------------------------------- */

static void trim(dsk_buf *b)
{
    if (!b->data)   /* nothing was ever added */
        return;
    size_t start = 0, end = b->len;
    while (start < end && b->data[start] && strchr(" \t\r\n", b->data[start]))
        start++;
    while (end > start && b->data[end - 1] && strchr(" \t\r\n", b->data[end - 1]))
        end--;
    memmove(b->data, b->data + start, end - start);
    b->len = end - start;
    dsk_buf_addc(b, 0);
    b->len--;
}

/* One item's checks, before anything is generated for it: an "answer"
 * or a "regex" that compiles (into *re, NULL for an answer), the prompt encoded
 * into rec, and room for --max-tokens after it. */
static int gen_item(dsk_loaded *l, dsk_bpe_encoder *enc, struct json_object *doc, const char *task, long lineno,
                    int max_tokens, dskt_record *rec, pcre2_code **re, dsk_err *err)
{
    struct json_object *answer = dsk_json_get_string(doc, "answer"), *regex = dsk_json_get_string(doc, "regex");
    if (!answer && !regex)
        return dsk_fail(err, EX_DATAERR, "%s:%ld: needs a string \"answer\" or \"regex\"", task, lineno);
    if (!answer) {
        int ecode;
        PCRE2_SIZE eoff;
        pcre2_code *c = pcre2_compile((PCRE2_SPTR)json_object_get_string(regex),
                                      (PCRE2_SIZE)json_object_get_string_len(regex),
                                      PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &ecode, &eoff, NULL);
        if (!c) {
            PCRE2_UCHAR why[160];
            pcre2_get_error_message(ecode, why, sizeof why);
            return dsk_fail(err, EX_DATAERR, "%s:%ld: bad \"regex\" at offset %zu: %s", task, lineno, (size_t)eoff,
                            (const char *)why);
        }
        *re = c;
    }
    int rc = dsk_bpe_encode_generation_prompt(&l->tok, enc, doc, rec, err);
    if (rc) {
        char tmp[sizeof err->msg];
        memcpy(tmp, err->msg, sizeof tmp);
        dsk_fail(err, rc, "%s:%ld: %.900s", task, lineno, tmp);
    } else if ((int)rec->n_tokens + max_tokens > l->max_positions) {
        rc = dsk_fail(err, EX_DATAERR, "%s:%ld: prompt of %u tokens + --max-tokens %d exceeds the model's %d positions",
                      task, lineno, rec->n_tokens, max_tokens, l->max_positions);
    }
    if (rc && *re) {
        pcre2_code_free(*re);
        *re = NULL;
    }
    return rc;
}

/* The task's items, read once (a pipe can be read only once) and every one
 * checked before the first is generated: a bad item on line N is reported
 * before N - 1 answers' worth of generation (as mc does).  Each keeps what
 * the checks made: the encoded prompt and the compiled regex. */
typedef struct gen_entry {
    struct json_object *doc;
    pcre2_code *re;         /* NULL when the item has an "answer" */
    int32_t *prompt;
    uint32_t n_prompt;
} gen_entry;

typedef struct gen_items {
    gen_entry *e;
    size_t n;
} gen_items;

static void gen_items_free(gen_items *it)
{
    for (size_t i = 0; i < it->n; i++) {
        json_object_put(it->e[i].doc);
        pcre2_code_free(it->e[i].re);
        free(it->e[i].prompt);
    }
    free(it->e);
    memset(it, 0, sizeof *it);
}

static int gen_read_all(dsk_loaded *l, const char *task, int max_tokens, gen_items *it, dsk_err *err)
{
    memset(it, 0, sizeof *it);
    dsk_task_file tf;
    int rc = dsk_task_file_open(&tf, task, err), got;
    if (rc)
        return rc;
    dsk_bpe_encoder enc;
    dsk_bpe_encoder_init(&enc, &l->tok);
    dskt_record rec = {0};
    struct json_object *doc;
    while (!rc && (got = dsk_task_file_next(&tf, &doc, err)) != 0) {
        if (got < 0) {
            rc = err->code;
            break;
        }
        pcre2_code *re = NULL;
        if ((rc = gen_item(l, &enc, doc, task, tf.lineno, max_tokens, &rec, &re, err)) != 0) {
            json_object_put(doc);
            break;
        }
        if (it->n % 256 == 0)
            it->e = dsk_xrealloc(it->e, (it->n + 256) * sizeof *it->e);
        gen_entry *e = &it->e[it->n++];
        *e = (gen_entry){.doc = doc, .re = re, .n_prompt = rec.n_tokens};
        e->prompt = dsk_xmalloc((rec.n_tokens ? rec.n_tokens : 1) * sizeof *e->prompt);
        for (uint32_t i = 0; i < rec.n_tokens; i++)
            e->prompt[i] = (int32_t)rec.tokens[i];
    }
    dskt_record_free(&rec);
    dsk_bpe_encoder_free(&enc);
    dsk_task_file_close(&tf);
    if (rc)
        gen_items_free(it);
    return rc;
}

int dsk_eval_gen_check(dsk_loaded *l, const char *task, int max_tokens, dsk_err *err)
{
    gen_items items;
    int rc = gen_read_all(l, task, max_tokens, &items, err);
    if (!rc)
        gen_items_free(&items);
    return rc;
}

int dsk_eval_gen(dsk_loaded *l, const char *task, const dsk_gen_opts *o, dsk_gen_result *res, dsk_err *err)
{
    memset(res, 0, sizeof *res);
    gen_items items;
    int rc = gen_read_all(l, task, o->max_tokens, &items, err);
    if (rc)
        return rc;
    uint32_t end = dsk_tokenizer_special(&l->tok, "<|end|>"), eot = dsk_tokenizer_special(&l->tok, "<|endoftext|>");
    /* Every answer first, together (lib/eval/gen_all.h), then the scores
     * in the items' order. */
    dsk_gen_job *jobs = dsk_xcalloc(items.n, sizeof *jobs);
    for (size_t k = 0; k < items.n; k++)
        jobs[k] = (dsk_gen_job){.prompt = items.e[k].prompt, .n_prompt = (int)items.e[k].n_prompt};
    dsk_gen_all_opts go = {o->max_tokens, o->sampler, o->seed,
                           {end == DSK_BPE_NO_TOKEN ? -1 : (int32_t)end, eot == DSK_BPE_NO_TOKEN ? -1 : (int32_t)eot},
                           o->batch > 0 ? o->batch : 8, o->speculate};
    rc = dsk_generate_all(l->model, jobs, items.n, &go, err);
    uint32_t *ids = dsk_xmalloc((size_t)(o->max_tokens + 1) * sizeof *ids);
    dsk_buf text = {0}, shown = {0};   /* the answer, and as valid UTF-8 */
    for (size_t k = 0; k < items.n && !rc; k++) {
        const gen_entry *e = &items.e[k];
        struct json_object *answer = dsk_json_get_string(e->doc, "answer");
        pcre2_code *re = e->re;
        const int32_t *out = jobs[k].out;
        int n = jobs[k].n_out;
        /* The answer is what comes before <|end|> (or <|endoftext|>). */
        int keep = 0;
        while (keep < n && (uint32_t)out[keep] != end && (uint32_t)out[keep] != eot)
            keep++;
        for (int i = 0; i < keep; i++)
            ids[i] = (uint32_t)out[i];
        dsk_buf_clear(&text);
        rc = dsk_bpe_decode(&l->tok, ids, (size_t)keep, &text, err);
        if (!rc) {
            trim(&text);
            /* A model's bytes need not be UTF-8 (byte-level tokens):
             * regexes (PCRE2 in UTF mode) and the --items JSON get the
             * text with each invalid subpart as U+FFFD; the answer is
             * compared byte for byte. */
            dsk_buf_clear(&shown);
            dsk_utf8_repair(text.data ? text.data : "", text.len, &shown);
            int ok;
            if (answer) {
                dsk_buf want = {0};
                dsk_buf_add(&want, json_object_get_string(answer), (size_t)json_object_get_string_len(answer));
                trim(&want);
                ok = want.len == text.len &&
                     !memcmp(want.data ? want.data : "", text.data ? text.data : "", text.len);
                dsk_buf_free(&want);
            } else {
                pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
                ok = pcre2_match(re, (PCRE2_SPTR)(shown.data ? shown.data : ""), shown.len, 0, 0, md, NULL) >= 0;
                pcre2_match_data_free(md);
            }
            if (res->items % 64 == 0)
                res->item_correct = dsk_xrealloc(res->item_correct, (size_t)(res->items + 64) * sizeof *res->item_correct);
            res->item_correct[res->items] = ok;
            res->items++;
            res->correct += ok;
            if (o->items && !rc) {
                struct json_object *j = json_object_new_object();
                json_object_object_add(j, "item", json_object_new_int64(res->items));
                json_object_object_add(j, "output", json_object_new_string_len(shown.data ? shown.data : "",
                                                                               (int)shown.len));
                json_object_object_add(j, "correct", json_object_new_boolean(ok));
                fprintf(o->items, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(j);
            }
        }
    }
    if (!rc && res->items == 0)
        rc = dsk_fail(err, EX_DATAERR, "%s: no items", task);
    res->accuracy = res->items ? (double)res->correct / (double)res->items : 0;
    dsk_gen_jobs_free(jobs, items.n);
    free(jobs);
    gen_items_free(&items);
    free(ids);
    dsk_buf_free(&text);
    dsk_buf_free(&shown);
    return rc;
}

void dsk_gen_result_free(dsk_gen_result *r)
{
    free(r->item_correct);
    memset(r, 0, sizeof *r);
}
