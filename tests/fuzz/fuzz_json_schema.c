/* libFuzzer target: JSON schemas and the automaton under them.  The input
 * is a schema, a NUL byte, then a text: the schema is compiled (a refusal
 * is fine), the text fed byte by byte, with and without the schema (and
 * with it, keys in order).
 * Traps: a copied state that goes on differently from its original, a
 * byte taken after a refusal, or a text taken whole that json-c will not
 * parse (past dsk_json_parse's own limits); forced tokens (jump-forward
 * decoding, serve/json_mode.h) where the text stops that the state does
 * not take, or whose first byte is not the only one it takes. */
#include <stdlib.h>
#include <string.h>

#include "../unit/byte_vocab.h"
#include "core/json.h"
#include "serve/json_mode.h"
#include "text/json_prefix.h"
#include "text/json_schema.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A byte-level vocabulary with a few pieces of JSON, made once. */
static dsk_tokenizer tk;
static dsk_json_vocab *vocab;

static void make_vocab(void)
{
    static const char *const pieces[] = {"\":\"", "\",\"", "\":{", "}}", "{\"", "\":[", "true", "null", "\\u00"};
    uint32_t id = byte_vocab(&tk, pieces, sizeof pieces / sizeof *pieces, 1);
    vocab = dsk_json_vocab_new(&tk, (int)id);
}

/* The forced tokens of s feed it, and the first byte was its only one. */
static void check_forced(const dsk_json_prefix *s)
{
    int32_t out[64];
    int n = dsk_json_vocab_forced(vocab, s, out, 64);
    if (n == 0)
        return;
    int takes = 0;
    for (int c = 0; c < 256; c++) {
        dsk_json_prefix u;
        dsk_json_prefix_copy(&u, s);
        takes += dsk_json_prefix_feed(&u, (unsigned char)c);
    }
    if (takes != 1 || dsk_json_prefix_complete(s))
        __builtin_trap();
    dsk_json_prefix u;
    dsk_json_prefix_copy(&u, s);
    for (int k = 0; k < n; k++)
        if (!dsk_json_vocab_feed(vocab, &u, out[k]))
            __builtin_trap();
}

static void walk(const dsk_json_schema *schema, const unsigned char *text, size_t n)
{
    dsk_json_prefix s, half;
    if (schema)
        dsk_json_prefix_init_schema(&s, schema);
    else
        dsk_json_prefix_init(&s, text[0] & 1);
    size_t i = 0, mid = n / 2;
    int ok = 1;
    for (; i < n && ok; i++) {
        if (i == mid)
            dsk_json_prefix_copy(&half, &s);
        ok = dsk_json_prefix_feed(&s, text[i]);
    }
    if (!ok && i < n && dsk_json_prefix_feed(&s, text[i]))
        __builtin_trap();   /* a failed state takes nothing */
    if (i > mid) {
        /* the copy (made before byte mid), fed the same rest, ends the same way */
        int ok2 = 1;
        for (size_t j = mid; j < i && ok2; j++)
            ok2 = dsk_json_prefix_feed(&half, text[j]);
        if (ok2 != ok || (ok && dsk_json_prefix_complete(&half) != dsk_json_prefix_complete(&s)))
            __builtin_trap();
    }
    if (ok)
        check_forced(&s);
    if (ok && i == n && dsk_json_prefix_complete(&s)) {
        char msg[128] = "";
        json_object_put(dsk_json_parse((const char *)text, n, msg, sizeof msg));
        /* dsk_json_parse also refuses a top-level null, which is JSON; the
         * automaton writes no integer past 64 bits, which it refuses too */
        if (msg[0] && strncmp(msg, "null,", 5) != 0)
            __builtin_trap();   /* the automaton took what JSON does not */
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const unsigned char *nul = memchr(data, 0, size);
    if (!nul || nul + 1 == data + size)
        return 0;
    size_t schema_len = (size_t)(nul - data), text_len = size - schema_len - 1;
    const unsigned char *text = nul + 1;
    char msg[256];
    if (!vocab)
        make_vocab();
    struct json_object *doc = dsk_json_parse((const char *)data, schema_len, msg, sizeof msg);
    dsk_json_schema *schema = doc ? dsk_json_schema_compile(doc, msg, sizeof msg) : NULL;
    json_object_put(doc);
    walk(NULL, text, text_len);
    if (schema)
        walk(schema, text, text_len);
    if (schema) {   /* and with keys in the order of the properties */
        dsk_json_schema_order_keys(schema);
        walk(schema, text, text_len);
    }
    dsk_json_schema_free(schema);
    return 0;
}
