/* Tool calls held to the tools (text/call_prefix.h): the automaton takes
 * what the chat template writes and the parser reads back, refuses every
 * other call, and says where an answer may end. */
#include "core/err.h"
#include "core/rng.h"
#include "text/call_prefix.h"
#include "text/tool_calls.h"
#include "test.h"

static const char TOOLS[] =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"}},\"required\":[\"city\"],"
    "\"additionalProperties\":false}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"loose\",\"parameters\":{\"type\":\"object\",\"properties\":"
    "{\"n\":{\"type\":\"integer\",\"minimum\":1}}}}}]";

static dsk_call_tools *tools_of(const char *text, char *msg, size_t len)
{
    struct json_object *t = json_tokener_parse(text);
    dsk_call_tools *ct = dsk_call_tools_new(t, msg, len);
    json_object_put(t);
    return ct;
}

/* Feeds text from a fresh state; returns how many bytes were taken (all:
 * strlen) and leaves the state in *out. */
static size_t taken(const dsk_call_tools *t, int mode, int only, int parallel, const char *text, dsk_call_prefix *out)
{
    dsk_call_prefix s;
    dsk_call_prefix_init(&s, t, mode, only, parallel);
    size_t i = 0;
    while (text[i] && dsk_call_prefix_feed(&s, (unsigned char)text[i]))
        i++;
    if (out)
        *out = s;
    return i;
}

#define TAKES(mode, only, par, text) CHECK(taken(t, mode, only, par, text, NULL) == strlen(text))
#define STOPS_AT(mode, only, par, text, at) CHECK(taken(t, mode, only, par, text, NULL) == (size_t)(at))

TEST(tools_compiled)
{
    char msg[256];
    dsk_call_tools *t = tools_of(TOOLS, msg, sizeof msg);
    CHECK(t != NULL);
    if (!t)
        return;
    CHECK(dsk_call_tools_count(t) == 3);
    CHECK(dsk_call_tools_find(t, "get_time") == 1 && dsk_call_tools_find(t, "nope") == -1);
    CHECK_STR(dsk_call_tools_name(t, 2), "loose");
    CHECK(dsk_call_tools_loose(t, 0) == NULL && dsk_call_tools_loose(t, 1) == NULL);
    CHECK(dsk_call_tools_loose(t, 2) != NULL && strstr(dsk_call_tools_loose(t, 2), "minimum") != NULL);
    dsk_call_tools_free(t);
    static const char *const bad[] = {
        "[]", "{}", "[5]", "[{\"function\":{}}]", "[{\"function\":{\"name\":\"\"}}]",
        "[{\"function\":{\"name\":\"a\\\"b\"}}]", "[{\"function\":{\"name\":\"a\\nb\"}}]",
        "[{\"function\":{\"name\":\"a\"}},{\"function\":{\"name\":\"a\"}}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        t = tools_of(bad[i], msg, sizeof msg);
        CHECK(t == NULL && msg[0]);
        dsk_call_tools_free(t);
    }
    dsk_buf many = {0};
    dsk_buf_adds(&many, "[");
    for (int i = 0; i <= DSK_CALL_MAX_TOOLS; i++)
        dsk_buf_printf(&many, "%s{\"function\":{\"name\":\"f%d\"}}", i ? "," : "", i);
    dsk_buf_adds(&many, "]");
    t = tools_of(many.data, msg, sizeof msg);
    CHECK(t == NULL);
    dsk_buf_free(&many);
}

TEST(calls_held_to_the_tools)
{
    char msg[256];
    dsk_call_tools *t = tools_of(TOOLS, msg, sizeof msg);
    if (!t)
        return;
    const int A = DSK_CALLS_AUTO, R = DSK_CALLS_REQUIRED;
    /* text, then calls a line apart; text alone */
    TAKES(A, -1, 1, "Let me look. <tools> <tool <tool_call>{\"name\":\"get\",\"arguments\":{\"city\":\"Oslo\","
                    "\"days\":3}}</tool_call>\n<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>");
    TAKES(A, -1, 1, "No call, <tool_cal and <<tool_call");
    TAKES(R, -1, 1, "<tool_call>{\"name\":\"loose\",\"arguments\":{\"n\":0,\"x\":[true]}}</tool_call>");
    /* the name: one of the tools, whole, and the one named */
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"put\"", 20);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"ge\"", 22);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get_timer\"", 28);
    STOPS_AT(R, 1, 1, "<tool_call>{\"name\":\"get\"", 23);
    TAKES(R, 1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>");
    /* required: a call at once */
    STOPS_AT(R, -1, 1, "Sure <tool_call>", 0);
    STOPS_AT(R, -1, 1, " <tool_call>", 0);
    /* the form: compact, name first, nothing inside the tags but the object */
    STOPS_AT(R, -1, 1, "<tool_call> {", 11);
    STOPS_AT(R, -1, 1, "<tool_call>{\"arguments\":", 13);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get\", ", 25);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get\",\"arguments\": {", 37);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}} ", 45);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>x", 57);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":[", 42);
    /* the arguments: the tool's parameters */
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get\",\"arguments\":{\"city\":5", 45);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get\",\"arguments\":{\"town\"", 39);
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get\",\"arguments\":{\"days\":2}", 46);   /* city is required */
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":{\"a\"", 43);
    /* after a call: another a line apart, or the end; none without parallel */
    STOPS_AT(A, -1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>\n\n\n\n\n", 61);
    STOPS_AT(A, -1, 1, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>\nDone", 58);
    STOPS_AT(A, -1, 0, "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>\n", 57);
    dsk_call_tools_free(t);
}

/* A strict tool's arguments come with their keys in the order of its
 * properties (as OpenAI's strict function calling writes them); another
 * tool's in any order. */
TEST(strict_tools_order_their_keys)
{
    char msg[256];
    static const char both[] = "{\"type\":\"object\",\"properties\":{\"b\":{\"type\":\"integer\"},\"a\":"
                               "{\"type\":\"integer\"}},\"required\":[\"b\",\"a\"],\"additionalProperties\":false}";
    char text[512];
    snprintf(text, sizeof text,
             "[{\"type\":\"function\",\"function\":{\"name\":\"s\",\"strict\":true,\"parameters\":%s}},"
             "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"strict\":false,\"parameters\":%s}}]",
             both, both);
    dsk_call_tools *t = tools_of(text, msg, sizeof msg);
    CHECK(t != NULL);
    if (!t)
        return;
    const int R = DSK_CALLS_REQUIRED;
    TAKES(R, -1, 1, "<tool_call>{\"name\":\"s\",\"arguments\":{\"b\":1,\"a\":2}}</tool_call>");
    STOPS_AT(R, -1, 1, "<tool_call>{\"name\":\"s\",\"arguments\":{\"a\":2", 37);
    TAKES(R, -1, 1, "<tool_call>{\"name\":\"f\",\"arguments\":{\"a\":2,\"b\":1}}</tool_call>");
    TAKES(R, -1, 1, "<tool_call>{\"name\":\"f\",\"arguments\":{\"b\":1,\"a\":2}}</tool_call>");
    dsk_call_tools_free(t);
}

TEST(where_an_answer_may_end)
{
    char msg[256];
    dsk_call_tools *t = tools_of(TOOLS, msg, sizeof msg);
    if (!t)
        return;
    static const char call[] = "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>";
    dsk_call_prefix s;
    for (size_t cut = 0; cut <= strlen(call); cut++) {
        char text[128];
        snprintf(text, sizeof text, "Hi %.*s", (int)cut, call);
        CHECK(taken(t, DSK_CALLS_AUTO, -1, 1, text, &s) == strlen(text));
        /* in text (before the tag is whole), and after the call */
        int want = cut < sizeof DSK_TOOL_CALL_OPEN - 1 || cut == strlen(call);
        CHECK(dsk_call_prefix_may_end(&s) == want);
        CHECK(!dsk_call_prefix_done(&s));
        CHECK(dsk_call_prefix_in_free_text(&s) == (cut == 0));
    }
    CHECK(taken(t, DSK_CALLS_AUTO, -1, 0, call, &s) == strlen(call));
    CHECK(dsk_call_prefix_done(&s) && dsk_call_prefix_may_end(&s) && s.calls == 1);
    CHECK(taken(t, DSK_CALLS_REQUIRED, -1, 1, "", &s) == 0);
    CHECK(!dsk_call_prefix_may_end(&s));
    /* a failed state refuses everything */
    CHECK(taken(t, DSK_CALLS_REQUIRED, -1, 1, "x", &s) == 0);
    CHECK(s.at == DSK_CALL_FAILED && !dsk_call_prefix_feed(&s, '<') && !dsk_call_prefix_may_end(&s));
    dsk_call_tools_free(t);
}

/* What the chat template writes for calls (tool_calls.c), the automaton
 * takes whole, and the parser reads back the same: random calls with
 * arguments valid against the parameters. */
TEST(template_calls_are_taken_and_read_back)
{
    char msg[256];
    dsk_call_tools *t = tools_of(TOOLS, msg, sizeof msg);
    struct json_object *tools = json_tokener_parse(TOOLS);
    if (!t)
        return;
    dsk_rng r;
    dsk_rng_seed(&r, 5);
    static const char *const cities[] = {"Oslo", "S\xC3\xA3o Paulo", "a \\\"quoted\\\" one", "</tool_call>", "\\u00e9\\n"};
    for (int iter = 0; iter < 200; iter++) {
        dsk_buf calls = {0}, text = {0};
        int n = 1 + (int)(dsk_rng_next(&r) % 3);
        dsk_buf_adds(&calls, "[");
        for (int k = 0; k < n; k++) {
            int which = (int)(dsk_rng_next(&r) % 3);
            dsk_buf_printf(&calls, "%s{\"type\":\"function\",\"function\":{\"name\":\"%s\",\"arguments\":", k ? "," : "",
                           which == 0 ? "get" : which == 1 ? "get_time" : "loose");
            if (which == 0 && dsk_rng_next(&r) % 2)
                dsk_buf_printf(&calls, "{\"days\":%d,\"city\":\"%s\"}", (int)(dsk_rng_next(&r) % 30) - 5,
                               cities[dsk_rng_next(&r) % 5]);
            else if (which == 0)
                dsk_buf_printf(&calls, "{\"city\":\"%s\"}", cities[dsk_rng_next(&r) % 5]);
            else if (which == 1)
                dsk_buf_adds(&calls, "{}");
            else
                dsk_buf_printf(&calls, "{\"n\":%d,\"note\":[1.5e3,null,{\"k\":\"v\"}]}", (int)(dsk_rng_next(&r) % 9));
            dsk_buf_adds(&calls, "}}");
        }
        dsk_buf_adds(&calls, "]");
        struct json_object *list = json_tokener_parse(calls.data);
        dsk_err err = {0};
        CHECK(list != NULL);
        if (dsk_rng_next(&r) % 2)
            dsk_buf_adds(&text, "Let me check.\n");
        size_t call_at = text.len;
        CHECK(dsk_tool_calls_render(list, &text, &err) == 0);
        dsk_buf_addc(&text, 0);
        dsk_call_prefix s;
        CHECK(taken(t, DSK_CALLS_AUTO, -1, 1, text.data, &s) == text.len - 1);
        CHECK(dsk_call_prefix_may_end(&s) && s.calls == (uint32_t)n);
        struct json_object *back = dsk_tool_calls_parse(text.data + call_at, text.len - 1 - call_at, tools);
        CHECK(back != NULL && json_object_array_length(back) == (size_t)n);
        json_object_put(back);
        json_object_put(list);
        dsk_buf_free(&calls);
        dsk_buf_free(&text);
    }
    json_object_put(tools);
    dsk_call_tools_free(t);
}

RUN_TESTS(T(tools_compiled), T(calls_held_to_the_tools), T(strict_tools_order_their_keys), T(where_an_answer_may_end),
          T(template_calls_are_taken_and_read_back))
