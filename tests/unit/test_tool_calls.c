/* Tool calls in chat text (text/tool_calls.h): what the template writes
 * for tools, calls and results, and the parser that reads calls back. */
#include "core/err.h"
#include "text/tool_calls.h"
#include "test.h"

static struct json_object *js(const char *s)
{
    return json_tokener_parse(s);
}

/* The calls dsk_tool_calls_parse reads from text, as compact JSON, or "NULL". */
static char *parsed(const char *text, struct json_object *tools)
{
    struct json_object *calls = dsk_tool_calls_parse(text, strlen(text), tools);
    dsk_buf b = {0};
    if (calls)
        dsk_json_append(calls, &b);
    else
        dsk_buf_adds(&b, "NULL");
    dsk_buf_addc(&b, 0);
    json_object_put(calls);
    return b.data;
}

#define CHECK_PARSED(text, tools, want)           \
    do {                                          \
        char *got_ = parsed(text, tools);         \
        CHECK_STR(got_, want);                    \
        free(got_);                               \
    } while (0)

TEST(tools_turn)
{
    struct json_object *tools = js("[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"parameters\":"
                                   "{\"type\":\"object\"}}},{\"function\":{\"name\":\"t\",\"description\":\"time\"}}]");
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_tools_render(tools, &b, &err) == 0);
    dsk_buf_addc(&b, 0);
    CHECK_STR(b.data, "You can call these tools. To call one, answer <tool_call>{\"name\":NAME,\"arguments\":{...}}"
                      "</tool_call>, a line a call.\n{\"name\":\"w\",\"parameters\":{\"type\":\"object\"}}\n"
                      "{\"name\":\"t\",\"description\":\"time\"}");
    static const char *const bad[] = {"[]", "{}", "[{\"type\":\"code\",\"function\":{\"name\":\"w\"}}]",
                                      "[{\"type\":\"function\",\"function\":{\"name\":\"\"}}]", "[{\"type\":\"function\"}]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct json_object *t = js(bad[i]);
        dsk_buf_clear(&b);
        CHECK(dsk_tools_render(t, &b, &err) == EX_DATAERR);
        json_object_put(t);
    }
    dsk_buf_free(&b);
    json_object_put(tools);
}

TEST(calls_and_results)
{
    /* OpenAI's string arguments written compact; an object taken as it is */
    struct json_object *calls = js("[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":"
                                   "\"{ \\\"city\\\" : \\\"Oslo\\\" }\"}},{\"function\":{\"name\":\"t\",\"arguments\":{}}}]");
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_tool_calls_render(calls, &b, &err) == 0);
    dsk_buf_addc(&b, 0);
    CHECK_STR(b.data, "<tool_call>{\"name\":\"w\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>\n"
                      "<tool_call>{\"name\":\"t\",\"arguments\":{}}</tool_call>");
    /* and read back as they were made */
    struct json_object *tools = js("[{\"type\":\"function\",\"function\":{\"name\":\"w\"}},{\"type\":\"function\","
                                   "\"function\":{\"name\":\"t\"}}]");
    CHECK_PARSED(b.data, tools, "[{\"name\":\"w\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"},"
                                "{\"name\":\"t\",\"arguments\":\"{}\"}]");
    json_object_put(calls);
    static const char *const bad[] = {
        "[]", "{}", "[{\"type\":\"function\",\"function\":{\"name\":\"w\"}}]",
        "[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"[1]\"}}]",
        "[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":\"{\\\"a\\\":\"}}]",
        "[{\"type\":\"function\",\"function\":{\"name\":\"w\",\"arguments\":7}}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct json_object *c = js(bad[i]);
        dsk_buf_clear(&b);
        CHECK(dsk_tool_calls_render(c, &b, &err) == EX_DATAERR);
        json_object_put(c);
    }
    /* an empty arguments string is no arguments: {} */
    calls = js("[{\"type\":\"function\",\"function\":{\"name\":\"t\",\"arguments\":\"\"}}]");
    dsk_buf_clear(&b);
    CHECK(dsk_tool_calls_render(calls, &b, &err) == 0);
    dsk_buf_addc(&b, 0);
    CHECK_STR(b.data, "<tool_call>{\"name\":\"t\",\"arguments\":{}}</tool_call>");
    json_object_put(calls);
    dsk_buf_clear(&b);
    dsk_tool_response_render("rain\n", 5, &b);
    dsk_buf_addc(&b, 0);
    CHECK_STR(b.data, "<tool_response>\nrain\n\n</tool_response>");
    dsk_buf_free(&b);
    json_object_put(tools);
}

TEST(answers_read_as_calls)
{
    struct json_object *tools = js("[{\"type\":\"function\",\"function\":{\"name\":\"w\"}}]");
    CHECK_PARSED("<tool_call>{\"name\":\"w\",\"arguments\":{\"a\":[1, 2]}}</tool_call>", tools,
                 "[{\"name\":\"w\",\"arguments\":\"{\\\"a\\\":[1,2]}\"}]");
    /* whitespace around and between calls */
    CHECK_PARSED(" \n<tool_call> {\"name\": \"w\", \"arguments\": {}} </tool_call>\n<tool_call>{\"arguments\":{},"
                 "\"name\":\"w\"}</tool_call>\n ", tools,
                 "[{\"name\":\"w\",\"arguments\":\"{}\"},{\"name\":\"w\",\"arguments\":\"{}\"}]");
    /* anything else is text */
    CHECK_PARSED("<tool_call>{\"name\":\"x\",\"arguments\":{}}</tool_call>", tools, "NULL");     /* not offered */
    CHECK_PARSED("<tool_call>{\"name\":\"x\",\"arguments\":{}}</tool_call>", NULL,
                 "[{\"name\":\"x\",\"arguments\":\"{}\"}]");                                    /* any name */
    CHECK_PARSED("<tool_call>{\"name\":\"w\",\"arguments\":{\"a\":", tools, "NULL");             /* cut short */
    CHECK_PARSED("<tool_call>{\"name\":\"w\",\"arguments\":{}}</tool_call> and so", tools, "NULL"); /* text after */
    CHECK_PARSED("<tool_call>{\"name\":\"w\",\"arguments\":[]}</tool_call>", tools, "NULL");     /* not an object */
    CHECK_PARSED("<tool_call>{\"name\":\"w\"}</tool_call>", tools, "NULL");                      /* no arguments */
    CHECK_PARSED("<tool_call>{\"name\":\"w\",\"arguments\":{}}} </tool_call>", tools, "NULL");   /* not JSON */
    CHECK_PARSED("<tool_call></tool_call>", tools, "NULL");
    CHECK_PARSED("<tool_call>{\"name\":\"\",\"arguments\":{}}</tool_call>", NULL, "NULL");   /* no name */
    CHECK_PARSED("", tools, "NULL");
    CHECK_PARSED("<tool_call", tools, "NULL");
    CHECK_PARSED("so <tool_call>{\"name\":\"w\",\"arguments\":{}}</tool_call>", tools, "NULL");  /* from the tag */
    json_object_put(tools);
}

RUN_TESTS(T(tools_turn), T(calls_and_results), T(answers_read_as_calls))
