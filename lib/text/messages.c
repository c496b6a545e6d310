/* Chat messages: see messages.h. */
#include "text/messages.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "text/tool_calls.h"

const char *const dsk_role_names[4] = {"system", "user", "assistant", "tool"};

int dsk_messages_check(struct json_object *msgs, const char *field, dsk_err *err)
{
    if (!dsk_json_is(msgs, json_type_array) || json_object_array_length(msgs) == 0)
        return dsk_fail(err, EX_DATAERR, "\"%s\" must be %sa non-empty array of messages", field,
                        strcmp(field, "prompt") ? "" : "a string or ");   /* (a prompt may be one user turn) */
    return 0;
}

/* "message 2", or "\"prompt\" message 2" */
static const char *message_name(const char *field, size_t i, char *buf, size_t len)
{
    if (!field || !strcmp(field, "messages"))
        snprintf(buf, len, "message %zu", i);
    else
        snprintf(buf, len, "\"%.40s\" message %zu", field, i);
    return buf;
}

int dsk_message_read(struct json_object *msgs, const char *field, size_t i, dsk_message *m, dsk_err *err)
{
    struct json_object *msg = json_object_array_get_idx(msgs, i), *role = NULL;
    char name[80];   /* named only for an error: this runs for every message read */
    m->field = field;
    m->index = i;
    m->content = m->calls = NULL;
    if (dsk_json_is(msg, json_type_object)) {
        role = dsk_json_get_string(msg, "role");
        json_object_object_get_ex(msg, "content", &m->content);
        json_object_object_get_ex(msg, "tool_calls", &m->calls);
    }
    const char *role_name = role ? json_object_get_string(role) : "";
    int r = 0;
    while (r < 4 && strcmp(role_name, dsk_role_names[r]) != 0)
        r++;
    if (strcmp(role_name, "developer") == 0)
        r = DSK_ROLE_SYSTEM;   /* OpenAI's newer name for it, as dsk-serve reads it too */
    m->role = (dsk_role)r;
    int assistant = r == DSK_ROLE_ASSISTANT;
    /* (json-c reads null as a NULL object: null and absent are one case) */
    if (!role || !(dsk_json_is(m->content, json_type_string) || (assistant && m->calls && !m->content)))
        return dsk_fail(err, EX_DATAERR,
                        "%s needs string \"role\" and \"content\" (content null or absent only beside an "
                        "assistant's \"tool_calls\")", message_name(field, i, name, sizeof name));
    if (r == 4)
        return dsk_fail(err, EX_DATAERR, "%s has role '%.100s' (system, developer, user, assistant or tool)",
                        message_name(field, i, name, sizeof name), role_name);
    if (m->calls && !assistant)
        return dsk_fail(err, EX_DATAERR, "%s: only an assistant message has \"tool_calls\"",
                        message_name(field, i, name, sizeof name));
    return 0;
}

int dsk_message_calls_render(const dsk_message *m, dsk_buf *out, dsk_err *err)
{
    int rc = dsk_tool_calls_render(m->calls, out, err);
    if (rc) {
        char why[sizeof err->msg], name[80];
        memcpy(why, err->msg, sizeof why);
        dsk_fail(err, rc, "%s: %.900s", message_name(m->field, m->index, name, sizeof name), why);
    }
    return rc;
}

int dsk_message_render(const dsk_message *m, dsk_buf *text, dsk_err *err)
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
    return dsk_message_calls_render(m, text, err);
}
