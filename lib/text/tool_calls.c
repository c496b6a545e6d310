/* Tool calls in chat text: see tool_calls.h. */
#include "text/tool_calls.h"

#include <string.h>
#include <sysexits.h>

#include "text/json_prefix.h"

#define TOOL_RESPONSE_OPEN "<tool_response>\n"
#define TOOL_RESPONSE_CLOSE "\n</tool_response>"

/* The "function" object of an OpenAI tool or call entry, with its string
 * "name"; NULL for any other shape. */
static struct json_object *function_of(struct json_object *entry, struct json_object **name)
{
    struct json_object *type = NULL, *fn = NULL;
    if (!dsk_json_is(entry, json_type_object) || !json_object_object_get_ex(entry, "function", &fn) ||
        !dsk_json_is(fn, json_type_object))
        return NULL;
    /* "type" may be left out (OpenAI's fine-tuning files do); if present, "function" */
    if (json_object_object_get_ex(entry, "type", &type) &&
        (!dsk_json_is(type, json_type_string) || strcmp(json_object_get_string(type), "function") != 0))
        return NULL;
    *name = dsk_json_get_string(fn, "name");
    return *name && json_object_get_string_len(*name) > 0 ? fn : NULL;
}

int dsk_tools_render(struct json_object *tools, dsk_buf *out, dsk_err *err)
{
    if (!dsk_json_is(tools, json_type_array) || json_object_array_length(tools) == 0)
        return dsk_fail(err, EX_DATAERR, "\"tools\" must be a non-empty array");
    dsk_buf_adds(out, "You can call these tools. To call one, answer " DSK_TOOL_CALL_OPEN
                      "{\"name\":NAME,\"arguments\":{...}}" DSK_TOOL_CALL_CLOSE ", a line a call.");
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        struct json_object *name, *fn = function_of(json_object_array_get_idx(tools, i), &name);
        if (!fn)
            return dsk_fail(err, EX_DATAERR,
                            "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ..., ...}}", i);
        dsk_buf_addc(out, '\n');
        dsk_json_append(fn, out);
    }
    return 0;
}

int dsk_tool_calls_render(struct json_object *calls, dsk_buf *out, dsk_err *err)
{
    if (!dsk_json_is(calls, json_type_array) || json_object_array_length(calls) == 0)
        return dsk_fail(err, EX_DATAERR, "\"tool_calls\" must be a non-empty array");
    for (size_t i = 0; i < json_object_array_length(calls); i++) {
        struct json_object *name, *fn = function_of(json_object_array_get_idx(calls, i), &name), *args = NULL;
        if (!fn || !json_object_object_get_ex(fn, "arguments", &args))
            return dsk_fail(err, EX_DATAERR,
                            "tool_calls[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ..., "
                            "\"arguments\": ...}}", i);
        struct json_object *parsed = NULL;
        if (dsk_json_is(args, json_type_string) && json_object_get_string_len(args) == 0) {
            args = parsed = json_object_new_object();   /* no arguments */
        } else if (dsk_json_is(args, json_type_string)) {   /* OpenAI's form: a string of JSON */
            char msg[128];
            parsed = dsk_json_parse(json_object_get_string(args), (size_t)json_object_get_string_len(args), msg,
                                    sizeof msg);
            if (!parsed)
                return dsk_fail(err, EX_DATAERR, "tool_calls[%zu].function.arguments: %s", i, msg);
            args = parsed;
        }
        if (!dsk_json_is(args, json_type_object)) {
            json_object_put(parsed);
            return dsk_fail(err, EX_DATAERR, "tool_calls[%zu].function.arguments must be a JSON object", i);
        }
        struct json_object *call = json_object_new_object();
        json_object_object_add(call, "name", json_object_get(name));
        json_object_object_add(call, "arguments", json_object_get(args));
        if (i)
            dsk_buf_addc(out, '\n');
        dsk_buf_adds(out, DSK_TOOL_CALL_OPEN);
        dsk_json_append(call, out);
        dsk_buf_adds(out, DSK_TOOL_CALL_CLOSE);
        json_object_put(call);
        json_object_put(parsed);
    }
    return 0;
}

void dsk_tool_response_render(const char *content, size_t len, dsk_buf *out)
{
    dsk_buf_adds(out, TOOL_RESPONSE_OPEN);
    dsk_buf_add(out, content, len);
    dsk_buf_adds(out, TOOL_RESPONSE_CLOSE);
}

static int offered(struct json_object *tools, const char *name)
{
    if (!tools)
        return 1;
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        struct json_object *nm;
        if (function_of(json_object_array_get_idx(tools, i), &nm) && strcmp(json_object_get_string(nm), name) == 0)
            return 1;
    }
    return 0;
}

static size_t skip_space(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r'))
        i++;
    return i;
}

/* The length of the JSON object s begins with, after any whitespace (a
 * string in it may hold the closing tag), or 0 if it begins otherwise. */
static size_t object_len(const char *s, size_t n)
{
    dsk_json_prefix p;
    dsk_json_prefix_init(&p, 1);
    for (size_t k = 0; k < n; k++) {
        if (!dsk_json_prefix_feed(&p, (unsigned char)s[k]))
            return 0;
        if (dsk_json_prefix_closed(&p))
            return k + 1;
    }
    return 0;
}

struct json_object *dsk_tool_calls_parse(const char *text, size_t len, struct json_object *tools)
{
    static const size_t open_len = sizeof DSK_TOOL_CALL_OPEN - 1, close_len = sizeof DSK_TOOL_CALL_CLOSE - 1;
    struct json_object *list = json_object_new_array();
    size_t i = skip_space(text, 0, len);
    while (i < len) {
        if (len - i < open_len || memcmp(text + i, DSK_TOOL_CALL_OPEN, open_len) != 0)
            goto not_calls;
        i += open_len;
        size_t obj = object_len(text + i, len - i);
        const char *end = text + skip_space(text, i + obj, len);
        if (!obj || (size_t)(text + len - end) < close_len || memcmp(end, DSK_TOOL_CALL_CLOSE, close_len) != 0)
            goto not_calls;   /* cut short inside the call, or more than the object */
        char msg[64];
        struct json_object *call = dsk_json_parse(text + i, (size_t)(end - (text + i)), msg, sizeof msg), *args;
        struct json_object *name = dsk_json_is(call, json_type_object) ? dsk_json_get_string(call, "name") : NULL;
        if (!name || json_object_get_string_len(name) == 0 || !offered(tools, json_object_get_string(name)) ||
            !json_object_object_get_ex(call, "arguments", &args) || !dsk_json_is(args, json_type_object)) {
            json_object_put(call);
            goto not_calls;
        }
        dsk_buf a = {0};
        dsk_json_append(args, &a);
        struct json_object *out = json_object_new_object();
        json_object_object_add(out, "name", json_object_get(name));
        json_object_object_add(out, "arguments", json_object_new_string_len(a.data, (int)a.len));
        json_object_array_add(list, out);
        dsk_buf_free(&a);
        json_object_put(call);
        i = skip_space(text, (size_t)(end - text) + close_len, len);
    }
    if (json_object_array_length(list) > 0)
        return list;
not_calls:
    json_object_put(list);
    return NULL;
}
