/* libFuzzer target: reading a model's answer as tool calls
 * (text/tool_calls.h).  The input is a "tools" array, a NUL byte, then an
 * answer.  Traps: calls read back whose arguments are not a JSON object,
 * or that, written by the template and read again, come back different. */
#include <string.h>

#include "core/json.h"
#include "text/tool_calls.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const unsigned char *nul = memchr(data, 0, size);
    size_t tools_len = nul ? (size_t)(nul - data) : 0;
    const char *text = (const char *)data + (nul ? tools_len + 1 : 0);
    size_t text_len = size - (size_t)(text - (const char *)data);
    char msg[64];
    struct json_object *tools = nul ? dsk_json_parse((const char *)data, tools_len, msg, sizeof msg) : NULL;
    dsk_buf rendered = {0};
    dsk_err err;
    if (tools && dsk_tools_render(tools, &rendered, &err) != 0) {   /* not a tools array: any name */
        json_object_put(tools);
        tools = NULL;
    }
    struct json_object *calls = dsk_tool_calls_parse(text, text_len, tools);
    if (calls) {
        /* as OpenAI's tool_calls, through the template, and read again */
        struct json_object *openai = json_object_new_array();
        for (size_t i = 0; i < json_object_array_length(calls); i++) {
            struct json_object *c = json_object_array_get_idx(calls, i), *name, *args;
            if (!json_object_object_get_ex(c, "name", &name) || !json_object_object_get_ex(c, "arguments", &args))
                __builtin_trap();
            struct json_object *parsed = dsk_json_parse(json_object_get_string(args),
                                                        (size_t)json_object_get_string_len(args), msg, sizeof msg);
            if (!dsk_json_is(parsed, json_type_object))
                __builtin_trap();
            json_object_put(parsed);
            struct json_object *call = json_object_new_object(), *fn = json_object_new_object();
            json_object_object_add(fn, "name", json_object_get(name));
            json_object_object_add(fn, "arguments", json_object_get(args));
            json_object_object_add(call, "type", json_object_new_string("function"));
            json_object_object_add(call, "function", fn);
            json_object_array_add(openai, call);
        }
        dsk_buf again = {0}, a = {0}, b = {0};
        if (dsk_tool_calls_render(openai, &again, &err) != 0)
            __builtin_trap();
        struct json_object *back = dsk_tool_calls_parse(again.data, again.len, tools);
        if (!back)
            __builtin_trap();
        dsk_json_append(calls, &a);
        dsk_json_append(back, &b);
        if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            __builtin_trap();
        json_object_put(back);
        json_object_put(openai);
        dsk_buf_free(&again);
        dsk_buf_free(&a);
        dsk_buf_free(&b);
        json_object_put(calls);
    }
    dsk_buf_free(&rendered);
    json_object_put(tools);
    return 0;
}
