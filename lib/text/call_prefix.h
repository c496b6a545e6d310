/* Whether an answer, fed a byte at a time, is still the beginning of one
 * whose tool calls follow the tools offered: the automaton behind
 * dsk-serve's tool calls, which lets the model draw only tokens that keep
 * each call well formed (text/tool_calls.h's form) and its arguments
 * valid against the tool's parameters (text/json_schema.h).
 *
 * An answer is text, or (DSK_CALLS_REQUIRED) nothing, then calls:
 *
 *   <tool_call>{"name":"NAME","arguments":ARGS}</tool_call>
 *
 * NAME one of the tools' names, ARGS compact JSON valid against that
 * tool's parameters, and calls a line apart (whitespace, up to
 * DSK_CALL_MAX_SPACE bytes).  Text is free until it writes the opening
 * tag "<tool_call>" (a lazy grammar: the constraint begins where the call
 * does); from there on every byte is held to the form.  A tool whose
 * parameters are outside the schema subset takes any object.
 *
 * Like text/json_prefix.h, the set of accepted beginnings is closed under
 * prefixes, a state is a value copied freely, and every accepted state
 * can be completed. */
#ifndef DSK_TEXT_CALL_PREFIX_H
#define DSK_TEXT_CALL_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#include "text/json_prefix.h"

#define DSK_CALL_MAX_TOOLS 128
#define DSK_CALL_MAX_SPACE 4

struct json_object;
typedef struct dsk_call_tools dsk_call_tools;

/* The tools of an OpenAI "tools" array ([{"type": "function", "function":
 * {"name", "parameters", ...}}, ...]), their parameters compiled.  NULL
 * with the reason in msg for another shape, over DSK_CALL_MAX_TOOLS tools,
 * two of one name, or a name that is not 1 to 64 bytes of printable ASCII
 * with no '"' or '\\'.  A tool whose parameters are outside the subset,
 * or admit no object, is kept: its calls take any object
 * (dsk_call_tools_loose says why). */
dsk_call_tools *dsk_call_tools_new(struct json_object *tools, char *msg, size_t msg_len);
void dsk_call_tools_free(dsk_call_tools *t);
int dsk_call_tools_count(const dsk_call_tools *t);
const char *dsk_call_tools_name(const dsk_call_tools *t, int i);
/* The index of the tool named name, or -1. */
int dsk_call_tools_find(const dsk_call_tools *t, const char *name);
/* NULL when tool i's arguments are held to its parameters; else why not
 * ("'minimum' is not supported at /properties/age", say). */
const char *dsk_call_tools_loose(const dsk_call_tools *t, int i);

/* Where the answer is (dsk_call_prefix.at). */
enum {
    DSK_CALL_FAILED,
    DSK_CALL_TEXT,      /* free text; pos: bytes of "<tool_call>" its end matches */
    DSK_CALL_OPEN,      /* pos bytes of "<tool_call>{\"name\":\"" written */
    DSK_CALL_NAME,      /* pos bytes of the name, which begin the names in cand */
    DSK_CALL_ARGS_KEY,  /* pos bytes of "\",\"arguments\":" written, tool named */
    DSK_CALL_ARGS,      /* in the arguments (args) */
    DSK_CALL_CLOSE,     /* pos bytes of "}</tool_call>" written */
    DSK_CALL_BETWEEN,   /* after a call: whitespace (space bytes) before the next, or the end */
    DSK_CALL_DONE,      /* after the last call allowed: nothing more */
};

enum { DSK_CALLS_AUTO, DSK_CALLS_REQUIRED };

typedef struct dsk_call_prefix {
    const dsk_call_tools *tools;
    uint8_t at;          /* DSK_CALL_* */
    uint8_t pos;
    uint8_t space;
    uint8_t parallel;    /* another call may follow one */
    int16_t only;        /* the one tool that may be called, or -1: any */
    int16_t tool;        /* from DSK_CALL_ARGS_KEY on: the tool called */
    uint32_t calls;      /* calls written whole */
    uint64_t cand[DSK_CALL_MAX_TOOLS / 64];
    dsk_json_prefix args;
} dsk_call_prefix;

/* A state before any byte.  DSK_CALLS_AUTO: text first, perhaps calls
 * after it; DSK_CALLS_REQUIRED: a call at once.  only >= 0: the tool that
 * may be called (else any).  parallel: calls may follow calls (else the
 * first call is the last). */
void dsk_call_prefix_init(dsk_call_prefix *s, const dsk_call_tools *t, int mode, int only, int parallel);

/* *dst = *src, copying the arguments' state only while it is in use. */
void dsk_call_prefix_copy(dsk_call_prefix *dst, const dsk_call_prefix *src);

/* Feeds one byte: 1 if the answer is still a beginning, 0 if not (s is
 * then failed and refuses everything). */
int dsk_call_prefix_feed(dsk_call_prefix *s, unsigned char c);
int dsk_call_prefix_feed_all(dsk_call_prefix *s, const void *bytes, size_t n);

/* 1 where the answer may end: in text, or between calls. */
int dsk_call_prefix_may_end(const dsk_call_prefix *s);

/* 1 when no byte can follow (the last call allowed is written). */
int dsk_call_prefix_done(const dsk_call_prefix *s);

/* 1 in text that matches none of the opening tag: a run of bytes with no
 * '<' leaves s as it is.  Masks take such tokens unread. */
int dsk_call_prefix_in_free_text(const dsk_call_prefix *s);

#endif
