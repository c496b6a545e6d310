/* Chat messages (text/messages.h): the shapes dsk-docs(5) allows, read
 * alike by dsk-clean and dsk-bpe, and the text each is written as. */
#include <string.h>
#include <sysexits.h>

#include "core/err.h"
#include "text/messages.h"
#include "test.h"

/* Message 0 of the array text as rendered, or "ERR: " and the error. */
static char *rendered(const char *text)
{
    struct json_object *msgs = json_tokener_parse(text);
    dsk_err err = {0};
    dsk_buf out = {0};
    dsk_message m;
    int rc = dsk_messages_check(msgs, "messages", &err);
    if (!rc)
        rc = dsk_message_read(msgs, "messages", 0, &m, &err);
    if (!rc)
        rc = dsk_message_render(&m, &out, &err);
    char *s;
    if (rc) {
        s = dsk_xmalloc(strlen(err.msg) + 6);
        strcpy(s, "ERR: ");
        strcat(s, err.msg);
    } else {
        s = dsk_xmalloc(out.len + 1);
        memcpy(s, out.data ? out.data : "", out.len);
        s[out.len] = 0;
    }
    dsk_buf_free(&out);
    json_object_put(msgs);
    return s;
}

#define CHECK_RENDERED(text, want)   \
    do {                             \
        char *got_ = rendered(text); \
        CHECK_STR(got_, want);       \
        free(got_);                  \
    } while (0)

TEST(roles_and_text)
{
    CHECK_RENDERED("[{\"role\":\"user\",\"content\":\"hi\"}]", "hi");
    CHECK_RENDERED("[{\"role\":\"system\",\"content\":\"\"}]", "");
    CHECK_RENDERED("[{\"role\":\"tool\",\"content\":\"4 C\"}]", "<tool_response>\n4 C\n</tool_response>");
    CHECK_RENDERED("[{\"role\":\"assistant\",\"content\":\"so\",\"tool_calls\":[{\"type\":\"function\",\"function\":"
                   "{\"name\":\"w\",\"arguments\":\"{\\\"a\\\":1}\"}}]}]",
                   "so\n<tool_call>{\"name\":\"w\",\"arguments\":{\"a\":1}}</tool_call>");
    /* content null or absent beside calls */
    CHECK_RENDERED("[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"function\":{\"name\":\"w\","
                   "\"arguments\":{}}}]}]", "<tool_call>{\"name\":\"w\",\"arguments\":{}}</tool_call>");
    struct json_object *msgs = json_tokener_parse("[{\"role\":\"tool\",\"content\":\"x\"},{\"role\":\"assistant\","
                                                  "\"content\":\"y\"}]");
    dsk_message m;
    dsk_err err = {0};
    CHECK(dsk_message_read(msgs, "messages", 0, &m, &err) == 0 && m.role == DSK_ROLE_TOOL && !m.calls);
    CHECK(dsk_message_read(msgs, "messages", 1, &m, &err) == 0 && m.role == DSK_ROLE_ASSISTANT);
    CHECK_STR(dsk_role_names[m.role], "assistant");
    json_object_put(msgs);
    msgs = json_tokener_parse("[{\"role\":\"developer\",\"content\":\"x\"}]");
    CHECK(dsk_message_read(msgs, "messages", 0, &m, &err) == 0 && m.role == DSK_ROLE_SYSTEM);
    json_object_put(msgs);
}

TEST(other_shapes_refused)
{
    CHECK_RENDERED("[]", "ERR: \"messages\" must be a non-empty array of messages");
    CHECK_RENDERED("{\"role\":\"user\",\"content\":\"x\"}", "ERR: \"messages\" must be a non-empty array of messages");
    const char *const shape = "ERR: message 0 needs string \"role\" and \"content\" (content null or absent only "
                              "beside an assistant's \"tool_calls\")";
    CHECK_RENDERED("[\"hi\"]", shape);
    CHECK_RENDERED("[{\"content\":\"x\"}]", shape);
    CHECK_RENDERED("[{\"role\":\"user\"}]", shape);
    CHECK_RENDERED("[{\"role\":\"user\",\"content\":null}]", shape);
    CHECK_RENDERED("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}]", shape);
    CHECK_RENDERED("[{\"role\":\"assistant\",\"content\":null}]", shape);
    CHECK_RENDERED("[{\"role\":\"tool\",\"tool_calls\":[]}]", shape);
    CHECK_RENDERED("[{\"role\":\"Developer\",\"content\":\"x\"}]",
                   "ERR: message 0 has role 'Developer' (system, developer, user, assistant or tool)");
    CHECK_RENDERED("[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]",
                   "ERR: message 0: only an assistant message has \"tool_calls\"");
    CHECK_RENDERED("[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":[]}]",
                   "ERR: message 0: \"tool_calls\" must be a non-empty array");
    CHECK_RENDERED("[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"w\",\"arguments\":\"{\"}}]}]",
                   "ERR: message 0: tool_calls[0].function.arguments: unexpected end of line at column 2");
}

/* A message in another field than "messages" is named with its field. */
TEST(messages_of_other_fields_named)
{
    struct json_object *msgs = json_tokener_parse("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"bot\","
                                                  "\"content\":\"b\"}]");
    dsk_message m;
    dsk_err err = {0};
    CHECK(dsk_message_read(msgs, "prompt", 1, &m, &err) == EX_DATAERR);
    CHECK_STR(err.msg, "\"prompt\" message 1 has role 'bot' (system, developer, user, assistant or tool)");
    json_object_put(msgs);
    CHECK(dsk_messages_check(NULL, "prompt", &err) == EX_DATAERR);
    CHECK_STR(err.msg, "\"prompt\" must be a string or a non-empty array of messages");
}

RUN_TESTS(T(roles_and_text), T(other_shapes_refused), T(messages_of_other_fields_named))
