/* Tool calls in chat text: the one form dsk's chat template writes them
 * in, for training (dsk-bpe encode) and serving (dsk-serve) alike, and
 * the parser that reads a model's answer back into calls.
 *
 * The form is Hermes' (Qwen's and NousResearch's templates), written
 * inside the turns of dsk's own template with no new special token:
 *
 *   tools      a system turn before the conversation: one line saying how
 *              to call, then each tool's "function" object as compact JSON,
 *              one a line
 *   a call     in the assistant turn, after its text (if any) and a
 *              newline: <tool_call>{"name":N,"arguments":{...}}</tool_call>,
 *              several calls a newline apart
 *   a result   a user turn: <tool_response>\nCONTENT\n</tool_response>
 *
 * See dsk-docs(5). */
#ifndef DSK_TEXT_TOOL_CALLS_H
#define DSK_TEXT_TOOL_CALLS_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

#define DSK_TOOL_CALL_OPEN "<tool_call>"
#define DSK_TOOL_CALL_CLOSE "</tool_call>"

/* Appends the text of the system turn that describes tools, an OpenAI
 * "tools" array ([{"type": "function", "function": {"name", ...}}, ...]);
 * EX_DATAERR naming the entry for any other shape. */
int dsk_tools_render(struct json_object *tools, dsk_buf *out, dsk_err *err);

/* Appends an assistant message's calls, an OpenAI "tool_calls" array
 * ([{"type": "function", "function": {"name", "arguments"}}, ...], the
 * arguments a string holding a JSON object, as OpenAI writes them, or the
 * object itself); the arguments are written as compact JSON.  EX_DATAERR
 * naming the call for any other shape. */
int dsk_tool_calls_render(struct json_object *calls, dsk_buf *out, dsk_err *err);

/* Appends a tool message's content as a result. */
void dsk_tool_response_render(const char *content, size_t len, dsk_buf *out);

/* Reads text[0..len), the part of an answer from its first
 * DSK_TOOL_CALL_OPEN, as calls: one or more <tool_call>JSON</tool_call>
 * blocks with only whitespace between and after them, each JSON an object
 * with a string "name" (one of tools' names; any name when tools is NULL)
 * and an object "arguments".  Returns a new array of {"name": string,
 * "arguments": string of compact JSON}, or NULL when the text is anything
 * else (an answer cut short inside a call, say). */
struct json_object *dsk_tool_calls_parse(const char *text, size_t len, struct json_object *tools);

#endif
