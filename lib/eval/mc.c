/* Multiple-choice tasks scored by log-likelihood, the way
 * lm-evaluation-harness scores them: each choice is a continuation of
 * the context; acc is right when the gold choice has the highest summed
 * log-likelihood, acc_norm when it has the highest log-likelihood per
 * character of the choice. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "eval/eval.h"
#include "eval/task_file.h"
#include "text/utf8.h"

/* One (item, choice) row: context tokens then continuation tokens. */
typedef struct mc_request {
    long item;
    int choice;
    uint32_t *tokens;
    int n_tokens, n_context;
} mc_request;

typedef struct mc_item {
    int n_choices, gold;
    double *ll;         /* summed log-likelihood per choice */
    double *chars;      /* the choice's length in characters */
} mc_item;

static double utf8_chars(const char *s, size_t n)
{
    double c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

static int encode(dsk_loaded *l, dsk_bpe_encoder *e, const char *s, size_t n, dsk_err *err)
{
    e->n_ids = 0;
    return dsk_bpe_encode(&l->tok, e, s, n, 0, err);
}

/* Python's str.isspace, by which the harness's rstrip() goes. */
static int py_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* The length of ctx without its trailing white space.  The context may
 * not be valid UTF-8 (it is refused later, when encoded): a character is
 * decoded only when it is whole and valid. */
static size_t rstrip_len(const char *ctx, size_t n)
{
    while (n > 0) {
        size_t at = n - 1, len;
        while (at > 0 && n - at < 4 && ((unsigned char)ctx[at] & 0xC0) == 0x80)
            at--;
        if (dsk_utf8_seq_len((const uint8_t *)ctx + at, n - at) != n - at ||
            !py_space(dsk_utf8_decode((const uint8_t *)ctx + at, &len)))
            break;
        n = at;
    }
    return n;
}

/* The harness's split: trailing white space of the context moves to the
 * continuation; the continuation's tokens are those of context+choice
 * after the context's own tokens, so a merge across the boundary is
 * scored as the model would see it. */
static int make_request(dsk_loaded *l, dsk_bpe_encoder *e, const char *ctx, size_t nctx, const char *choice,
                        size_t nchoice, mc_request *rq, dsk_err *err)
{
    size_t keep = rstrip_len(ctx, nctx);
    dsk_buf whole = {0};
    dsk_buf_add(&whole, ctx, nctx);
    dsk_buf_add(&whole, choice, nchoice);
    int rc = encode(l, e, whole.data, whole.len, err);
    uint32_t *w = NULL;
    size_t nw = e->n_ids;
    if (!rc) {
        w = dsk_xmalloc((nw + 1) * sizeof *w);
        memcpy(w, e->ids, nw * sizeof *w);
        rc = encode(l, e, ctx, keep, err);
    }
    dsk_buf_free(&whole);
    if (rc) {
        free(w);
        return rc;
    }
    size_t nc = e->n_ids;
    if (nc == 0) {
        /* An empty context: the continuation follows <|endoftext|>, as a
         * document start would. */
        uint32_t eot = dsk_tokenizer_special(&l->tok, "<|endoftext|>");
        if (eot == DSK_BPE_NO_TOKEN) {
            free(w);
            return dsk_fail(err, EX_DATAERR, "empty context and the tokenizer has no <|endoftext|>");
        }
        memmove(w + 1, w, nw * sizeof *w);
        w[0] = eot;
        nw++;
        nc = 1;
    } else if (nc >= nw || memcmp(w, e->ids, nc * sizeof *w) != 0) {
        /* The context's tokens are not a prefix of the whole: score the
         * choice's own tokens after the context's. */
        uint32_t *c = dsk_xmalloc(nc * sizeof *c);
        memcpy(c, e->ids, nc * sizeof *c);
        dsk_buf tail = {0};
        dsk_buf_add(&tail, ctx + keep, nctx - keep);
        dsk_buf_add(&tail, choice, nchoice);
        rc = encode(l, e, tail.data ? tail.data : "", tail.len, err);
        dsk_buf_free(&tail);
        if (rc) {
            free(c);
            free(w);
            return rc;
        }
        nw = nc + e->n_ids;
        w = dsk_xrealloc(w, (nw + 1) * sizeof *w);
        memcpy(w, c, nc * sizeof *w);
        memcpy(w + nc, e->ids, e->n_ids * sizeof *w);
        free(c);
    }
    if (nw == nc) {
        free(w);
        return dsk_fail(err, EX_DATAERR, "a choice encodes to no tokens");
    }
    rq->tokens = w;
    rq->n_tokens = (int)nw;
    rq->n_context = (int)nc;
    return 0;
}

/* Runs rows [0, n) of reqs as one batch and adds their log-likelihoods. */
static int run_batch(dsk_loaded *l, mc_request *reqs, int n, mc_item *items, int32_t *tok, int32_t *tgt, int32_t *pos,
                     float *w, double *row_loss, dsk_err *err)
{
    dsk_model *m = l->model;
    int Tmax = m->cfg.max_seq_len, T = 1;
    for (int r = 0; r < n; r++) {
        int len = reqs[r].n_tokens - 1;
        if (len > T)
            T = len < Tmax ? len : Tmax;
    }
    for (int r = 0; r < n; r++) {
        mc_request *q = &reqs[r];
        /* Too long for the model: keep the last T+1 tokens, as the
         * harness truncates the context from the left. */
        int drop = q->n_tokens - 1 > T ? q->n_tokens - 1 - T : 0;
        const uint32_t *s = q->tokens + drop;
        int len = q->n_tokens - 1 - drop, ctx = q->n_context - drop;
        if (ctx < 1) {
            /* The choice itself was cut: acc_norm divides by the
             * characters of the tokens scored, not of the whole choice
             * (which would flatter a choice longer than the model). */
            dsk_buf text = {0};
            int rc = dsk_bpe_decode(&l->tok, s + 1, (size_t)len, &text, err);
            if (rc) {
                dsk_buf_free(&text);
                return rc;
            }
            double c = utf8_chars(text.data ? text.data : "", text.len);
            items[q->item].chars[q->choice] = c > 0 ? c : 1;
            dsk_buf_free(&text);
        }
        size_t at = (size_t)r * T;
        for (int t = 0; t < T; t++) {
            int live = t < len;
            tok[at + t] = live ? (int32_t)s[t] : 0;
            tgt[at + t] = live ? (int32_t)s[t + 1] : -1;
            pos[at + t] = t;
            w[at + t] = live && t + 1 >= ctx ? 1.0f : 0.0f;
        }
    }
    dsk_batch bt = {n, T, tok, tgt, pos, w};
    int rc = dsk_model_set_batch(m, &bt, err);
    if (rc)
        return rc;
    dsk_model_forward(m, 0);
    dsk_model_row_losses(m, row_loss);
    for (int r = 0; r < n; r++)
        items[reqs[r].item].ll[reqs[r].choice] = -row_loss[r];
    return 0;
}

static int argmax(const double *v, const double *div, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if ((div ? v[i] / div[i] : v[i]) > (div ? v[best] / div[best] : v[best]))
            best = i;   /* ties go to the first, as numpy's argmax */
    return best;
}

static int parse_item(dsk_loaded *l, dsk_bpe_encoder *e, struct json_object *doc, long item, mc_item *it,
                      mc_request **reqs, long *n_reqs, long *cap_reqs, dsk_err *err)
{
    struct json_object *ctx = dsk_json_get_string(doc, "context"), *choices = NULL, *gold = NULL;
    struct json_object *prompt;
    if (!ctx)
        return dsk_fail(err, EX_DATAERR, "needs a string \"context\"%s",
                        json_object_object_get_ex(doc, "prompt", &prompt)
                            ? " (an mc item; one with \"prompt\" is a gen item: dsk-eval gen)" : "");
    if (!json_object_object_get_ex(doc, "choices", &choices) || !dsk_json_is(choices, json_type_array) ||
        json_object_array_length(choices) < 2)
        return dsk_fail(err, EX_DATAERR, "needs \"choices\": an array of at least two strings");
    if (!json_object_object_get_ex(doc, "gold", &gold) || !dsk_json_is(gold, json_type_int))
        return dsk_fail(err, EX_DATAERR, "needs an integer \"gold\"");
    int nch = (int)json_object_array_length(choices);
    int64_t g = json_object_get_int64(gold);
    if (g < 0 || g >= nch)
        return dsk_fail(err, EX_DATAERR, "\"gold\" %s is not a choice index (0..%d)",   /* as written: g saturates */
                        json_object_to_json_string_ext(gold, JSON_C_TO_STRING_PLAIN), nch - 1);
    it->n_choices = nch;
    it->gold = (int)g;
    it->ll = dsk_xcalloc((size_t)nch, sizeof *it->ll);
    it->chars = dsk_xcalloc((size_t)nch, sizeof *it->chars);
    for (int c = 0; c < nch; c++) {
        struct json_object *ch = json_object_array_get_idx(choices, (size_t)c);
        if (!dsk_json_is(ch, json_type_string))
            return dsk_fail(err, EX_DATAERR, "choice %d is not a string", c);
        const char *s = json_object_get_string(ch);
        size_t n = (size_t)json_object_get_string_len(ch);
        it->chars[c] = utf8_chars(s, n) > 0 ? utf8_chars(s, n) : 1;
        if (*n_reqs == *cap_reqs) {
            *cap_reqs = *cap_reqs ? 2 * *cap_reqs : 64;
            *reqs = dsk_xrealloc(*reqs, (size_t)*cap_reqs * sizeof **reqs);
        }
        mc_request *q = &(*reqs)[*n_reqs];
        q->item = item;
        q->choice = c;
        int rc = make_request(l, e, json_object_get_string(ctx), (size_t)json_object_get_string_len(ctx), s, n, q,
                              err);
        if (rc) {
            char tmp[sizeof err->msg];
            memcpy(tmp, err->msg, sizeof tmp);
            return dsk_fail(err, rc, "choice %d: %.900s", c, tmp);
        }
        (*n_reqs)++;
    }
    return 0;
}

/* The items of a task and their requests (a choice each), read whole
 * before any is scored: a bad line is found before the work. */
typedef struct mc_task {
    mc_item *items;
    mc_request *reqs;
    long n_items, n_reqs;
} mc_task;

static void mc_task_free(mc_task *t)
{
    for (long i = 0; i < t->n_items; i++)
        free(t->items[i].ll), free(t->items[i].chars);
    for (long r = 0; r < t->n_reqs; r++)
        free(t->reqs[r].tokens);
    free(t->items);
    free(t->reqs);
    memset(t, 0, sizeof *t);
}

static int mc_read_all(dsk_loaded *l, const char *task, mc_task *t, dsk_err *err)
{
    memset(t, 0, sizeof *t);
    dsk_task_file tf;
    int rc = dsk_task_file_open(&tf, task, err);
    if (rc)
        return rc;
    dsk_bpe_encoder enc;
    dsk_bpe_encoder_init(&enc, &l->tok);
    long cap_items = 0, cap_reqs = 0;
    struct json_object *doc;
    int got;
    while ((got = dsk_task_file_next(&tf, &doc, err)) > 0) {
        if (t->n_items == cap_items) {
            cap_items = cap_items ? 2 * cap_items : 64;
            t->items = dsk_xrealloc(t->items, (size_t)cap_items * sizeof *t->items);
        }
        memset(&t->items[t->n_items], 0, sizeof *t->items);
        rc = parse_item(l, &enc, doc, t->n_items, &t->items[t->n_items], &t->reqs, &t->n_reqs, &cap_reqs, err);
        t->n_items++;
        json_object_put(doc);
        if (rc) {
            char tmp[sizeof err->msg];
            memcpy(tmp, err->msg, sizeof tmp);
            dsk_fail(err, rc, "%s:%ld: %.900s", task, tf.lineno, tmp);
            break;
        }
    }
    if (got < 0)
        rc = err->code;
    if (!rc && t->n_items == 0)
        rc = dsk_fail(err, EX_DATAERR, "%s: no items", task);
    dsk_task_file_close(&tf);
    dsk_bpe_encoder_free(&enc);
    if (rc)
        mc_task_free(t);
    return rc;
}

int dsk_eval_mc_check(dsk_loaded *l, const char *task, dsk_err *err)
{
    mc_task t;
    int rc = mc_read_all(l, task, &t, err);
    if (!rc)
        mc_task_free(&t);
    return rc;
}

int dsk_eval_mc(dsk_loaded *l, const char *task, const dsk_mc_opts *o, dsk_mc_result *res, dsk_err *err)
{
    memset(res, 0, sizeof *res);
    mc_task t;
    int rc = mc_read_all(l, task, &t, err);
    if (rc)
        return rc;
    mc_item *items = t.items;
    mc_request *reqs = t.reqs;
    long n_items = t.n_items, n_reqs = t.n_reqs;

    if (!rc) {
        dsk_model *m = l->model;
        int B = o->batch > 0 ? o->batch : 8, T = m->cfg.max_seq_len;
        if (B > n_reqs)
            B = (int)n_reqs;   /* memory for the rows there are, not for --batch's */
        m->recompute = 1;   /* forward passes only: one shared set of layer buffers */
        dsk_model_alloc_batch(m, B, T);
        size_t n = (size_t)B * T;
        int32_t *tok = dsk_xmalloc(n * 4), *tgt = dsk_xmalloc(n * 4), *pos = dsk_xmalloc(n * 4);
        float *w = dsk_xmalloc(n * 4);
        double *row_loss = dsk_xmalloc((size_t)B * sizeof *row_loss);
        for (long r = 0; r < n_reqs && !rc; r += B)
            rc = run_batch(l, reqs + r, (int)(n_reqs - r < B ? n_reqs - r : B), items, tok, tgt, pos, w, row_loss,
                           err);
        free(tok), free(tgt), free(pos), free(w), free(row_loss);
    }
    if (!rc) {
        res->items = n_items;
        res->item_acc = dsk_xmalloc((size_t)n_items * sizeof *res->item_acc);
        res->item_acc_norm = dsk_xmalloc((size_t)n_items * sizeof *res->item_acc_norm);
        double acc = 0, acc_norm = 0;
        for (long i = 0; i < n_items; i++) {
            mc_item *it = &items[i];
            int pred = argmax(it->ll, NULL, it->n_choices), pred_norm = argmax(it->ll, it->chars, it->n_choices);
            res->item_acc[i] = pred == it->gold;
            res->item_acc_norm[i] = pred_norm == it->gold;
            acc += res->item_acc[i];
            acc_norm += res->item_acc_norm[i];
            if (o->items) {
                struct json_object *j = json_object_new_object(), *ll = json_object_new_array(),
                                   *chars = json_object_new_array();
                json_object_object_add(j, "item", json_object_new_int64(i + 1));
                for (int c = 0; c < it->n_choices; c++) {
                    json_object_array_add(ll, isfinite(it->ll[c]) ? dsk_json_new_double(it->ll[c]) : NULL);
                    json_object_array_add(chars, json_object_new_int64((int64_t)it->chars[c]));
                }
                json_object_object_add(j, "loglikelihoods", ll);
                json_object_object_add(j, "chars", chars);
                json_object_object_add(j, "gold", json_object_new_int(it->gold));
                json_object_object_add(j, "pred", json_object_new_int(pred));
                json_object_object_add(j, "pred_norm", json_object_new_int(pred_norm));
                json_object_object_add(j, "acc", json_object_new_int(pred == it->gold));
                json_object_object_add(j, "acc_norm", json_object_new_int(pred_norm == it->gold));
                fprintf(o->items, "%s\n", json_object_to_json_string_ext(j, JSON_C_TO_STRING_NOSLASHESCAPE));
                json_object_put(j);
            }
        }
        res->acc = acc / n_items;
        res->acc_norm = acc_norm / n_items;
    }
    mc_task_free(&t);
    return rc;
}

void dsk_mc_result_free(dsk_mc_result *r)
{
    free(r->item_acc);
    free(r->item_acc_norm);
    memset(r, 0, sizeof *r);
}
