/* Per-document work of dsk-clean, run on worker threads. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clean/clean_internal.h"
#include "core/hash.h"
#include "core/json.h"
#include "text/messages.h"
#include "text/tool_calls.h"
#include "text/utf8.h"


void clean_worker_init(clean_worker *w, const clean_ctx *ctx)
{
    memset(w, 0, sizeof *w);
    dsk_rules_matcher_init(&w->matcher);
    size_t nh = (size_t)ctx->cfg->minhash_bands * (size_t)ctx->cfg->minhash_rows;
    w->sig = dsk_xmalloc((nh ? nh : 1) * sizeof *w->sig);
}

void clean_worker_free(clean_worker *w)
{
    dsk_buf *bufs[] = {&w->repaired, &w->scratch, &w->text, &w->c4_out, &w->joined, &w->field, &w->repl};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        dsk_buf_free(bufs[i]);
    dsk_text_view_free(&w->view);
    dsk_text_view_free(&w->view_c4);
    dsk_filter_scratch_free(&w->fscratch);
    dsk_rules_matcher_free(&w->matcher);
    free(w->sig);
    free(w->shingles);
}

static void fail(clean_batch *b, doc_slot *d, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void fail(clean_batch *b, doc_slot *d, const char *fmt, ...)
{
    d->status = DOC_FAIL;
    d->msg_off = b->msgs.len;
    dsk_buf_printf(&b->msgs, "%s:%llu: ", d->source, (unsigned long long)d->line_no);
    va_list ap;
    va_start(ap, fmt);
    char tmp[512];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    dsk_buf_adds(&b->msgs, tmp);
    dsk_buf_addc(&b->msgs, '\0');
}

/* Normalization and replace rules on one string; result in w->text. */
static int clean_text(clean_worker *w, const clean_ctx *ctx, doc_slot *d, const char *s, size_t n, dsk_err *err)
{
    dsk_normalize_counts nc = {0};
    dsk_normalize_text(s, n, &ctx->cfg->normalize, &w->text, &w->scratch, &nc);
    d->escapes += (uint32_t)nc.escapes_removed;
    d->controls += (uint32_t)nc.controls_removed;
    long reps = dsk_rules_replace(&ctx->cfg->rules, &w->matcher, &w->text, err);
    if (reps < 0)
        return -1;
    d->replacements += (uint32_t)reps;
    if (reps > 0) {
        /* Normalized again: a replacement must not put back what step 2
         * removes (a control character, an escape, a decomposed accent,
         * the double space where a tag was taken out). */
        dsk_normalize_counts again = {0};
        dsk_buf_clear(&w->repl);
        dsk_buf_add(&w->repl, w->text.data ? w->text.data : "", w->text.len);
        dsk_normalize_text(w->repl.data ? w->repl.data : "", w->repl.len, &ctx->cfg->normalize, &w->text, &w->scratch,
                           &again);
    }
    return 0;
}

/* Cleans a JSON string value in place and appends it to w->joined. */
static int clean_json_string(clean_worker *w, const clean_ctx *ctx, doc_slot *d, struct json_object *str, dsk_err *err)
{
    if (clean_text(w, ctx, d, json_object_get_string(str), (size_t)json_object_get_string_len(str), err))
        return -1;
    json_object_set_string_len(str, w->text.data ? w->text.data : "", (int)w->text.len);
    w->content_bytes += w->text.len;
    if (w->joined.len)
        dsk_buf_addc(&w->joined, '\n');
    dsk_buf_add(&w->joined, w->text.data ? w->text.data : "", w->text.len);
    return 0;
}

/* A chat transcript: an array of {"role": ..., "content": "..."}, with
 * dsk-docs(5)'s tool use: an assistant message's "tool_calls" (its content
 * then null or absent) and "tool" messages.  The contents are cleaned; the
 * calls are checked as dsk-bpe reads them and left as they are, their
 * text joined for the rules and dedup. */
static const char *clean_messages(clean_worker *w, const clean_ctx *ctx, doc_slot *d, struct json_object *messages,
                                  const char *field, dsk_err *err)
{
    if (dsk_messages_check(messages, field, err))
        return err->msg;
    for (size_t i = 0; i < json_object_array_length(messages); i++) {
        dsk_message m;
        if (dsk_message_read(messages, field, i, &m, err))
            return err->msg;
        dsk_buf_adds(&w->joined, dsk_role_names[m.role]);
        dsk_buf_addc(&w->joined, ':');
        if (m.content && clean_json_string(w, ctx, d, m.content, err))
            return err->msg;
        if (m.calls) {
            dsk_buf_addc(&w->joined, '\n');
            size_t before = w->joined.len;
            if (dsk_message_calls_render(&m, &w->joined, err))
                return err->msg;
            w->content_bytes += w->joined.len - before;   /* a call is content: a record of calls is not empty */
        }
    }
    return NULL;
}

static const char *clean_structured(clean_worker *w, const clean_ctx *ctx, doc_slot *d, struct json_object *obj,
                                    dsk_err *err)
{
    dsk_buf_clear(&w->joined);
    w->content_bytes = 0;
    struct json_object *messages, *tools = NULL;
    if (json_object_object_get_ex(obj, "tools", &tools) && tools) {   /* checked as dsk-bpe reads them */
        dsk_buf text = {0};
        int rc = dsk_tools_render(tools, &text, err);
        dsk_buf_free(&text);
        if (rc)
            return err->msg;
    }
    if (json_object_object_get_ex(obj, "messages", &messages)) {
        d->kind = KIND_CHAT;
        return clean_messages(w, ctx, d, messages, "messages", err);
    }
    d->kind = KIND_PREFERENCE;
    static const char *const fields[] = {"prompt", "chosen", "rejected"};
    for (size_t i = 0; i < 3; i++) {
        struct json_object *v = json_object_object_get(obj, fields[i]);
        if (dsk_json_is(v, json_type_string)) {
            if (clean_json_string(w, ctx, d, v, err))
                return err->msg;
        } else if (dsk_json_is(v, json_type_array)) {  /* conversational form */
            /* an answer is one assistant message, as dsk-bpe encodes it */
            struct json_object *m = json_object_array_get_idx(v, 0);
            struct json_object *role = dsk_json_is(m, json_type_object) ? dsk_json_get_string(m, "role") : NULL;
            if (i > 0 && (json_object_array_length(v) != 1 || !role || strcmp(json_object_get_string(role), "assistant"))) {
                dsk_fail(err, EX_DATAERR, "\"%s\" must be a string or one assistant message (the turns before the "
                         "answer go in \"prompt\")", fields[i]);
                return err->msg;
            }
            const char *why = clean_messages(w, ctx, d, v, fields[i], err);
            if (why)
                return why;
        } else {
            dsk_fail(err, EX_DATAERR, "\"%s\" must be a string or an array of messages", fields[i]);
            return err->msg;
        }
    }
    return NULL;
}

/* The prose filters, in datatrove's FineWeb order.  May replace w->text
 * (C4 removes lines); returns the rule that drops the document or NULL. */
static const char *filter_prose(clean_worker *w, const clean_ctx *ctx, doc_slot *d)
{
    const dsk_clean_config *c = ctx->cfg;
    const dsk_filter_params *p = &c->params;
    dsk_text_view *v = &w->view;
    dsk_text_view_build(v, w->text.data, w->text.len);
    w->view_current = 1;
    const char *rule = NULL;
    if ((c->filters & DSK_FILTER_GOPHER_REPETITION) && (rule = dsk_filter_gopher_repetition(v, p, &w->fscratch)))
        return rule;
    if ((c->filters & DSK_FILTER_GOPHER_QUALITY) && (rule = dsk_filter_gopher_quality(v, p)))
        return rule;
    if (c->filters & DSK_FILTER_C4) {
        size_t removed;
        int view_ok;
        rule = dsk_filter_c4(v, p, &w->fscratch, &w->c4_out, &removed, &w->view_c4, &view_ok);
        d->c4_lines += (uint32_t)removed;
        if (rule)
            return rule;
        /* The text without the removed lines or the citation marks (a
         * mark cut is what leaves the view not ok), and its view. */
        if (removed || !view_ok) {
            dsk_buf tmp = w->text;
            w->text = w->c4_out;
            w->c4_out = tmp;
            dsk_text_view tv = w->view;
            w->view = w->view_c4;
            w->view_c4 = tv;
            v = &w->view;
            if (!view_ok)
                dsk_text_view_build(v, w->text.data, w->text.len);
        }
    }
    if ((c->filters & DSK_FILTER_FINEWEB) && (rule = dsk_filter_fineweb(v, p, &w->fscratch)))
        return rule;
    if (p->min_chars && (double)v->nchars < p->min_chars)
        return "length.min_chars";
    if (p->max_chars && (double)v->nchars > p->max_chars)
        return "length.max_chars";
    return NULL;
}

static int pick_split(const clean_ctx *ctx, const char *text, size_t len)
{
    const double *r = ctx->cfg->split;
    double total = r[0] + r[1] + r[2];
    double u = (double)(dsk_hash64_seed(text, len, ctx->cfg->seed) >> 11) * 0x1.0p-53 * total;
    return u < r[0] ? SPLIT_TRAIN : u < r[0] + r[1] ? SPLIT_VAL : SPLIT_TEST;
}

static void dedup_keys(clean_worker *w, const clean_ctx *ctx, clean_batch *b, doc_slot *d, const char *text,
                       size_t len)
{
    XXH128_hash_t h = XXH3_128bits(text, len);
    d->hash_lo = h.low64;
    d->hash_hi = h.high64;
    if (!(ctx->cfg->dedup & DSK_DEDUP_MINHASH))
        return;
    if (!w->view_current)
        dsk_text_view_build(&w->view, text, len);
    if (w->view.n_words == 0)
        return;
    dsk_minhash_signature(&ctx->minhash, &w->view, w->sig, &w->shingles, &w->cap_shingles);
    int nb = ctx->minhash.bands;  /* the batch has room for nb keys per document */
    d->bands_off = (size_t)(d - b->docs) * (size_t)nb;
    dsk_minhash_band_keys(&ctx->minhash, w->sig, b->bands + d->bands_off);
    d->has_bands = 1;
}

static void serialize(clean_batch *b, doc_slot *d, struct json_object *obj)
{
    d->out_off = b->out.len;
    dsk_json_append(obj, &b->out);
    dsk_buf_addc(&b->out, '\n');
    d->out_len = b->out.len - d->out_off;
}

void clean_doc(clean_worker *w, const clean_ctx *ctx, clean_batch *b, doc_slot *d)
{
    const dsk_clean_config *c = ctx->cfg;
    const char *raw = b->in.raw.data + d->raw_off;
    size_t raw_len = d->raw_len;
    dsk_err err = {0};
    d->status = DOC_KEEP;
    d->kind = KIND_PLAIN;
    w->view_current = 0;

    /* 1. UTF-8 */
    size_t bad = dsk_utf8_find_invalid(raw, raw_len);
    if (bad < raw_len) {
        if (c->utf8 == DSK_UTF8_FAIL) {
            fail(b, d, "invalid UTF-8 at byte %zu of the record", bad);
            return;
        }
        d->utf8_repaired = 1;
        if (c->utf8 == DSK_UTF8_DROP) {
            d->status = DOC_DROP;
            d->rule = "utf8.invalid";
            if (!ctx->want_rejects)
                return;
        }
        dsk_buf_clear(&w->repaired);
        dsk_utf8_repair(raw, raw_len, &w->repaired);
        raw = w->repaired.data;
        raw_len = w->repaired.len;
    }

    /* 2. the document object */
    struct json_object *obj;
    struct json_object *text_json = NULL;
    if (c->records.mode == DSK_REC_JSONL) {
        char why[160];
        obj = dsk_json_parse(raw, raw_len, why, sizeof why);
        if (!obj) {
            fail(b, d, "malformed JSON: %s", why);
            return;
        }
        if (!dsk_json_is(obj, json_type_object)) {
            json_object_put(obj);
            fail(b, d, "a document must be a JSON object");
            return;
        }
        /* The kinds as dsk-bpe tells them: a string text field, else
         * messages, else all three preference fields (a null or other
         * text beside them, as merged datasets leave, is no text). */
        int has_field = json_object_object_get_ex(obj, c->field, &text_json) && text_json;
        int plain = dsk_json_is(text_json, json_type_string);
        int chat = json_object_object_get_ex(obj, "messages", NULL);
        int preference = json_object_object_get_ex(obj, "prompt", NULL) &&
                         json_object_object_get_ex(obj, "chosen", NULL) &&
                         json_object_object_get_ex(obj, "rejected", NULL);
        if (!plain && (chat || preference)) {
            const char *why2 = clean_structured(w, ctx, d, obj, &err);
            if (why2) {
                json_object_put(obj);
                fail(b, d, "%s", why2);
                return;
            }
        } else if (!plain) {
            json_object_put(obj);
            if (has_field)
                fail(b, d, "\"%s\" is not a string", c->field);
            else
                fail(b, d, "no string \"%s\" field, no \"messages\", no prompt/chosen/rejected", c->field);
            return;
        }
    } else {
        obj = json_object_new_object();
        text_json = json_object_new_string_len(raw, (int)raw_len);
        json_object_object_add(obj, "text", text_json);
    }

    /* 3. clean, filter */
    const char *text;
    size_t len;
    if (d->kind == KIND_PLAIN) {
        if (clean_text(w, ctx, d, json_object_get_string(text_json), (size_t)json_object_get_string_len(text_json),
                       &err)) {
            json_object_put(obj);
            fail(b, d, "%s", err.msg);
            return;
        }
        text = w->text.data ? w->text.data : "";
        len = w->text.len;
    } else {
        text = w->joined.data ? w->joined.data : "";
        len = w->joined.len;
    }
    /* A chat or preference record counts as empty when every string in it
     * is (its joined text still holds the role names). */
    if (d->status == DOC_KEEP && (len == 0 || (d->kind != KIND_PLAIN && w->content_bytes == 0))) {
        d->status = DOC_DROP;
        d->rule = "empty";
    }
    if (d->status == DOC_KEEP) {
        if (dsk_rules_verdict(&c->rules, &w->matcher, text, len, &d->rule, &err)) {
            json_object_put(obj);
            fail(b, d, "%s", err.msg);
            return;
        }
        if (d->rule)
            d->status = DOC_DROP;
    }
    if (d->status == DOC_KEEP && d->kind == KIND_PLAIN &&
        (c->filters || c->params.min_chars || c->params.max_chars)) {
        if ((d->rule = filter_prose(w, ctx, d)))
            d->status = DOC_DROP;
        text = w->text.data ? w->text.data : "";
        len = w->text.len;
    }
    if (d->kind == KIND_PLAIN)
        json_object_set_string_len(text_json, text, (int)len);

    /* 4. keys for the in-order stage, split, output */
    if (d->status == DOC_KEEP) {
        if (c->dedup)
            dedup_keys(w, ctx, b, d, text, len);
        struct json_object *given = dsk_json_get_string(obj, "split");
        const char *gs = given ? json_object_get_string(given) : NULL;
        int split = -1;
        for (int i = 0; gs && i < 3; i++)
            if (strcmp(gs, dsk_split_names[i]) == 0)
                split = i;
        d->split = split >= 0 ? split : pick_split(ctx, text, len);
        if (split < 0)
            json_object_object_add(obj, "split", json_object_new_string(dsk_split_names[d->split]));
        if (c->records.mode != DSK_REC_JSONL) {
            json_object_object_add(obj, "source", json_object_new_string(d->source));
            json_object_object_add(obj, "line", json_object_new_uint64(d->line_no));
        }
        d->text_bytes = len;
        serialize(b, d, obj);
    } else if (ctx->want_rejects) {
        json_object_object_add(obj, "rejected_by", json_object_new_string(d->rule));
        if (c->records.mode != DSK_REC_JSONL) {
            json_object_object_add(obj, "source", json_object_new_string(d->source));
            json_object_object_add(obj, "line", json_object_new_uint64(d->line_no));
        }
        serialize(b, d, obj);
    }
    json_object_put(obj);
}
