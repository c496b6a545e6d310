/* libFuzzer target: OpenAI request bodies.  The first byte picks the
 * endpoint and the limits (small ones, so the limit paths are reached),
 * the rest is the body.  A body parses or fails with a clean error object;
 * a parsed request keeps its invariants (prompts, logit bias, ranges);
 * and the first prompt's text, fed to the stop
 * logic byte by byte with the request's stop strings, never makes it take
 * back text it already released. */
#include <string.h>

#include "serve/openai.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static void check_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            __builtin_trap();
}

/* A parsed request's prompts: 1..max_prompts, each text or token ids. */
static void check_prompts(const dsk_openai_request *req, const dsk_openai_limits *lim)
{
    if (!req->prompts)
        return;
    if (req->n_prompts < 1 || req->n_prompts > lim->max_prompts)
        __builtin_trap();
    for (int i = 0; i < req->n_prompts; i++) {
        const dsk_openai_prompt *p = &req->prompts[i];
        if (!p->text == !p->ids || (p->ids && p->n_ids < 1))
            __builtin_trap();
        for (int j = 0; j < p->n_ids; j++)
            if (p->ids[j] < 0)
                __builtin_trap();
    }
    if (req->n_logit_bias < 0 || req->n_logit_bias > DSK_OPENAI_MAX_LOGIT_BIAS)
        __builtin_trap();
    for (int i = 0; i < req->n_logit_bias; i++)
        if (req->logit_bias[i].token < 0 || !(req->logit_bias[i].bias >= -100 && req->logit_bias[i].bias <= 100))
            __builtin_trap();
}

static void check_stops(const dsk_openai_request *req)
{
    if (!req->prompts || !req->prompts[0].text)
        return;
    const char *text = req->prompts[0].text;
    size_t len = req->prompts[0].len < 512 ? req->prompts[0].len : 512, safe = 0;
    for (size_t n = 1; n <= len; n++) {
        dsk_openai_stop_result r;
        dsk_openai_stop_check(text, n, safe, req->stop, req->n_stop, &r);
        if (r.safe < safe || r.safe > n)
            __builtin_trap();
        if (r.matched) {
            size_t sl = strlen(req->stop[r.which]);
            if (r.safe + sl > n || memcmp(text + r.safe, req->stop[r.which], sl) != 0)
                __builtin_trap();
            break;
        }
        safe = r.safe;
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    int kind = data[0] & 1 ? DSK_OPENAI_CHAT : DSK_OPENAI_COMPLETION;
    dsk_openai_limits lim;
    dsk_openai_limits_default(&lim);
    if (data[0] & 2) {
        lim.max_body = 256;
        lim.max_n = 2;
        lim.ctx_len = 16;
        lim.default_max_tokens = 32;
        lim.max_messages = 3;
        lim.max_stop_len = 4;
        lim.max_prompts = 3;
    }
    dsk_openai_request req;
    dsk_openai_error e;
    int rc = dsk_openai_parse((const char *)data + 1, size - 1, kind, &lim, &req, &e);
    dsk_buf b = {0};
    if (rc) {
        if (rc != e.status || (rc != 400 && rc != 413) || req.chat || req.prompts || req.n_stop || req.model ||
            req.logit_bias)
            __builtin_trap();
        check_printable(e.message);
        check_printable(e.param);
        dsk_openai_error_json(&e, &b);
        char msg[128];
        struct json_object *o = dsk_json_parse(b.data, b.len, msg, sizeof msg);
        if (!o)
            __builtin_trap();
        json_object_put(o);
    } else {
        if (e.status || !req.model || req.n < 1 || req.n > lim.max_n || req.max_tokens < (req.echo ? 0 : 1) ||
            (req.max_tokens_given && req.max_tokens > lim.ctx_len) || req.n_stop > DSK_OPENAI_MAX_STOP ||
            req.temperature < 0 || req.temperature > 2 || !(req.top_p > 0 && req.top_p <= 1) || req.top_k < 0 ||
            !(req.min_p >= 0 && req.min_p <= 1) || !(req.repetition_penalty > 0 && req.repetition_penalty <= 100) ||
            (kind == DSK_OPENAI_CHAT) != (req.chat != NULL) || (kind == DSK_OPENAI_COMPLETION) != (req.prompts != NULL) ||
            (req.echo && kind != DSK_OPENAI_COMPLETION))
            __builtin_trap();
        check_prompts(&req, &lim);
        dsk_openai_warning_header(&req, &b);
        check_printable(b.data ? b.data : "");
        if (dsk_openai_fit_context(&req, 8, &lim, &e) == 0 && req.max_tokens > lim.ctx_len - 8)
            __builtin_trap();
        check_stops(&req);
        /* the model name goes back out in JSON that must parse */
        dsk_buf_clear(&b);
        dsk_openai_meta m = {kind, "id", req.model, 0, req.include_usage};
        const dsk_openai_prompt *p0 = req.prompts ? &req.prompts[0] : NULL;
        dsk_openai_choice c = {0, p0 && p0->text ? p0->text : "", p0 && p0->text ? p0->len : 0, DSK_FINISH_STOP, NULL, 0};
        dsk_openai_usage u = {1, 1};
        dsk_openai_response_json(&m, &c, 1, &u, &b);
        char msg[128];
        struct json_object *o = dsk_json_parse(b.data, b.len, msg, sizeof msg);
        if (!o)
            __builtin_trap();
        json_object_put(o);
    }
    dsk_buf_free(&b);
    dsk_openai_request_free(&req);
    return 0;
}
