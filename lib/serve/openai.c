#include "serve/openai.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/printbuf.h>

#include "core/err.h"
#include "core/json.h"
#include "text/tool_calls.h"
#include "text/utf8.h"

void dsk_openai_limits_default(dsk_openai_limits *lim)
{
    lim->max_body = 1 << 20;
    lim->max_n = 8;
    lim->max_prompts = 64;
    lim->ctx_len = 2048;
    lim->default_max_tokens = 256;
    lim->max_messages = 1024;
    lim->max_stop_len = 256;
}

/* ---- errors ---------------------------------------------------------------- */

/* Error text ends up in JSON and in logs: keep it to printable ASCII so a
 * value quoted from a hostile body can neither break a line nor leave a
 * UTF-8 character cut in half by truncation. */
static void clean_ascii(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            *s = '?';
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
    clean_ascii(dst);
}

int dsk_openai_fail(dsk_openai_error *e, int status, const char *param, const char *code, const char *fmt, ...)
{
    e->status = status;
    copy_field(e->type, sizeof e->type, "invalid_request_error");
    copy_field(e->param, sizeof e->param, param);
    copy_field(e->code, sizeof e->code, code);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    clean_ascii(e->message);
    return status;
}

static struct json_object *str_or_null(const char *s)
{
    return s && *s ? json_object_new_string(s) : NULL;
}

static struct json_object *error_object(const dsk_openai_error *e)
{
    struct json_object *inner = json_object_new_object();
    json_object_object_add(inner, "message", json_object_new_string(e->message));
    json_object_object_add(inner, "type", json_object_new_string(e->type[0] ? e->type : "invalid_request_error"));
    json_object_object_add(inner, "param", str_or_null(e->param));
    json_object_object_add(inner, "code", str_or_null(e->code));
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "error", inner);
    return o;
}

void dsk_openai_error_json(const dsk_openai_error *e, dsk_buf *out)
{
    struct json_object *o = error_object(e);
    dsk_json_append(o, out);
    json_object_put(o);
}

/* ---- request parsing --------------------------------------------------------- */

static const char *type_desc(struct json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_int: return "an integer";
    case json_type_double: return "a decimal number";
    case json_type_string: return "a string";
    case json_type_array: return "an array";
    case json_type_object: return "an object";
    }
    return "something else";
}

static int bad_type(dsk_openai_error *e, const char *param, const char *want, struct json_object *v)
{
    return dsk_openai_fail(e, 400, param, "invalid_type", "Invalid type for '%s': expected %s, but got %s instead.",
                           param, want, type_desc(v));
}

static int get_bool(struct json_object *v, const char *param, int *out, dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_boolean))
        return bad_type(e, param, "a boolean", v);
    *out = json_object_get_boolean(v);
    return 0;
}

/* An integer in [lo, hi].  A decimal with an integral value (3.0) passes,
 * as it does with OpenAI's validator. */
static int get_int(struct json_object *v, const char *param, int64_t lo, int64_t hi, int64_t *out,
                   dsk_openai_error *e)
{
    int64_t x;
    if (dsk_json_is(v, json_type_int)) {
        x = json_object_get_int64(v);  /* saturates beyond int64 */
    } else if (dsk_json_is(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!(d == floor(d) && fabs(d) < 9.2e18))
            return bad_type(e, param, "an integer", v);
        x = (int64_t)d;
    } else {
        return bad_type(e, param, "an integer", v);
    }
    /* The value as the client wrote it: x saturates past int64.  (Printed
     * on errors only: json-c keeps the text in the value until the tree is
     * freed, and a prompt of token ids has many.) */
    if (x < lo)
        return dsk_openai_fail(e, 400, param, "integer_below_min_value",
                               "Invalid '%s': integer below minimum value. Expected a value >= %" PRId64
                               ", but got %s instead.", param, lo,
                               json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    if (x > hi)
        return dsk_openai_fail(e, 400, param, "integer_above_max_value",
                               "Invalid '%s': integer above maximum value. Expected a value <= %" PRId64
                               ", but got %s instead.", param, hi,
                               json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
    *out = x;
    return 0;
}

/* A number in [lo, hi]; lo_open excludes lo itself. */
static int get_number(struct json_object *v, const char *param, double lo, int lo_open, double hi, double *out,
                      dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_int) && !dsk_json_is(v, json_type_double))
        return bad_type(e, param, "a number", v);
    double x = json_object_get_double(v);
    if (!isfinite(x))
        return dsk_openai_fail(e, 400, param, "invalid_value", "Invalid '%s': the value must be finite.", param);
    if (x < lo || (lo_open && x == lo))
        return dsk_openai_fail(e, 400, param, "decimal_below_min_value",
                               "Invalid '%s': decimal below minimum value. Expected a value %s %g, but got %g "
                               "instead.", param, lo_open ? ">" : ">=", lo, x);
    if (x > hi)
        return dsk_openai_fail(e, 400, param, "decimal_above_max_value",
                               "Invalid '%s': decimal above maximum value. Expected a value <= %g, but got %g "
                               "instead.", param, hi, x);
    *out = x;
    return 0;
}

static void add_ignored(dsk_openai_request *req, const char *name)
{
    if (req->n_ignored < DSK_OPENAI_MAX_IGNORED)
        req->ignored[req->n_ignored] = dsk_xstrndup(name, strnlen(name, 64));  /* copies exactly n bytes */
    req->n_ignored++;
}

/* One chat message's content as a string object: a string as it is, text
 * parts joined by newlines (as vLLM does), null only for an assistant turn
 * (one that carried tool calls in OpenAI's API). */
static int message_content(struct json_object *v, int i, int assistant, struct json_object **out,
                           dsk_openai_error *e)
{
    char param[96];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (dsk_json_is(v, json_type_string)) {
        *out = json_object_get(v);
        return 0;
    }
    if ((!v || dsk_json_is(v, json_type_null)) && assistant) {
        *out = json_object_new_string("");
        return 0;
    }
    if (!v)
        return dsk_openai_fail(e, 400, param, "missing_required_parameter", "Missing required parameter: '%s'.",
                               param);
    if (!dsk_json_is(v, json_type_array))
        return bad_type(e, param, "a string or an array of content parts", v);
    dsk_buf text = {0};
    size_t n = json_object_array_length(v);
    for (size_t j = 0; j < n; j++) {
        struct json_object *part = json_object_array_get_idx(v, j), *type = NULL, *t = NULL;
        char pp[128];
        snprintf(pp, sizeof pp, "%s[%zu]", param, j);
        if (!dsk_json_is(part, json_type_object)) {
            dsk_buf_free(&text);
            return bad_type(e, pp, "an object", part);
        }
        snprintf(pp, sizeof pp, "%s[%zu].type", param, j);
        if (!json_object_object_get_ex(part, "type", &type) || !dsk_json_is(type, json_type_string) ||
            strcmp(json_object_get_string(type), "text") != 0) {
            dsk_buf_free(&text);
            return dsk_openai_fail(e, 400, pp, "invalid_value",
                                   "Invalid value for '%s': only content parts of type 'text' are supported.", pp);
        }
        snprintf(pp, sizeof pp, "%s[%zu].text", param, j);
        if (!json_object_object_get_ex(part, "text", &t) || !dsk_json_is(t, json_type_string)) {
            dsk_buf_free(&text);
            return t ? bad_type(e, pp, "a string", t)
                     : dsk_openai_fail(e, 400, pp, "missing_required_parameter",
                                       "Missing required parameter: '%s'.", pp);
        }
        if (j)
            dsk_buf_addc(&text, '\n');
        dsk_buf_add(&text, json_object_get_string(t), (size_t)json_object_get_string_len(t));
    }
    *out = json_object_new_string_len(text.data ? text.data : "", (int)text.len);
    dsk_buf_free(&text);
    return 0;
}

/* An assistant message's "tool_calls", as OpenAI checks them, and with
 * arguments the template can write (a JSON object). */
static int check_message_calls(struct json_object *calls, int i, dsk_openai_error *e)
{
    char param[96];
    snprintf(param, sizeof param, "messages[%d].tool_calls", i);
    if (!dsk_json_is(calls, json_type_array))
        return bad_type(e, param, "an array", calls);
    if (json_object_array_length(calls) == 0)
        return dsk_openai_fail(e, 400, param, "empty_array",
                               "Invalid '%s': empty array. Expected an array with minimum length 1, but got an "
                               "empty array instead.", param);
    for (size_t k = 0; k < json_object_array_length(calls); k++) {
        struct json_object *call = json_object_array_get_idx(calls, k), *v, *fn;
        snprintf(param, sizeof param, "messages[%d].tool_calls[%zu]", i, k);
        if (!dsk_json_is(call, json_type_object))
            return bad_type(e, param, "an object", call);
        static const char *const need[] = {"id", "type", "function"};
        for (int f = 0; f < 3; f++) {
            snprintf(param, sizeof param, "messages[%d].tool_calls[%zu].%s", i, k, need[f]);
            if (!json_object_object_get_ex(call, need[f], &v))
                return dsk_openai_fail(e, 400, param, "missing_required_parameter",
                                       "Missing required parameter: '%s'.", param);
            if (!dsk_json_is(v, f < 2 ? json_type_string : json_type_object))
                return bad_type(e, param, f < 2 ? "a string" : "an object", v);
        }
        json_object_object_get_ex(call, "function", &fn);
        static const char *const fields[] = {"name", "arguments"};
        for (int f = 0; f < 2; f++) {
            snprintf(param, sizeof param, "messages[%d].tool_calls[%zu].function.%s", i, k, fields[f]);
            if (!json_object_object_get_ex(fn, fields[f], &v))
                return dsk_openai_fail(e, 400, param, "missing_required_parameter",
                                       "Missing required parameter: '%s'.", param);
            if (!dsk_json_is(v, json_type_string))
                return bad_type(e, param, "a string", v);
        }
    }
    /* what the template writes: type "function", arguments a JSON object */
    dsk_buf scratch = {0};
    dsk_err why = {0};
    int rc = dsk_tool_calls_render(calls, &scratch, &why);
    dsk_buf_free(&scratch);
    snprintf(param, sizeof param, "messages[%d].tool_calls", i);
    return rc ? dsk_openai_fail(e, 400, param, "invalid_value", "Invalid '%s': %.300s.", param, why.msg) : 0;
}

static int parse_messages(struct json_object *v, const dsk_openai_limits *lim, dsk_openai_request *req,
                          dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_array))
        return bad_type(e, "messages", "an array", v);
    int n = (int)json_object_array_length(v);
    if (n == 0)
        return dsk_openai_fail(e, 400, "messages", "empty_array",
                               "Invalid 'messages': empty array. Expected an array with minimum length 1, but got "
                               "an empty array instead.");
    if (n > lim->max_messages)
        return dsk_openai_fail(e, 400, "messages", "array_above_max_length",
                               "Invalid 'messages': array too long. Expected an array with maximum length %d, but "
                               "got an array with length %d instead.", lim->max_messages, n);
    struct json_object *list = json_object_new_array_ext(n);
    req->chat = json_object_new_object();
    json_object_object_add(req->chat, "messages", list);
    for (int i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(v, (size_t)i), *role = NULL, *content = NULL, *c = NULL;
        char param[64];
        snprintf(param, sizeof param, "messages[%d]", i);
        if (!dsk_json_is(m, json_type_object))
            return bad_type(e, param, "an object", m);
        snprintf(param, sizeof param, "messages[%d].role", i);
        if (!json_object_object_get_ex(m, "role", &role))
            return dsk_openai_fail(e, 400, param, "missing_required_parameter", "Missing required parameter: '%s'.",
                                   param);
        if (!dsk_json_is(role, json_type_string))
            return bad_type(e, param, "a string", role);
        const char *r = json_object_get_string(role);
        if (strcmp(r, "developer") == 0)
            r = "system";  /* OpenAI's newer name for the system turn */
        if (strcmp(r, "system") != 0 && strcmp(r, "user") != 0 && strcmp(r, "assistant") != 0 &&
            strcmp(r, "tool") != 0) {
            char shown[40];
            snprintf(shown, sizeof shown, "%s", r);
            return dsk_openai_fail(e, 400, param, "invalid_value",
                                   "Invalid value: '%s'. Supported values are: 'system', 'user', 'assistant', "
                                   "'tool' and 'developer'.", shown);
        }
        struct json_object *calls = NULL, *call_id = NULL;
        if (strcmp(r, "tool") == 0) {   /* a call's result: which call it answers */
            snprintf(param, sizeof param, "messages[%d].tool_call_id", i);
            if (!json_object_object_get_ex(m, "tool_call_id", &call_id))
                return dsk_openai_fail(e, 400, param, "missing_required_parameter",
                                       "Missing required parameter: '%s'.", param);
            if (!dsk_json_is(call_id, json_type_string))
                return bad_type(e, param, "a string", call_id);
        }
        if (strcmp(r, "assistant") == 0 && json_object_object_get_ex(m, "tool_calls", &calls) && calls &&
            check_message_calls(calls, i, e))
            return e->status;
        json_object_object_get_ex(m, "content", &content);
        if (message_content(content, i, strcmp(r, "assistant") == 0, &c, e))
            return e->status;
        struct json_object *out = json_object_new_object();
        json_object_object_add(out, "role", json_object_new_string(r));
        json_object_object_add(out, "content", c);
        if (calls)   /* (a null one is NULL: json-c's null) */
            json_object_object_add(out, "tool_calls", json_object_get(calls));
        json_object_array_add(list, out);
    }
    return 0;
}

/* One prompt: a string, or an array of token ids (each in [0, 2^31)). */
static int parse_one_prompt(struct json_object *v, const char *param, dsk_openai_prompt *p, dsk_openai_error *e)
{
    if (dsk_json_is(v, json_type_string)) {
        p->len = (size_t)json_object_get_string_len(v);
        p->text = dsk_xmalloc(p->len + 1);
        memcpy(p->text, json_object_get_string(v), p->len + 1);
        return 0;
    }
    if (!dsk_json_is(v, json_type_array))
        return bad_type(e, param, "a string or an array of token ids", v);
    size_t n = json_object_array_length(v);
    if (n == 0)
        return dsk_openai_fail(e, 400, param, "invalid_value", "Invalid '%s': an empty array of token ids.", param);
    p->ids = dsk_xmalloc(n * sizeof *p->ids);
    for (size_t i = 0; i < n; i++) {
        char where[64];
        snprintf(where, sizeof where, "%s[%zu]", param, i);
        int64_t x;
        if (get_int(json_object_array_get_idx(v, i), where, 0, INT32_MAX, &x, e))
            return e->status;
        p->ids[p->n_ids++] = (int32_t)x;
    }
    return 0;
}

/* "prompt": a string, an array of token ids, or an array of strings or of
 * arrays of token ids (several prompts, as OpenAI's legacy API takes). */
static int parse_prompt(struct json_object *v, const dsk_openai_limits *lim, dsk_openai_request *req,
                        dsk_openai_error *e)
{
    struct json_object *first = dsk_json_is(v, json_type_array) && json_object_array_length(v)
                                    ? json_object_array_get_idx(v, 0) : NULL;
    int many = first && (dsk_json_is(first, json_type_string) || dsk_json_is(first, json_type_array));
    size_t n = many ? json_object_array_length(v) : 1;
    if (dsk_json_is(v, json_type_array) && json_object_array_length(v) == 0)
        return dsk_openai_fail(e, 400, "prompt", "invalid_value", "Invalid 'prompt': an empty array.");
    if (n > (size_t)lim->max_prompts)
        return dsk_openai_fail(e, 400, "prompt", "array_above_max_length",
                               "Invalid 'prompt': array too long. Expected an array with maximum length %d, but got "
                               "an array with length %zu instead.", lim->max_prompts, n);
    req->prompts = dsk_xcalloc(n, sizeof *req->prompts);
    req->n_prompts = (int)n;
    if (!many)
        return parse_one_prompt(v, "prompt", &req->prompts[0], e);
    for (size_t i = 0; i < n; i++) {
        char where[32];
        snprintf(where, sizeof where, "prompt[%zu]", i);
        struct json_object *p = json_object_array_get_idx(v, i);
        /* all strings, or all arrays of ids: one kind per request */
        if (json_object_get_type(p) != json_object_get_type(first))
            return bad_type(e, where, dsk_json_is(first, json_type_string) ? "a string" : "an array of token ids", p);
        if (parse_one_prompt(p, where, &req->prompts[i], e))
            return e->status;
    }
    return 0;
}

/* "logit_bias": {"token id": bias in [-100, 100], ...} */
static int parse_logit_bias(struct json_object *v, dsk_openai_request *req, dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_object))
        return bad_type(e, "logit_bias", "an object", v);
    int n = json_object_object_length(v);
    if (n > DSK_OPENAI_MAX_LOGIT_BIAS)
        return dsk_openai_fail(e, 400, "logit_bias", "invalid_value",
                               "Invalid 'logit_bias': %d tokens, over this server's limit of %d.", n,
                               DSK_OPENAI_MAX_LOGIT_BIAS);
    req->logit_bias = dsk_xcalloc(n ? (size_t)n : 1, sizeof *req->logit_bias);
    json_object_object_foreach(v, key, val) {
        char *end;
        errno = 0;
        long long id = strtoll(key, &end, 10);
        /* decimal as a number prints: "07" would be a second key for token 7 */
        int canonical = strcmp(key, "0") == 0 || (key[0] >= '1' && key[0] <= '9');
        if (!canonical || *end || errno || id > INT32_MAX)
            return dsk_openai_fail(e, 400, "logit_bias", "invalid_value",
                                   "Invalid 'logit_bias': the key '%.40s' is not a token id.", key);
        char where[64];
        snprintf(where, sizeof where, "logit_bias.%s", key);
        double bias;
        if (get_number(val, where, -100, 0, 100, &bias, e))
            return e->status;
        req->logit_bias[req->n_logit_bias++] = (dsk_logit_bias){(int32_t)id, (float)bias};
    }
    return 0;
}

static int parse_stop_string(struct json_object *v, const char *param, const dsk_openai_limits *lim,
                             dsk_openai_request *req, dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_string))
        return bad_type(e, param, "a string", v);
    size_t n = (size_t)json_object_get_string_len(v);
    const char *s = json_object_get_string(v);
    if (n == 0 || memchr(s, '\0', n))
        return dsk_openai_fail(e, 400, param, "invalid_value",
                               "Invalid '%s': stop sequences must be non-empty and hold no NUL character.", param);
    if (n > lim->max_stop_len)
        return dsk_openai_fail(e, 400, param, "string_above_max_length",
                               "Invalid '%s': string too long. Expected a string with maximum length %zu, but got "
                               "a string with length %zu instead.", param, lim->max_stop_len, n);
    req->stop[req->n_stop++] = dsk_xstrdup(s);
    return 0;
}

static int parse_stop(struct json_object *v, const dsk_openai_limits *lim, dsk_openai_request *req,
                      dsk_openai_error *e)
{
    if (dsk_json_is(v, json_type_string))
        return parse_stop_string(v, "stop", lim, req, e);
    if (!dsk_json_is(v, json_type_array))
        return bad_type(e, "stop", "a string or an array of strings", v);
    size_t n = json_object_array_length(v);
    if (n > DSK_OPENAI_MAX_STOP)
        return dsk_openai_fail(e, 400, "stop", "array_above_max_length",
                               "Invalid 'stop': array too long. Expected an array with maximum length %d, but got "
                               "an array with length %zu instead.", DSK_OPENAI_MAX_STOP, n);
    for (size_t i = 0; i < n; i++) {
        char param[32];
        snprintf(param, sizeof param, "stop[%zu]", i);
        if (parse_stop_string(json_object_array_get_idx(v, i), param, lim, req, e))
            return e->status;
    }
    return 0;
}

static int parse_stream_options(struct json_object *v, dsk_openai_request *req, dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_object))
        return bad_type(e, "stream_options", "an object", v);
    struct json_object *u;
    if (json_object_object_get_ex(v, "include_usage", &u) && !dsk_json_is(u, json_type_null))
        return get_bool(u, "stream_options.include_usage", &req->include_usage, e);
    return 0;
}

static int parse_string(struct json_object *v, const char *param, char **out, dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_string))
        return bad_type(e, param, "a string", v);
    free(*out);
    *out = dsk_xstrdup(json_object_get_string(v));
    return 0;
}

/* The fields seen, for the checks that involve two of them. */
typedef struct seen {
    struct json_object *max_tokens, *max_completion_tokens, *stream_options, *top_logprobs, *logprobs;
    struct json_object *tools, *tool_choice;
} seen;

/* "response_format": {"type": "text"} (the default), {"type":
 * "json_object"} (JSON mode) or {"type": "json_schema", "json_schema":
 * {"name", "schema", "strict", "description"}}: the schema is compiled
 * here, and one outside the subset the automaton holds text to
 * (text/json_schema.h) is refused by name, not ignored. */
static int parse_response_format(struct json_object *v, dsk_openai_request *req, dsk_openai_error *e)
{
    if (!dsk_json_is(v, json_type_object))
        return bad_type(e, "response_format", "an object", v);
    struct json_object *type = NULL;
    if (!json_object_object_get_ex(v, "type", &type) || dsk_json_is(type, json_type_null))
        return dsk_openai_fail(e, 400, "response_format.type", "missing_required_parameter",
                               "response_format needs a type");
    if (!dsk_json_is(type, json_type_string))
        return bad_type(e, "response_format.type", "a string", type);
    const char *t = json_object_get_string(type);
    if (strcmp(t, "text") == 0 || strcmp(t, "json_object") == 0) {
        req->json_mode = t[0] == 'j' ? DSK_OPENAI_JSON_OBJECT : DSK_OPENAI_TEXT;
        return 0;
    }
    if (strcmp(t, "json_schema") != 0)
        return dsk_openai_fail(e, 400, "response_format.type", "invalid_value",
                               "response_format type must be 'text', 'json_object' or 'json_schema'");
    struct json_object *js = NULL, *schema = NULL, *name = NULL;
    if (!json_object_object_get_ex(v, "json_schema", &js) || dsk_json_is(js, json_type_null))
        return dsk_openai_fail(e, 400, "response_format.json_schema", "missing_required_parameter",
                               "response_format json_schema needs its json_schema object");
    if (!dsk_json_is(js, json_type_object))
        return bad_type(e, "response_format.json_schema", "an object", js);
    if (json_object_object_get_ex(js, "name", &name) && name && !dsk_json_is(name, json_type_string))
        return bad_type(e, "response_format.json_schema.name", "a string", name);
    /* no schema: any JSON value */
    struct json_object *any = NULL;
    if (!json_object_object_get_ex(js, "schema", &schema) || dsk_json_is(schema, json_type_null))
        schema = any = json_object_new_boolean(1);
    char msg[400];
    dsk_json_schema_free(req->json_schema);
    req->json_schema = dsk_json_schema_compile(schema, msg, sizeof msg);
    json_object_put(any);
    if (!req->json_schema)
        return dsk_openai_fail(e, 400, "response_format.json_schema.schema", "invalid_value",
                               "response_format json_schema: %s", msg);
    dsk_json_schema_order_keys(req->json_schema);   /* as OpenAI's Structured Outputs write them */
    req->json_mode = DSK_OPENAI_JSON_SCHEMA;
    return 0;
}

static int parse_field(const char *key, struct json_object *v, int kind, const dsk_openai_limits *lim,
                       dsk_openai_request *req, seen *s, dsk_openai_error *e)
{
    int chat = kind == DSK_OPENAI_CHAT;
    int64_t x;
    /* OpenAI treats null as "not given" for every optional field */
    int null = dsk_json_is(v, json_type_null) || !v;
    if (strcmp(key, "model") == 0)
        return null ? 0 : parse_string(v, "model", &req->model, e);
    if (chat && strcmp(key, "messages") == 0)
        return parse_messages(v, lim, req, e);
    if (!chat && strcmp(key, "prompt") == 0)
        return parse_prompt(v, lim, req, e);
    if (strcmp(key, "max_tokens") == 0) {
        s->max_tokens = null ? NULL : v;
        return 0;
    }
    if (strcmp(key, "max_completion_tokens") == 0) {
        s->max_completion_tokens = null ? NULL : v;
        return 0;
    }
    static const char *const optional[] = {"temperature", "top_p", "top_k", "stop", "seed", "n", "stream",
                                           "stream_options", "logprobs", "top_logprobs", "user",
                                           "frequency_penalty", "presence_penalty", "ignore_eos", "min_p",
                                           "repetition_penalty", "logit_bias", "echo", "response_format"};
    for (size_t i = 0; null && i < sizeof optional / sizeof *optional; i++)
        if (strcmp(key, optional[i]) == 0 && (chat || strcmp(key, "top_logprobs") != 0) &&
            (!chat || strcmp(key, "echo") != 0))
            return 0;
    if (strcmp(key, "temperature") == 0)
        return get_number(v, key, 0, 0, 2, &req->temperature, e);
    if (strcmp(key, "top_p") == 0)
        return get_number(v, key, 0, 1, 1, &req->top_p, e);
    if (strcmp(key, "top_k") == 0) {
        /* -1 is vLLM's "disabled", the same as 0 here */
        if (get_int(v, key, -1, INT_MAX, &x, e))
            return e->status;
        req->top_k = x < 0 ? 0 : (int)x;
        return 0;
    }
    if (strcmp(key, "min_p") == 0)
        return get_number(v, key, 0, 0, 1, &req->min_p, e);
    if (strcmp(key, "repetition_penalty") == 0)
        return get_number(v, key, 0, 1, 100, &req->repetition_penalty, e);
    if (strcmp(key, "logit_bias") == 0)
        return parse_logit_bias(v, req, e);
    if (!chat && strcmp(key, "echo") == 0)
        return get_bool(v, key, &req->echo, e);
    if (strcmp(key, "stop") == 0)
        return parse_stop(v, lim, req, e);
    if (strcmp(key, "seed") == 0) {
        req->has_seed = 1;
        return get_int(v, key, INT64_MIN, INT64_MAX, &req->seed, e);
    }
    if (strcmp(key, "n") == 0) {
        if (get_int(v, key, 1, lim->max_n, &x, e))
            return e->status;
        req->n = (int)x;
        return 0;
    }
    if (strcmp(key, "stream") == 0)
        return get_bool(v, key, &req->stream, e);
    if (strcmp(key, "stream_options") == 0) {
        s->stream_options = v;
        return parse_stream_options(v, req, e);
    }
    if (strcmp(key, "logprobs") == 0) {
        s->logprobs = v;
        if (chat)
            return get_bool(v, key, &req->want_logprobs, e);
        if (get_int(v, key, 0, 5, &x, e))
            return e->status;
        req->logprobs = req->top_logprobs = (int)x;
        req->want_logprobs = 1;
        return 0;
    }
    if (chat && strcmp(key, "top_logprobs") == 0) {
        s->top_logprobs = v;
        if (get_int(v, key, 0, 20, &x, e))
            return e->status;
        req->top_logprobs = (int)x;
        return 0;
    }
    if (strcmp(key, "user") == 0)
        return parse_string(v, key, &req->user, e);
    if (strcmp(key, "ignore_eos") == 0)
        return get_bool(v, key, &req->ignore_eos, e);
    if (strcmp(key, "response_format") == 0)
        return parse_response_format(v, req, e);
    if (chat && strcmp(key, "tools") == 0) {
        s->tools = null ? NULL : v;
        return 0;
    }
    if (chat && strcmp(key, "parallel_tool_calls") == 0)
        return null ? 0 : get_bool(v, key, &req->parallel_tool_calls, e);
    if (chat && strcmp(key, "tool_choice") == 0) {
        s->tool_choice = null ? NULL : v;
        return 0;
    }
    if (strcmp(key, "frequency_penalty") == 0 || strcmp(key, "presence_penalty") == 0)
        return get_number(v, key, -2, 0, 2, key[0] == 'f' ? &req->frequency_penalty : &req->presence_penalty, e);
    /* Completions that change the answer in ways dsk does not: refused,
     * not ignored, when they ask for more than a plain completion. */
    if (!chat && strcmp(key, "suffix") == 0) {
        if (null || (dsk_json_is(v, json_type_string) && json_object_get_string_len(v) == 0))
            return 0;
        return dsk_openai_fail(e, 400, key, "unsupported_value",
                               "'suffix' (a completion to fit before it) is not supported: the model has no "
                               "fill-in-the-middle tokens.");
    }
    if (!chat && strcmp(key, "best_of") == 0) {
        if (null)
            return 0;
        if (get_int(v, key, 1, INT_MAX, &x, e))
            return e->status;
        if (x > 1)
            return dsk_openai_fail(e, 400, key, "unsupported_value",
                                   "'best_of' above 1 is not supported: ask for n answers and compare them.");
        return 0;
    }
    add_ignored(req, key);
    return 0;
}

/* The name of tool i of a checked "tools" array. */
static const char *tool_name(struct json_object *tools, size_t i)
{
    struct json_object *fn, *name;
    json_object_object_get_ex(json_object_array_get_idx(tools, i), "function", &fn);
    json_object_object_get_ex(fn, "name", &name);
    return json_object_get_string(name);
}

/* "tools": [{"type": "function", "function": {"name", "description",
 * "parameters", "strict"}}, ...] and "tool_choice": "none", "auto" (the
 * default), "required" (a call at once) or {"type": "function",
 * "function": {"name"}} (a call of that one, and no more). */
static int parse_tools(const seen *s, dsk_openai_request *req, dsk_openai_error *e)
{
    if (s->tool_choice && !s->tools)
        return dsk_openai_fail(e, 400, "tool_choice", "invalid_value",
                               "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are "
                               "specified.");
    if (!s->tools)
        return 0;
    if (!dsk_json_is(s->tools, json_type_array) || json_object_array_length(s->tools) == 0 ||
        json_object_array_length(s->tools) > 128)
        return dsk_openai_fail(e, 400, "tools", "invalid_value", "'tools' must be an array of 1 to 128 tools.");
    size_t n = json_object_array_length(s->tools);
    for (size_t i = 0; i < n; i++) {
        char param[64];
        snprintf(param, sizeof param, "tools[%zu]", i);
        struct json_object *t = json_object_array_get_idx(s->tools, i), *type, *fn, *name, *params;
        if (!dsk_json_is(t, json_type_object) || !json_object_object_get_ex(t, "type", &type) ||
            !dsk_json_is(type, json_type_string) || strcmp(json_object_get_string(type), "function") != 0 ||
            !json_object_object_get_ex(t, "function", &fn) || !dsk_json_is(fn, json_type_object))
            return dsk_openai_fail(e, 400, param, "invalid_value",
                                   "Each tool must be {\"type\": \"function\", \"function\": {...}}.");
        snprintf(param, sizeof param, "tools[%zu].function.name", i);
        if (!json_object_object_get_ex(fn, "name", &name) || !dsk_json_is(name, json_type_string))
            return dsk_openai_fail(e, 400, param, "missing_required_parameter", "A function needs a name.");
        const char *nm = json_object_get_string(name);
        size_t len = strlen(nm);
        int ok = len >= 1 && len <= 64 && (size_t)json_object_get_string_len(name) == len;
        for (size_t k = 0; ok && k < len; k++)
            ok = (nm[k] >= 'a' && nm[k] <= 'z') || (nm[k] >= 'A' && nm[k] <= 'Z') || (nm[k] >= '0' && nm[k] <= '9') ||
                 nm[k] == '_' || nm[k] == '-';
        if (!ok)
            return dsk_openai_fail(e, 400, param, "invalid_value",
                                   "A function name must be 1 to 64 of a-z, A-Z, 0-9, '_' and '-'.");
        for (size_t j = 0; j < i; j++)
            if (strcmp(tool_name(s->tools, j), nm) == 0)
                return dsk_openai_fail(e, 400, param, "invalid_value", "Two tools are named '%s'.", nm);
        struct json_object *x;
        snprintf(param, sizeof param, "tools[%zu].function.description", i);
        if (json_object_object_get_ex(fn, "description", &x) && x && !dsk_json_is(x, json_type_string))
            return bad_type(e, param, "a string", x);
        snprintf(param, sizeof param, "tools[%zu].function.strict", i);
        if (json_object_object_get_ex(fn, "strict", &x) && x && !dsk_json_is(x, json_type_boolean))
            return bad_type(e, param, "a boolean", x);
        snprintf(param, sizeof param, "tools[%zu].function.parameters", i);
        if (json_object_object_get_ex(fn, "parameters", &params) && params && !dsk_json_is(params, json_type_object))
            return bad_type(e, param, "an object", params);
    }
    /* which tool, if any, must be called */
    const char *call = NULL;
    int required = 0;
    struct json_object *tc = s->tool_choice;
    if (dsk_json_is(tc, json_type_string)) {
        const char *c = json_object_get_string(tc);
        if (strcmp(c, "none") == 0)   /* the tools are described to nobody, the answer is text */
            return 0;
        required = strcmp(c, "required") == 0;
        if (!required && strcmp(c, "auto") != 0)
            return dsk_openai_fail(e, 400, "tool_choice", "invalid_value",
                                   "tool_choice must be 'none', 'auto', 'required' or a function to call.");
    } else if (tc) {
        struct json_object *type, *f, *nm;
        if (!dsk_json_is(tc, json_type_object) || !json_object_object_get_ex(tc, "type", &type) ||
            !dsk_json_is(type, json_type_string) || strcmp(json_object_get_string(type), "function") != 0 ||
            !json_object_object_get_ex(tc, "function", &f) || !json_object_object_get_ex(f, "name", &nm) ||
            !dsk_json_is(nm, json_type_string))
            return dsk_openai_fail(e, 400, "tool_choice", "invalid_value",
                                   "tool_choice must be 'none', 'auto', 'required' or "
                                   "{\"type\": \"function\", \"function\": {\"name\": ...}}.");
        call = json_object_get_string(nm);
        required = 1;
    }
    if (required && req->json_mode)
        return dsk_openai_fail(e, 400, "response_format", "invalid_value",
                               "A forced tool call and a JSON response_format cannot be asked for together: the "
                               "call's arguments follow its parameters.");
    if (required && req->n_stop)   /* a stop string would cut the arguments short of JSON */
        return dsk_openai_fail(e, 400, "stop", "invalid_value",
                               "Stop strings cannot be used with a forced tool call: they would cut its arguments.");
    /* The tools are described in the prompt, and the calls an answer makes
     * are held to them (text/call_prefix.h).  With a JSON response_format,
     * an answer is JSON and makes none. */
    json_object_object_add(req->chat, "tools", json_object_get(s->tools));
    if (req->json_mode)
        return 0;
    char msg[400];
    req->call_tools = dsk_call_tools_new(s->tools, msg, sizeof msg);
    if (!req->call_tools)   /* what was checked above is what it checks */
        return dsk_openai_fail(e, 400, "tools", "invalid_value", "Invalid 'tools': %s.", msg);
    req->tools_mode = required ? DSK_CALLS_REQUIRED : DSK_CALLS_AUTO;
    req->tools_only = call ? dsk_call_tools_find(req->call_tools, call) : -1;
    if (call && req->tools_only < 0)
        return dsk_openai_fail(e, 400, "tool_choice", "invalid_value", "No tool is named '%s'.", call);
    /* One named call is the answer; otherwise parallel_tool_calls says */
    if (call)
        req->parallel_tool_calls = 0;
    /* A call that will be made has arguments held to its parameters, or is
     * refused; so has a tool marked strict.  Under "auto" another tool's
     * calls take any object. */
    for (int i = 0; i < (int)n; i++) {
        const char *why = dsk_call_tools_loose(req->call_tools, i);
        struct json_object *fn = NULL, *strict = NULL;
        json_object_object_get_ex(json_object_array_get_idx(s->tools, (size_t)i), "function", &fn);
        json_object_object_get_ex(fn, "strict", &strict);
        int forced = call ? i == req->tools_only : required;
        if (why && (forced || json_object_get_boolean(strict)))
            return dsk_openai_fail(e, 400, "tools", "invalid_value", "The parameters of '%s': %s",
                                   dsk_call_tools_name(req->call_tools, i), why);
    }
    return 0;
}

static int parse_object(struct json_object *root, int kind, const dsk_openai_limits *lim, dsk_openai_request *req,
                        dsk_openai_error *e)
{
    seen s = {0};
    int64_t x;
    json_object_object_foreach(root, key, v) {
        if (parse_field(key, v, kind, lim, req, &s, e))
            return e->status;
    }
    if (kind == DSK_OPENAI_CHAT && !req->chat)
        return dsk_openai_fail(e, 400, "messages", "missing_required_parameter",
                               "Missing required parameter: 'messages'.");
    if (kind == DSK_OPENAI_COMPLETION && !req->prompts)
        return dsk_openai_fail(e, 400, "prompt", "missing_required_parameter",
                               "Missing required parameter: 'prompt'.");
    /* max_completion_tokens replaces the deprecated max_tokens and wins */
    struct json_object *mt = s.max_completion_tokens ? s.max_completion_tokens : s.max_tokens;
    if (mt) {
        /* 0 with echo: the prompt scored, nothing generated (OpenAI's legacy API) */
        if (get_int(mt, s.max_completion_tokens ? "max_completion_tokens" : "max_tokens", req->echo ? 0 : 1,
                    lim->ctx_len, &x, e))
            return e->status;
        req->max_tokens = (int)x;
        req->max_tokens_given = 1;
    }
    if (s.stream_options && !dsk_json_is(s.stream_options, json_type_null) && !req->stream)
        return dsk_openai_fail(e, 400, "stream_options", "invalid_value",
                               "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    if (kind == DSK_OPENAI_CHAT && s.top_logprobs && !req->want_logprobs)
        return dsk_openai_fail(e, 400, "top_logprobs", "invalid_value",
                               "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.");
    if (parse_tools(&s, req, e))
        return e->status;
    if (req->echo && req->json_mode)
        return dsk_openai_fail(e, 400, "echo", "invalid_value",
                               "'echo' cannot be used with a JSON response_format: the prompt before the answer "
                               "would make it something other than JSON.");
    if (kind == DSK_OPENAI_CHAT)
        req->logprobs = req->want_logprobs;
    return 0;
}

int dsk_openai_parse(const char *body, size_t len, int kind, const dsk_openai_limits *lim, dsk_openai_request *req,
                     dsk_openai_error *e)
{
    memset(req, 0, sizeof *req);
    memset(e, 0, sizeof *e);
    req->kind = kind;
    req->max_tokens = lim->default_max_tokens < 1 ? 1 : lim->default_max_tokens;
    req->temperature = 1;
    req->top_p = 1;
    req->repetition_penalty = 1;
    req->n = 1;
    req->parallel_tool_calls = 1;
    if (len > lim->max_body)
        return dsk_openai_fail(e, 413, NULL, "request_too_large",
                               "The request body of %zu bytes is over this server's limit of %zu bytes.", len,
                               lim->max_body);
    size_t bad = dsk_utf8_find_invalid(body, len);
    if (bad < len)
        return dsk_openai_fail(e, 400, NULL, NULL, "The request body is not valid UTF-8 (byte %zu).", bad);
    char msg[256];
    struct json_object *root = dsk_json_parse(body, len, msg, sizeof msg);
    if (!root)
        return dsk_openai_fail(e, 400, NULL, NULL,
                               "We could not parse the JSON body of your request: %s. The body must be one JSON "
                               "object.", msg);
    int rc = dsk_json_is(root, json_type_object)
                 ? parse_object(root, kind, lim, req, e)
                 : dsk_openai_fail(e, 400, NULL, NULL, "The request body must be a JSON object, not %s.",
                                   type_desc(root));
    json_object_put(root);
    if (!rc && (req->json_mode == DSK_OPENAI_JSON_SCHEMA || req->call_tools) && dsk_json_has_lossy_escape(body, len))
        rc = dsk_openai_fail(e, 400, req->call_tools ? "tools" : "response_format.json_schema.schema", "invalid_value",
                             "A request with a JSON schema (a response_format or tools' parameters) may not hold "
                             "\\u0000 or a lone surrogate escape (\\ud800 alone) in any string: the JSON library "
                             "would change them, and with them the schema's names and values.");
    if (rc) {
        dsk_openai_request_free(req);
        req->kind = kind;
        return rc;
    }
    if (!req->model)
        req->model = dsk_xstrdup("");
    return 0;
}

void dsk_openai_request_free(dsk_openai_request *req)
{
    free(req->model);
    if (req->chat)
        json_object_put(req->chat);
    for (int i = 0; i < req->n_prompts; i++) {
        free(req->prompts[i].text);
        free(req->prompts[i].ids);
    }
    free(req->prompts);
    free(req->logit_bias);
    dsk_json_schema_free(req->json_schema);
    dsk_call_tools_free(req->call_tools);
    for (int i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->user);
    for (int i = 0; i < req->n_ignored && i < DSK_OPENAI_MAX_IGNORED; i++)
        free(req->ignored[i]);
    memset(req, 0, sizeof *req);
}

int dsk_openai_fit_context(dsk_openai_request *req, int prompt_tokens, const dsk_openai_limits *lim,
                           dsk_openai_error *e)
{
    long room = (long)lim->ctx_len - prompt_tokens;
    const char *what = req->kind == DSK_OPENAI_CHAT ? "messages" : "prompt";
    if (prompt_tokens < 1)
        return dsk_openai_fail(e, 400, what, "invalid_value", "an empty prompt");
    if (req->max_tokens_given && req->max_tokens == 0 && room >= 0)
        return 0;   /* echo alone: the prompt is scored, nothing added */
    if (room < 1 && !req->max_tokens_given)
        return dsk_openai_fail(e, 400, what, "context_length_exceeded",
                               "This model's maximum context length is %d tokens, and the %s takes %d: no room for "
                               "a completion. Please reduce the length of the %s.", lim->ctx_len, what, prompt_tokens,
                               what);
    if (room < 1 || (req->max_tokens_given && req->max_tokens > room))
        return dsk_openai_fail(e, 400, what, "context_length_exceeded",
                               "This model's maximum context length is %d tokens. However, you requested %ld tokens "
                               "(%d in the %s, %d in the completion). Please reduce the length of the %s or "
                               "completion.", lim->ctx_len, (long)prompt_tokens + req->max_tokens, prompt_tokens,
                               what, req->max_tokens, what);
    if (req->max_tokens > room)
        req->max_tokens = (int)room;
    return 0;
}

void dsk_openai_warning_header(const dsk_openai_request *req, dsk_buf *out)
{
    if (!req->n_ignored)
        return;
    /* 299: "miscellaneous persistent warning" (RFC 7234) */
    dsk_buf_adds(out, "299 dsk \"ignored fields: ");
    int shown = req->n_ignored < DSK_OPENAI_MAX_IGNORED ? req->n_ignored : DSK_OPENAI_MAX_IGNORED;
    for (int i = 0; i < shown; i++) {
        if (i)
            dsk_buf_adds(out, ", ");
        for (const char *p = req->ignored[i]; *p; p++) {
            unsigned char c = (unsigned char)*p;
            /* a quoted-string may not hold '"' or '\\' unescaped; keep it simple */
            dsk_buf_addc(out, c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?');
        }
    }
    if (req->n_ignored > shown)
        dsk_buf_printf(out, " and %d more", req->n_ignored - shown);
    dsk_buf_addc(out, '"');
}

/* ---- responses ---------------------------------------------------------------- */

void dsk_openai_make_id(int kind, uint64_t rnd, char out[40])
{
    snprintf(out, 40, "%s%016" PRIx64, kind == DSK_OPENAI_CHAT ? "chatcmpl-" : "cmpl-", rnd);
}

/* Text as a JSON string; token bytes may end mid-character, and JSON
 * strings must be UTF-8, so invalid parts become U+FFFD. */
static struct json_object *text_string(const char *s, size_t n)
{
    if (!s)
        s = "";
    if (dsk_utf8_find_invalid(s, n) == n)
        return json_object_new_string_len(s, (int)n);
    dsk_buf b = {0};
    dsk_utf8_repair(s, n, &b);
    struct json_object *o = json_object_new_string_len(b.data, (int)b.len);
    dsk_buf_free(&b);
    return o;
}

/* A legacy completion's token as a string: its text, or when its bytes
 * are not UTF-8 on their own (part of a character), "bytes:\\xNN..." as
 * OpenAI's legacy API wrote them, so that two such tokens stay two keys
 * of top_logprobs (repaired, each would read U+FFFD). */
static struct json_object *token_string(const char *s, size_t n)
{
    if (!s || dsk_utf8_find_invalid(s, n) == n)
        return text_string(s, n);
    dsk_buf b = {0};
    dsk_buf_adds(&b, "bytes:");
    for (size_t i = 0; i < n; i++) {
        char hex[5];
        snprintf(hex, sizeof hex, "\\x%02x", (unsigned char)s[i]);
        dsk_buf_adds(&b, hex);
    }
    struct json_object *o = json_object_new_string_len(b.data, (int)b.len);
    dsk_buf_free(&b);
    return o;
}

/* JSON has no -Infinity; OpenAI reports impossible tokens as -9999. */
static struct json_object *logprob_value(double lp)
{
    return dsk_json_new_double(isfinite(lp) ? lp : -9999.0);
}

static struct json_object *byte_array(const char *s, size_t n)
{
    struct json_object *a = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++)
        json_object_array_add(a, json_object_new_int((unsigned char)s[i]));
    return a;
}

static struct json_object *chat_token(const char *tok, size_t len, double lp)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "token", text_string(tok, len));
    json_object_object_add(o, "logprob", logprob_value(lp));
    json_object_object_add(o, "bytes", byte_array(tok, len));
    return o;
}

/* chat: {"content":[{"token","logprob","bytes","top_logprobs":[{"token","logprob","bytes"}]}]} */
static struct json_object *chat_logprobs(const dsk_openai_choice *c)
{
    if (!c->logprobs)
        return NULL;
    struct json_object *content = json_object_new_array_ext(c->n_logprobs);
    for (int i = 0; i < c->n_logprobs; i++) {
        const dsk_openai_token_logprob *t = &c->logprobs[i];
        struct json_object *o = chat_token(t->token, t->len, t->logprob);
        struct json_object *top = json_object_new_array_ext(t->n_top);
        for (int j = 0; j < t->n_top; j++)
            json_object_array_add(top, chat_token(t->top[j].token, t->top[j].len, t->top[j].logprob));
        json_object_object_add(o, "top_logprobs", top);
        json_object_array_add(content, o);
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "content", content);
    return o;
}

/* A completion token's alternatives, {token: logprob, ...}.  json-c keeps
 * keys as C strings, which would cut a token holding a NUL byte ("\u0000"
 * is a token of every byte-level vocabulary): the object is written by a
 * serializer of its own, from key strings that keep their length. */
typedef struct top_pairs {
    int n;
    struct json_object *key[DSK_OPENAI_MAX_TOP];
    struct json_object *value[DSK_OPENAI_MAX_TOP];
} top_pairs;

static int write_top_pairs(struct json_object *o, struct printbuf *pb, int level, int flags)
{
    (void)level;
    const top_pairs *tp = json_object_get_userdata(o);
    printbuf_strappend(pb, "{");
    for (int i = 0; i < tp->n; i++) {
        const char *k = json_object_to_json_string_ext(tp->key[i], flags);
        const char *v = json_object_to_json_string_ext(tp->value[i], flags);
        if (i)
            printbuf_strappend(pb, ",");
        printbuf_memappend(pb, k, (int)strlen(k));
        printbuf_strappend(pb, ":");
        printbuf_memappend(pb, v, (int)strlen(v));
    }
    printbuf_strappend(pb, "}");
    return 0;
}

static void free_top_pairs(struct json_object *o, void *userdata)
{
    (void)o;
    top_pairs *tp = userdata;
    for (int i = 0; i < tp->n; i++) {
        json_object_put(tp->key[i]);
        json_object_put(tp->value[i]);
    }
    free(tp);
}

static struct json_object *top_logprobs_object(const dsk_openai_token_logprob *t)
{
    top_pairs *tp = dsk_xcalloc(1, sizeof *tp);
    for (int j = 0; j < t->n_top && tp->n < DSK_OPENAI_MAX_TOP; j++) {
        struct json_object *k = token_string(t->top[j].token, t->top[j].len);
        /* two entries the same (not two tokens of the vocabulary): the first stays */
        int dup = 0;
        for (int i = 0; i < tp->n && !dup; i++)
            dup = json_object_get_string_len(tp->key[i]) == json_object_get_string_len(k) &&
                  memcmp(json_object_get_string(tp->key[i]), json_object_get_string(k),
                         (size_t)json_object_get_string_len(k)) == 0;
        if (dup) {
            json_object_put(k);
            continue;
        }
        tp->key[tp->n] = k;
        tp->value[tp->n++] = logprob_value(t->top[j].logprob);
    }
    struct json_object *o = json_object_new_object();
    json_object_set_serializer(o, write_top_pairs, tp, free_top_pairs);
    return o;
}

/* completions: {"tokens","token_logprobs","top_logprobs":[{token: logprob}],"text_offset"} */
static struct json_object *completion_logprobs(const dsk_openai_choice *c)
{
    if (!c->logprobs)
        return NULL;
    struct json_object *tokens = json_object_new_array(), *lps = json_object_new_array(),
                       *tops = json_object_new_array(), *offsets = json_object_new_array();
    for (int i = 0; i < c->n_logprobs; i++) {
        const dsk_openai_token_logprob *t = &c->logprobs[i];
        json_object_array_add(tokens, token_string(t->token, t->len));
        json_object_array_add(offsets, json_object_new_int64((int64_t)t->text_offset));
        if (t->null_logprob) {   /* an echoed prompt's first token: nothing came before it */
            json_object_array_add(lps, NULL);
            json_object_array_add(tops, NULL);
            continue;
        }
        json_object_array_add(lps, logprob_value(t->logprob));
        json_object_array_add(tops, top_logprobs_object(t));
    }
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "tokens", tokens);
    json_object_object_add(o, "token_logprobs", lps);
    json_object_object_add(o, "top_logprobs", tops);
    json_object_object_add(o, "text_offset", offsets);
    return o;
}

static struct json_object *finish_value(const dsk_openai_choice *c)
{
    int f = c->finish_reason;
    return f == DSK_FINISH_STOP ? json_object_new_string(c->calls ? "tool_calls" : "stop")
           : f == DSK_FINISH_LENGTH ? json_object_new_string("length") : NULL;
}

/* Call k of choice index: call_, the response id's hex digits, the
 * choice's and the call's two each. */
static void call_id(const dsk_openai_meta *m, int index, int k, char id[64])
{
    const char *dash = strchr(m->id, '-');
    snprintf(id, 64, "call_%s%02x%02x", dash ? dash + 1 : m->id, index & 0xFF, k & 0xFF);
}

/* The "tool_calls" list of an answer's calls, each whole. */
static struct json_object *made_calls(const dsk_openai_meta *m, const dsk_openai_choice *c)
{
    struct json_object *list = json_object_new_array();
    for (size_t k = 0; k < json_object_array_length(c->calls); k++) {
        struct json_object *made = json_object_array_get_idx(c->calls, k), *call = json_object_new_object();
        struct json_object *fn = json_object_new_object(), *v;
        char id[64];
        call_id(m, c->index, (int)k, id);
        json_object_object_add(call, "id", json_object_new_string(id));
        json_object_object_add(call, "type", json_object_new_string("function"));
        json_object_object_get_ex(made, "name", &v);
        json_object_object_add(fn, "name", json_object_get(v));
        json_object_object_get_ex(made, "arguments", &v);
        json_object_object_add(fn, "arguments", json_object_get(v));
        json_object_object_add(call, "function", fn);
        json_object_array_add(list, call);
    }
    return list;
}

static struct json_object *usage_object(const dsk_openai_usage *u)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "prompt_tokens", json_object_new_int(u->prompt_tokens));
    json_object_object_add(o, "completion_tokens", json_object_new_int(u->completion_tokens));
    json_object_object_add(o, "total_tokens", json_object_new_int64((int64_t)u->prompt_tokens + u->completion_tokens));
    return o;
}

static struct json_object *envelope(const dsk_openai_meta *m, const char *object)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_string(m->id ? m->id : ""));
    json_object_object_add(o, "object", json_object_new_string(object));
    json_object_object_add(o, "created", json_object_new_int64(m->created));
    json_object_object_add(o, "model", text_string(m->model, m->model ? strlen(m->model) : 0));
    return o;
}

void dsk_openai_response_json(const dsk_openai_meta *m, const dsk_openai_choice *choices, int n,
                              const dsk_openai_usage *u, dsk_buf *out)
{
    int chat = m->kind == DSK_OPENAI_CHAT;
    struct json_object *o = envelope(m, chat ? "chat.completion" : "text_completion");
    struct json_object *list = json_object_new_array_ext(n);
    for (int i = 0; i < n; i++) {
        const dsk_openai_choice *c = &choices[i];
        struct json_object *ch = json_object_new_object();
        json_object_object_add(ch, "index", json_object_new_int(c->index));
        if (chat) {
            struct json_object *msg = json_object_new_object();
            json_object_object_add(msg, "role", json_object_new_string("assistant"));
            if (c->calls) {
                json_object_object_add(msg, "content", c->len ? text_string(c->text, c->len) : NULL);
                json_object_object_add(msg, "tool_calls", made_calls(m, c));
            } else {
                json_object_object_add(msg, "content", text_string(c->text, c->len));
            }
            json_object_object_add(ch, "message", msg);
            json_object_object_add(ch, "logprobs", chat_logprobs(c));
        } else {
            json_object_object_add(ch, "text", text_string(c->text, c->len));
            json_object_object_add(ch, "logprobs", completion_logprobs(c));
        }
        json_object_object_add(ch, "finish_reason", finish_value(c));
        json_object_array_add(list, ch);
    }
    json_object_object_add(o, "choices", list);
    json_object_object_add(o, "usage", usage_object(u));
    dsk_json_append(o, out);
    json_object_put(o);
}

static void sse_event(struct json_object *o, dsk_buf *out)
{
    dsk_buf_adds(out, "data: ");
    dsk_json_append(o, out);  /* compact: strings escape newlines, so one line */
    dsk_buf_adds(out, "\n\n");
    json_object_put(o);
}

static struct json_object *chunk_envelope(const dsk_openai_meta *m, struct json_object *choice)
{
    struct json_object *o =
        envelope(m, m->kind == DSK_OPENAI_CHAT ? "chat.completion.chunk" : "text_completion");
    struct json_object *list = json_object_new_array();
    if (choice)
        json_object_array_add(list, choice);
    json_object_object_add(o, "choices", list);
    if (m->include_usage)  /* OpenAI: every chunk but the last carries "usage": null */
        json_object_object_add(o, "usage", NULL);
    return o;
}

/* An event of choice index with delta (taken), no logprobs, no finish. */
static void sse_delta(const dsk_openai_meta *m, int index, struct json_object *delta, dsk_buf *out)
{
    struct json_object *ch = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(index));
    json_object_object_add(ch, "delta", delta);
    json_object_object_add(ch, "logprobs", NULL);
    json_object_object_add(ch, "finish_reason", NULL);
    sse_event(chunk_envelope(m, ch), out);
}

void dsk_openai_sse_role(const dsk_openai_meta *m, int index, dsk_buf *out)
{
    struct json_object *delta = json_object_new_object();
    json_object_object_add(delta, "role", json_object_new_string("assistant"));
    json_object_object_add(delta, "content", json_object_new_string(""));
    sse_delta(m, index, delta, out);
}

void dsk_openai_sse_chunk(const dsk_openai_meta *m, const dsk_openai_choice *c, dsk_buf *out)
{
    struct json_object *ch = json_object_new_object();
    json_object_object_add(ch, "index", json_object_new_int(c->index));
    if (m->kind == DSK_OPENAI_CHAT) {
        struct json_object *delta = json_object_new_object();
        /* the closing chunk has an empty delta unless text came with it */
        if (c->len || c->finish_reason == DSK_FINISH_NONE)
            json_object_object_add(delta, "content", text_string(c->text, c->len));
        json_object_object_add(ch, "delta", delta);
        json_object_object_add(ch, "logprobs", chat_logprobs(c));
    } else {
        json_object_object_add(ch, "text", text_string(c->text, c->len));
        json_object_object_add(ch, "logprobs", completion_logprobs(c));
    }
    json_object_object_add(ch, "finish_reason", finish_value(c));
    sse_event(chunk_envelope(m, ch), out);
}

void dsk_openai_sse_call(const dsk_openai_meta *m, int index, int k, const char *name, const char *args,
                         size_t len, dsk_buf *out)
{
    struct json_object *call = json_object_new_object(), *fn = json_object_new_object();
    json_object_object_add(call, "index", json_object_new_int(k));
    if (name) {
        char id[64];
        call_id(m, index, k, id);
        json_object_object_add(call, "id", json_object_new_string(id));
        json_object_object_add(call, "type", json_object_new_string("function"));
        json_object_object_add(fn, "name", json_object_new_string(name));
    }
    json_object_object_add(fn, "arguments", text_string(args, len));
    json_object_object_add(call, "function", fn);
    struct json_object *list = json_object_new_array(), *delta = json_object_new_object();
    json_object_array_add(list, call);
    json_object_object_add(delta, "tool_calls", list);
    sse_delta(m, index, delta, out);
}

void dsk_openai_sse_usage(const dsk_openai_meta *m, const dsk_openai_usage *u, dsk_buf *out)
{
    struct json_object *o = chunk_envelope(m, NULL);
    json_object_object_add(o, "usage", usage_object(u));  /* replaces the null */
    sse_event(o, out);
}

void dsk_openai_sse_done(dsk_buf *out)
{
    dsk_buf_adds(out, "data: [DONE]\n\n");
}

void dsk_openai_sse_error(const dsk_openai_error *e, dsk_buf *out)
{
    sse_event(error_object(e), out);
}

static struct json_object *model_object(const char *id, long long created, const char *owned_by)
{
    struct json_object *mdl = json_object_new_object();
    json_object_object_add(mdl, "id", text_string(id, strlen(id)));
    json_object_object_add(mdl, "object", json_object_new_string("model"));
    json_object_object_add(mdl, "created", json_object_new_int64(created));
    json_object_object_add(mdl, "owned_by", json_object_new_string(owned_by ? owned_by : "dsk"));
    return mdl;
}

void dsk_openai_models_json(const char *const *ids, int n, long long created, const char *owned_by, dsk_buf *out)
{
    struct json_object *o = json_object_new_object(), *data = json_object_new_array_ext(n);
    json_object_object_add(o, "object", json_object_new_string("list"));
    for (int i = 0; i < n; i++)
        json_object_array_add(data, model_object(ids[i], created, owned_by));
    json_object_object_add(o, "data", data);
    dsk_json_append(o, out);
    json_object_put(o);
}

void dsk_openai_model_json(const char *id, long long created, const char *owned_by, dsk_buf *out)
{
    struct json_object *o = model_object(id, created, owned_by);
    dsk_json_append(o, out);
    json_object_put(o);
}

/* ---- stop sequences ------------------------------------------------------------ */

void dsk_openai_stop_check(const char *text, size_t len, size_t from, char *const *stops, int n_stops,
                           dsk_openai_stop_result *r)
{
    if (from > len)
        from = len;
    r->matched = 0;
    r->which = -1;
    size_t best = len;
    for (int i = 0; i < n_stops; i++) {
        size_t sl = strlen(stops[i]);
        if (!sl)
            continue;
        const char *p = memmem(text + from, len - from, stops[i], sl);
        if (p && (r->which < 0 || (size_t)(p - text) < best)) {
            best = (size_t)(p - text);
            r->which = i;
        }
    }
    if (r->which >= 0) {
        r->matched = 1;
        r->safe = best;
        return;
    }
    /* hold back the longest tail that a stop string begins with */
    size_t hold = 0;
    for (int i = 0; i < n_stops; i++) {
        size_t sl = strlen(stops[i]);
        size_t k = sl - (sl > 0);  /* a complete one would have matched */
        if (k > len - from)
            k = len - from;
        for (; k > hold; k--)
            if (memcmp(text + len - k, stops[i], k) == 0) {
                hold = k;
                break;
            }
    }
    /* and never end inside a UTF-8 character */
    r->safe = dsk_utf8_whole(text, from, len - hold);
}
