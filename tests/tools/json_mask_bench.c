/* json_mask_bench TOKENIZER.json: the cost of dsk-serve's JSON-mode mask
 * (lib/serve/json_mode.h) on a real vocabulary, in states a JSON answer
 * passes through, with and without a schema, against feeding every token's
 * bytes to the automaton alone (what a plain loop over the vocabulary
 * costs); then the tool-call mask (a call's constraint), in free text and
 * in a call's parts, and a call forced at once.  Prints one line per
 * state: tokens allowed, microseconds, and the tokens jump-forward
 * decoding would take undrawn there, with the time finding them took. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe/formats.h"
#include "core/json.h"
#include "core/progress.h"
#include "serve/json_mode.h"
#include "text/json_schema.h"

/* A state of JSON mode (call 0) or of tool calls (call 1). */
typedef struct state {
    int call;
    dsk_json_prefix json;
    dsk_call_prefix calls;
} state;

static int mask(const dsk_json_vocab *v, const state *s, float *logits)
{
    return s->call ? dsk_call_vocab_mask(v, &s->calls, logits) : dsk_json_vocab_mask(v, &s->json, logits);
}

/* Whether token id alone goes on from s. */
static int takes(const dsk_json_vocab *v, const state *s, int32_t id)
{
    if (s->call) {
        dsk_call_prefix c;
        dsk_call_prefix_copy(&c, &s->calls);
        return dsk_call_vocab_feed(v, &c, id);
    }
    dsk_json_prefix c;
    dsk_json_prefix_copy(&c, &s->json);
    return dsk_json_vocab_feed(v, &c, id);
}

/* Jump-forward decoding's forced tokens from s. */
static int forced(const dsk_json_vocab *v, const state *s, int32_t *out)
{
    return s->call ? dsk_call_vocab_forced(v, &s->calls, out, 64) : dsk_json_vocab_forced(v, &s->json, out, 64);
}

/* Times the mask in s against trying every token alone, and the search
 * for forced tokens; prints a line, or returns EX_SOFTWARE where the mask
 * and the tokens alone disagree. */
static int measure(const dsk_json_vocab *v, int V, const state *s, const char *kind, const char *before,
                   float *logits)
{
    int allowed = 0, reps = 50;
    double t0 = dsk_now();
    for (int r = 0; r < reps; r++)
        allowed = mask(v, s, logits);
    double mask_us = (dsk_now() - t0) / reps * 1e6;
    int alone = 0;
    t0 = dsk_now();
    for (int r = 0; r < 5; r++) {
        alone = 0;
        for (int id = 0; id < V; id++)
            alone += takes(v, s, id);
    }
    double alone_us = (dsk_now() - t0) / 5 * 1e6;
    if (alone != allowed)
        return EX_SOFTWARE;   /* the mask and the plain loop must agree */
    int32_t out[64];
    int n_forced = 0;
    t0 = dsk_now();
    for (int r = 0; r < reps; r++)
        n_forced = forced(v, s, out);
    double forced_us = (dsk_now() - t0) / reps * 1e6;
    /* the last 22 bytes of what came before, on one line */
    char shown[128];
    snprintf(shown, sizeof shown, "%s", before[0] ? before : "(nothing)");
    size_t len = strlen(shown);
    for (size_t i = 0; i < len; i++)
        shown[i] = shown[i] == '\n' ? ' ' : shown[i];
    printf("%-7s after %s%-22.22s %6d allowed  mask %8.1f us  each token alone %8.1f us  forced %2d tokens %6.1f us\n",
           kind, len > 22 ? "..." : "", len > 22 ? shown + len - 22 : shown, allowed, mask_us, alone_us, n_forced,
           forced_us);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: json_mask_bench TOKENIZER.json\n");
        return EX_USAGE;
    }
    dsk_tokenizer tk;
    dsk_tokenizer_init(&tk);
    dsk_err err = {0};
    if (dsk_bpe_load_json(&tk, argv[1], &err))
        dsk_die_err(&err);
    int V = (int)tk.n_vocab;
    double t0 = dsk_now();
    dsk_json_vocab *v = dsk_json_vocab_new(&tk, V);
    printf("vocabulary %d tokens, prepared in %.1f ms\n", V, (dsk_now() - t0) * 1e3);
    const char *schema_text = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":"
                              "\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"x\",\"y\"]}}},"
                              "\"required\":[\"name\"]}";
    char msg[256];
    struct json_object *doc = dsk_json_parse(schema_text, strlen(schema_text), msg, sizeof msg);
    dsk_json_schema *schema = dsk_json_schema_compile(doc, msg, sizeof msg);
    json_object_put(doc);
    if (!schema) {
        fprintf(stderr, "json_mask_bench: %s\n", msg);
        return EX_SOFTWARE;
    }
    static const char *const before[] = {"", "{", "{\"name\": \"Jo", "{\"age\": 12", "{\"tags\": [\"x\", "};
    float *logits = dsk_xmalloc((size_t)V * sizeof *logits);
    for (int with_schema = 0; with_schema < 2; with_schema++)
        for (int k = 0; k < 5; k++) {
            state s = {0};
            if (with_schema)
                dsk_json_prefix_init_schema(&s.json, schema);
            else
                dsk_json_prefix_init(&s.json, 1);
            if (!dsk_json_prefix_feed_all(&s.json, before[k], strlen(before[k])))
                return EX_SOFTWARE;
            if (measure(v, V, &s, with_schema ? "schema" : "object", before[k], logits))
                return EX_SOFTWARE;
        }
    /* tool calls (dsk_call_vocab_mask): free text, then a call's parts */
    const char *tools_text = "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
                             "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":"
                             "\"integer\"}},\"required\":[\"city\"]}}},{\"type\":\"function\",\"function\":{\"name\":"
                             "\"get_time\"}}]";
    doc = dsk_json_parse(tools_text, strlen(tools_text), msg, sizeof msg);
    dsk_call_tools *tools = dsk_call_tools_new(doc, msg, sizeof msg);
    json_object_put(doc);
    if (!tools) {
        fprintf(stderr, "json_mask_bench: %s\n", msg);
        return EX_SOFTWARE;
    }
    static const char *const call_before[] = {
        "", "Let me look <tool", "<tool_call>{\"name\":\"get", "<tool_call>{\"name\":\"get_weather\",\"arguments\":{",
        "<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Os",
        "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>\n", ""};
    for (int k = 0; k < 7; k++) {   /* the last: a call forced at once, to get_weather */
        state s = {.call = 1};
        dsk_call_prefix_init(&s.calls, tools, k < 6 ? DSK_CALLS_AUTO : DSK_CALLS_REQUIRED, k < 6 ? -1 : 0, 1);
        if (!dsk_call_prefix_feed_all(&s.calls, call_before[k], strlen(call_before[k])) ||
            measure(v, V, &s, "calls", call_before[k], logits))
            return EX_SOFTWARE;
    }
    dsk_call_tools_free(tools);
    free(logits);
    dsk_json_schema_free(schema);
    dsk_json_vocab_free(v);
    dsk_tokenizer_free(&tk);
    return 0;
}
