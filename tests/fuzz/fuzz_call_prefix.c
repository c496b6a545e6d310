/* libFuzzer target: tool calls held to the tools (text/call_prefix.h).
 * The input is a "tools" array, a NUL byte, a byte of flags (bit 0: a
 * call at once, bit 1: calls may follow calls, bits 2-3: the one tool
 * that may be called, 3 for any), then an answer fed a byte at a time.
 * Traps: a failed state that takes a byte; a copy that goes on otherwise
 * than its original; an answer taken whole, at an end, whose calls the
 * parser (text/tool_calls.h) does not read back as as many calls of the
 * same tools, or whose arguments are not one JSON object; forced tokens
 * (jump-forward decoding, serve/json_mode.h) where the answer stops that
 * the state does not take, or whose first byte is not the only one it
 * takes. */
#include <stdlib.h>
#include <string.h>

#include "../unit/byte_vocab.h"
#include "core/json.h"
#include "serve/json_mode.h"
#include "text/call_prefix.h"
#include "text/tool_calls.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A byte-level vocabulary with a few pieces of the form, made once. */
static dsk_tokenizer tk;
static dsk_json_vocab *vocab;

static void make_vocab(void)
{
    static const char *const pieces[] = {"tool", "_call", "name", "arguments", "\":\"", "\",\"", "\":{", "}}", "{\""};
    uint32_t id = byte_vocab(&tk, pieces, sizeof pieces / sizeof *pieces, 1);
    vocab = dsk_json_vocab_new(&tk, (int)id);
}

/* The forced tokens of s feed it, and the first byte was its only one. */
static void check_forced(const dsk_call_prefix *s)
{
    int32_t out[64];
    int n = dsk_call_vocab_forced(vocab, s, out, 64);
    if (n == 0)
        return;
    int takes = 0;
    for (int c = 0; c < 256; c++) {
        dsk_call_prefix u;
        dsk_call_prefix_copy(&u, s);
        takes += dsk_call_prefix_feed(&u, (unsigned char)c);
    }
    dsk_call_prefix u;
    dsk_call_prefix_copy(&u, s);
    if (takes != 1 || dsk_call_prefix_may_end(s))
        __builtin_trap();
    for (int k = 0; k < n; k++)
        if (!dsk_call_vocab_feed(vocab, &u, out[k]))
            __builtin_trap();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const unsigned char *nul = memchr(data, 0, size);
    if (!nul || (size_t)(nul - data) + 2 > size)
        return 0;
    char msg[256];
    struct json_object *doc = dsk_json_parse((const char *)data, (size_t)(nul - data), msg, sizeof msg);
    dsk_call_tools *tools = doc ? dsk_call_tools_new(doc, msg, sizeof msg) : NULL;
    if (!tools) {
        json_object_put(doc);
        return 0;
    }
    unsigned flags = nul[1];
    const char *text = (const char *)nul + 2;
    size_t len = size - (size_t)(nul + 2 - data);
    int mode = flags & 1 ? DSK_CALLS_REQUIRED : DSK_CALLS_AUTO, only = (flags >> 2 & 3) == 3 ? -1 : (int)(flags >> 2 & 3);
    if (only >= dsk_call_tools_count(tools))   /* no such tool: any, as init takes it */
        only = -1;
    if (!vocab)
        make_vocab();
    dsk_call_prefix s, copy;
    dsk_call_prefix_init(&s, tools, mode, only, flags & 2);
    check_forced(&s);
    size_t taken = 0, call_at = mode == DSK_CALLS_REQUIRED ? 0 : len;
    size_t args_at = 0;
    for (; taken < len; taken++) {
        if (taken == len / 2)
            dsk_call_prefix_copy(&copy, &s);
        int before = s.at;
        if (!dsk_call_prefix_feed(&s, (unsigned char)text[taken]))
            break;
        if (before == DSK_CALL_TEXT && s.at == DSK_CALL_OPEN && call_at == len)
            call_at = taken + 1 - (sizeof DSK_TOOL_CALL_OPEN - 1);
        if (before == DSK_CALL_ARGS_KEY && s.at == DSK_CALL_ARGS)
            args_at = taken + 1;
        if (before == DSK_CALL_ARGS && s.at == DSK_CALL_CLOSE) {   /* a call's arguments, whole */
            struct json_tokener *tok = json_tokener_new();
            struct json_object *args = json_tokener_parse_ex(tok, text + args_at, (int)(taken + 1 - args_at));
            if (!dsk_json_is(args, json_type_object) || json_tokener_get_parse_end(tok) != taken + 1 - args_at)
                __builtin_trap();
            json_object_put(args);
            json_tokener_free(tok);
            /* and dsk_json_parse, which refuses what json-c would change
             * (integers past 64 bits), reads it back: the server reads
             * the calls it made when a conversation sends them back */
            args = dsk_json_parse(text + args_at, taken + 1 - args_at, msg, sizeof msg);
            if (!args)
                __builtin_trap();
            json_object_put(args);
        }
    }
    if (s.at != DSK_CALL_FAILED)
        check_forced(&s);
    if (taken < len && (dsk_call_prefix_feed(&s, 'x') || dsk_call_prefix_feed(&s, '<') || dsk_call_prefix_may_end(&s)))
        __builtin_trap();
    if (len / 2 < len && len / 2 <= taken) {   /* the copy goes the same way */
        size_t k = len / 2;
        while (k < len && dsk_call_prefix_feed(&copy, (unsigned char)text[k]))
            k++;
        if (k != taken || copy.at != s.at || copy.calls != s.calls)
            __builtin_trap();
    }
    if (taken == len && dsk_call_prefix_may_end(&s) && s.calls > 0) {
        struct json_object *calls = dsk_tool_calls_parse(text + call_at, len - call_at, doc);
        if (!calls || json_object_array_length(calls) != s.calls)
            __builtin_trap();
        for (size_t k = 0; k < s.calls; k++) {
            struct json_object *name = dsk_json_get_string(json_object_array_get_idx(calls, k), "name");
            int i = name ? dsk_call_tools_find(tools, json_object_get_string(name)) : -1;
            if (i < 0 || (only >= 0 && i != only))
                __builtin_trap();
        }
        json_object_put(calls);
    }
    dsk_call_tools_free(tools);
    json_object_put(doc);
    return 0;
}
