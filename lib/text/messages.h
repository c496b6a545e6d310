/* A chat record's messages as dsk-docs(5) defines them, read alike by
 * dsk-clean (which cleans their contents) and dsk-bpe (which encodes
 * them): OpenAI's system, user and assistant messages with string
 * content, and the tool messages of its fine-tuning format, an
 * assistant's "tool_calls" (content then null or absent) and a "tool"
 * message holding a call's result. */
#ifndef DSK_TEXT_MESSAGES_H
#define DSK_TEXT_MESSAGES_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

typedef enum { DSK_ROLE_SYSTEM, DSK_ROLE_USER, DSK_ROLE_ASSISTANT, DSK_ROLE_TOOL } dsk_role;

/* "system", "user", "assistant", "tool" */
extern const char *const dsk_role_names[4];

typedef struct {
    const char *field;            /* the record's field that holds it: "messages", "prompt", "chosen" ... */
    size_t index;                 /* its place there, from 0 */
    dsk_role role;
    struct json_object *content;  /* a JSON string, or NULL beside an assistant's calls */
    struct json_object *calls;    /* an assistant's "tool_calls" array as given, or NULL */
} dsk_message;

/* EX_DATAERR unless msgs, the value of the field named field, is a
 * non-empty array. */
int dsk_messages_check(struct json_object *msgs, const char *field, dsk_err *err);

/* Reads message i of msgs, the value of field (checked by
 * dsk_messages_check); EX_DATAERR naming the message ("message 2", or
 * "\"prompt\" message 2" in another field than "messages") for another
 * shape.  The calls are not read here: dsk_message_calls_render does. */
int dsk_message_read(struct json_object *msgs, const char *field, size_t i, dsk_message *m, dsk_err *err);

/* Appends the calls of the message (m->calls not NULL) as the template
 * writes them (text/tool_calls.h); EX_DATAERR naming the message and the
 * call for a call of another shape. */
int dsk_message_calls_render(const dsk_message *m, dsk_buf *out, dsk_err *err);

/* Replaces text with the message as the chat template writes it inside
 * its turn: the content, then an assistant's calls a newline after it; a
 * tool message as a result, in a user turn. */
int dsk_message_render(const dsk_message *m, dsk_buf *text, dsk_err *err);

#endif
