/* Chat messages: see messages.h. */
#include "text/messages.h"

#include <string.h>
#include <sysexits.h>

#include "text/tool_calls.h"

const char *const dsk_role_names[4] = {"system", "user", "assistant", "tool"};

int dsk_messages_check(struct json_object *msgs, const char *field, dsk_err *err)
{
    if (!dsk_json_is(msgs, json_type_array) || json_object_array_length(msgs) == 0)
        return dsk_fail(err, EX_DATAERR, "\"%s\" must be a non-empty array of messages", field);
    return 0;
}

int dsk_message_read(struct json_object *msgs, size_t i, dsk_message *m, dsk_err *err)
{
    struct json_object *msg = json_object_array_get_idx(msgs, i), *role = NULL;
    m->content = m->calls = NULL;
    if (dsk_json_is(msg, json_type_object)) {
        role = dsk_json_get_string(msg, "role");
        json_object_object_get_ex(msg, "content", &m->content);
        json_object_object_get_ex(msg, "tool_calls", &m->calls);
    }
    const char *name = role ? json_object_get_string(role) : "";
    int r = 0;
    while (r < 4 && strcmp(name, dsk_role_names[r]) != 0)
        r++;
    if (strcmp(name, "developer") == 0)
        r = DSK_ROLE_SYSTEM;   /* OpenAI's newer name for it, as dsk-serve reads it too */
    m->role = (dsk_role)r;
    int assistant = r == DSK_ROLE_ASSISTANT;
    /* (json-c reads null as a NULL object: null and absent are one case) */
    if (!role || !(dsk_json_is(m->content, json_type_string) || (assistant && m->calls && !m->content)))
        return dsk_fail(err, EX_DATAERR,
                        "message %zu needs string \"role\" and \"content\" (content null or absent only beside an "
                        "assistant's \"tool_calls\")", i);
    if (r == 4)
        return dsk_fail(err, EX_DATAERR, "message %zu has role '%.100s' (system, developer, user, assistant or tool)", i, name);
    if (m->calls && !assistant)
        return dsk_fail(err, EX_DATAERR, "message %zu: only an assistant message has \"tool_calls\"", i);
    return 0;
}

int dsk_message_calls_render(const dsk_message *m, size_t i, dsk_buf *out, dsk_err *err)
{
    int rc = dsk_tool_calls_render(m->calls, out, err);
    if (rc) {
        char why[sizeof err->msg];
        memcpy(why, err->msg, sizeof why);
        dsk_fail(err, rc, "message %zu: %.900s", i, why);
    }
    return rc;
}

int dsk_message_render(const dsk_message *m, size_t i, dsk_buf *text, dsk_err *err)
{
    dsk_buf_clear(text);
    const char *c = m->content ? json_object_get_string(m->content) : "";
    size_t n = m->content ? (size_t)json_object_get_string_len(m->content) : 0;
    if (m->role == DSK_ROLE_TOOL) {
        dsk_tool_response_render(c, n, text);
        return 0;
    }
    dsk_buf_add(text, c, n);
    if (!m->calls)
        return 0;
    if (n)
        dsk_buf_addc(text, '\n');
    return dsk_message_calls_render(m, i, text, err);
}
