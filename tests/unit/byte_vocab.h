/* Test vocabularies, tools and schemas for the JSON-mode and tool-call
 * tests (unit tests and fuzz targets): a byte-level tokenizer, the 256
 * bytes as ids 0..255 then the given pieces; a tools array compiled; a
 * JSON schema compiled.  A failure says why and aborts: these are fixed
 * inputs. */
#ifndef DSK_TESTS_BYTE_VOCAB_H
#define DSK_TESTS_BYTE_VOCAB_H

#include <stdlib.h>
#include <string.h>

#include "bpe/tokenizer.h"
#include <stdio.h>

#include "core/json.h"
#include "text/call_prefix.h"
#include "text/json_schema.h"

/* Fills tk (initialised here) and returns the next free id.  With
 * pattern, GPT-2's pre-tokenizer too: then it encodes any text, as
 * jump-forward decoding needs. */
static inline uint32_t byte_vocab(dsk_tokenizer *tk, const char *const *pieces, size_t n_pieces, int pattern)
{
    dsk_err err = {0};
    dsk_tokenizer_init(tk);
    uint32_t id = 0;
    for (int b = 0; b < 256; b++, id++) {
        unsigned char c = (unsigned char)b;
        if (dsk_tokenizer_add(tk, id, &c, 1, &err))
            abort();
    }
    for (size_t k = 0; k < n_pieces; k++, id++)
        if (dsk_tokenizer_add(tk, id, pieces[k], strlen(pieces[k]), &err))
            abort();
    if (pattern && dsk_tokenizer_set_pattern(tk, dsk_bpe_named_pattern("gpt2"), &err))
        abort();
    return id;
}

/* The tools of an OpenAI "tools" array in JSON text. */
static inline dsk_call_tools *tools_of(const char *text)
{
    char msg[256];
    struct json_object *doc = dsk_json_parse(text, strlen(text), msg, sizeof msg);
    dsk_call_tools *tools = doc ? dsk_call_tools_new(doc, msg, sizeof msg) : NULL;
    json_object_put(doc);
    if (!tools) {
        fprintf(stderr, "tools_of: %s\n", msg);
        abort();
    }
    return tools;
}

/* A JSON schema in JSON text, compiled. */
static inline dsk_json_schema *schema_of(const char *text)
{
    char msg[256];
    struct json_object *doc = dsk_json_parse(text, strlen(text), msg, sizeof msg);
    dsk_json_schema *schema = doc ? dsk_json_schema_compile(doc, msg, sizeof msg) : NULL;
    json_object_put(doc);
    if (!schema) {
        fprintf(stderr, "schema_of: %s\n", msg);
        abort();
    }
    return schema;
}

#endif
