/* dsk-serve's JSON mode: the vocabulary mask equals trying every token's
 * bytes on its own, in every state a JSON text passes through. */
#include <math.h>

#include "core/json.h"
#include "core/rng.h"
#include "serve/json_mode.h"
#include "byte_vocab.h"
#include "text/json_schema.h"
#include "test.h"

/* Two tools: get (a city, at most 6 characters, required) and get_time. */
static const char GET_TOOLS[] =
    "[{\"function\":{\"name\":\"get\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":"
    "{\"type\":\"string\",\"maxLength\":6}},\"required\":[\"city\"]}}},{\"function\":{\"name\":\"get_time\"}}]";

/* 256 byte tokens, then multi-byte tokens made of JSON's own characters
 * (so many share beginnings, and many are valid only in some states),
 * then a special token, and two ids the tokenizer lacks. */
static int make_tokenizer(dsk_tokenizer *tk, dsk_rng *r)
{
    dsk_tokenizer_init(tk);
    dsk_err err = {0};
    uint32_t id = 0;
    for (int b = 0; b < 256; b++, id++) {
        unsigned char c = (unsigned char)b;
        if (dsk_tokenizer_add(tk, id, &c, 1, &err))
            return -1;
    }
    static const char alphabet[] = "{}[]\":, \n0123456789-.eE+truefalsn\\uxé";
    for (int k = 0; k < 1500; k++) {
        char t[12];
        int n = 2 + (int)(dsk_rng_next(r) % 9);
        for (int i = 0; i < n; i++)
            t[i] = alphabet[dsk_rng_next(r) % (sizeof alphabet - 1)];
        if (dsk_tokenizer_lookup(tk, t, (size_t)n) != DSK_BPE_NO_TOKEN)
            continue;
        if (dsk_tokenizer_add(tk, id++, t, (size_t)n, &err))
            return -1;
    }
    if (dsk_tokenizer_add_special(tk, id++, "<|end|>", &err))
        return -1;
    return (int)id + 2;
}

static void random_json(dsk_rng *r, dsk_buf *b, int depth)
{
    static const char *const scalars[] = {"0", "-12", "3.5e-2", "true", "false", "null", "\"a\\u00e9b\"", "\"\xC3\xA9\""};
    int kind = (int)(dsk_rng_next(r) % (depth >= 4 ? 1 : 3));
    if (kind == 0) {
        dsk_buf_adds(b, scalars[dsk_rng_next(r) % 8]);
        return;
    }
    int object = kind == 1, n = (int)(dsk_rng_next(r) % 3);
    dsk_buf_adds(b, object ? "{" : "[ ");
    for (int i = 0; i < n; i++) {
        if (i)
            dsk_buf_adds(b, ", ");
        if (object)
            dsk_buf_adds(b, "\"k\":\n ");
        random_json(r, b, depth + 1);
    }
    dsk_buf_adds(b, object ? "}" : "]");
}

/* At every third cut of text (fed under schema, or as one object), the
 * mask equals feeding each token alone.  Adds to *states and *allowed. */
static int check_states(dsk_json_vocab *v, int n_vocab, const dsk_json_schema *schema, const char *text, size_t n,
                        float *logits, int *states, long *allowed)
{
    int wrong = 0;
    dsk_json_prefix s;
    if (schema)
        dsk_json_prefix_init_schema(&s, schema);
    else
        dsk_json_prefix_init(&s, 1);
    for (size_t cut = 0; cut <= n; cut++) {
        if (cut)
            CHECK(dsk_json_prefix_feed(&s, (unsigned char)text[cut - 1]));
        if (cut % 3 && cut != n)   /* a third of them keeps the test quick */
            continue;
        for (int id = 0; id < n_vocab; id++)
            logits[id] = (float)id;
        int got = dsk_json_vocab_mask(v, &s, logits), count = 0;
        for (int id = 0; id < n_vocab; id++) {
            dsk_json_prefix t;
            dsk_json_prefix_copy(&t, &s);
            int ok = dsk_json_vocab_feed(v, &t, id);
            count += ok;
            wrong += ok != (logits[id] == (float)id) || (!ok && !(isinf(logits[id]) && logits[id] < 0));
        }
        wrong += got != count;
        *allowed += got;
        (*states)++;
    }
    return wrong;
}

TEST(mask_equals_trying_every_token)
{
    dsk_rng r;
    dsk_rng_seed(&r, 11);
    dsk_tokenizer tk;
    int n_vocab = make_tokenizer(&tk, &r);
    CHECK(n_vocab > 1500);
    dsk_json_vocab *v = dsk_json_vocab_new(&tk, n_vocab);
    float *logits = dsk_xmalloc((size_t)n_vocab * sizeof *logits);
    int states = 0, wrong = 0;
    long allowed_sum = 0;
    for (int iter = 0; iter < 150; iter++) {
        dsk_buf text = {0};
        dsk_buf_adds(&text, "{\"x\": ");
        random_json(&r, &text, 0);
        dsk_buf_adds(&text, "}");
        wrong += check_states(v, n_vocab, NULL, text.data, text.len, logits, &states, &allowed_sum);
        dsk_buf_free(&text);
    }
    /* strings with a length limit: plain tokens pass only while they fit */
    dsk_json_schema *schema = schema_of("{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":5}}");
    static const char *const limited[] = {"[\"abcde\", \"\", \"a\\u00e9\\n\xC3\xA9x\"]", "[\"x\",\"yz\"]"};
    for (int i = 0; i < 2; i++) {
        /* every cut: the third-cut rule would skip the interesting ones */
        for (size_t n = 0; n <= strlen(limited[i]); n++)
            wrong += check_states(v, n_vocab, schema, limited[i], n, logits, &states, &allowed_sum);
    }
    dsk_json_schema_free(schema);
    printf("# %d states, %.1f tokens allowed on average of %d\n", states, (double)allowed_sum / states, n_vocab);
    CHECK(wrong == 0);
    CHECK(states > 1000 && allowed_sum > states);
    /* a closed object takes only whitespace; special and unknown ids never */
    dsk_json_prefix s;
    dsk_json_prefix_init(&s, 1);
    CHECK(dsk_json_prefix_feed_all(&s, "{}", 2));
    for (int id = 0; id < n_vocab; id++)
        logits[id] = 0;
    CHECK(dsk_json_vocab_mask(v, &s, logits) >= 4);   /* ' ', '\t', '\n', '\r' and tokens of them */
    CHECK(logits[' '] == 0 && isinf(logits['}']));
    dsk_json_prefix_init(&s, 1);
    CHECK(!dsk_json_vocab_feed(v, &s, n_vocab - 3));   /* <|end|> */
    dsk_json_prefix_init(&s, 1);
    CHECK(!dsk_json_vocab_feed(v, &s, n_vocab - 1));   /* no such token */
    CHECK(!dsk_json_vocab_feed(v, &s, '{'));           /* s failed: refuses all */
    free(logits);
    dsk_json_vocab_free(v);
    dsk_tokenizer_free(&tk);
}

/* Tool calls: the same, in every state an answer with text and calls
 * passes through, on a vocabulary of the calls' own pieces. */
TEST(call_mask_equals_trying_every_token)
{
    dsk_rng r;
    dsk_rng_seed(&r, 12);
    dsk_tokenizer tk;
    dsk_err err = {0};
    static const char *const pieces[] = {"<tool_call>", "</tool_call>", ">{\"", "{\"name\":\"", "\",\"arguments\":",
                                         "}}", "}}</", "\n<", " <", "<tool", "_call", "get", "get_", "time", "\"}"};
    uint32_t id = byte_vocab(&tk, pieces, sizeof pieces / sizeof *pieces, 0);
    static const char alphabet[] = "<>/_{}\":, \ntool_callnameargsgetimcity0123";
    for (int k = 0; k < 1500; k++) {
        char t[12];
        int n = 2 + (int)(dsk_rng_next(&r) % 9);
        for (int i = 0; i < n; i++)
            t[i] = alphabet[dsk_rng_next(&r) % (sizeof alphabet - 1)];
        if (dsk_tokenizer_lookup(&tk, t, (size_t)n) == DSK_BPE_NO_TOKEN)
            CHECK(dsk_tokenizer_add(&tk, id++, t, (size_t)n, &err) == 0);
    }
    CHECK(dsk_tokenizer_add_special(&tk, id++, "<|end|>", &err) == 0);
    int n_vocab = (int)id + 1;   /* and one id the tokenizer lacks */
    dsk_json_vocab *v = dsk_json_vocab_new(&tk, n_vocab);
    float *logits = dsk_xmalloc((size_t)n_vocab * sizeof *logits);
    dsk_call_tools *tools = tools_of(GET_TOOLS);
    static const char *const answers[] = {
        "Hi <to <tool_call>{\"name\":\"get\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>\n"
        "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>",
        "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>",
    };
    int states = 0, wrong = 0;
    long allowed_sum = 0;
    for (int a = 0; a < 2 && tools; a++) {
        dsk_call_prefix s;
        dsk_call_prefix_init(&s, tools, a ? DSK_CALLS_REQUIRED : DSK_CALLS_AUTO, -1, 1);
        for (size_t cut = 0; cut <= strlen(answers[a]); cut++) {
            if (cut)
                CHECK(dsk_call_prefix_feed(&s, (unsigned char)answers[a][cut - 1]));
            for (int t = 0; t < n_vocab; t++)
                logits[t] = (float)t;
            int got = dsk_call_vocab_mask(v, &s, logits), count = 0;
            for (int t = 0; t < n_vocab; t++) {
                dsk_call_prefix u;
                dsk_call_prefix_copy(&u, &s);
                int ok = dsk_call_vocab_feed(v, &u, t);
                count += ok;
                wrong += ok != (logits[t] == (float)t) || (!ok && !(isinf(logits[t]) && logits[t] < 0));
            }
            wrong += got != count;
            allowed_sum += got;
            states++;
        }
    }
    printf("# %d call states, %.1f tokens allowed on average of %d\n", states, (double)allowed_sum / states, n_vocab);
    CHECK(wrong == 0 && states > 100);
    dsk_call_tools_free(tools);
    free(logits);
    dsk_json_vocab_free(v);
    dsk_tokenizer_free(&tk);
}

/* Which bytes of 0..255 state s takes next (a call state, or JSON's when
 * json is set): the count, and the last one in *only. */
static int bytes_taken(const dsk_call_prefix *call, const dsk_json_prefix *json, int *only)
{
    int n = 0;
    for (int c = 0; c < 256; c++) {
        int ok;
        if (json) {
            dsk_json_prefix u;
            dsk_json_prefix_copy(&u, json);
            ok = dsk_json_prefix_feed(&u, (unsigned char)c);
        } else {
            dsk_call_prefix u;
            dsk_call_prefix_copy(&u, call);
            ok = dsk_call_prefix_feed(&u, (unsigned char)c);
        }
        if (ok)
            n++, *only = c;
    }
    return n;
}

/* Checks the forced tokens of one state against trying every byte: the
 * bytes F the state alone allows, one after another while it cannot
 * end, are forced, less their last pre-token unless the answer is over
 * after them, and the tokens are what the tokenizer makes of those
 * bytes.  Returns the mistakes; *bytes_sum counts the bytes forced. */
static int check_forced(const dsk_tokenizer *tk, const dsk_json_vocab *v, const dsk_call_prefix *call,
                        const dsk_json_prefix *json, long *bytes_sum)
{
    int32_t out[64];
    int n = json ? dsk_json_vocab_forced(v, json, out, 64) : dsk_call_vocab_forced(v, call, out, 64);
    dsk_buf b = {0}, f = {0};
    for (int k = 0; k < n; k++) {
        size_t len;
        const char *p = dsk_tokenizer_bytes(tk, (uint32_t)out[k], &len);
        dsk_buf_add(&b, p, len);
    }
    int only = -1;
    dsk_call_prefix c;
    dsk_json_prefix j;
    if (json)
        dsk_json_prefix_copy(&j, json);
    else
        dsk_call_prefix_copy(&c, call);
    while (!(json ? dsk_json_prefix_complete(&j) : dsk_call_prefix_may_end(&c)) &&
           bytes_taken(&c, json ? &j : NULL, &only) == 1) {
        char byte = (char)only;
        dsk_buf_add(&f, &byte, 1);
        if (json)
            dsk_json_prefix_feed(&j, (unsigned char)only);
        else
            dsk_call_prefix_feed(&c, (unsigned char)only);
    }
    dsk_bpe_encoder enc;
    dsk_bpe_encoder_init(&enc, tk);
    int over = json ? dsk_json_prefix_closed(&j) : dsk_call_prefix_done(&c);
    size_t want = over ? f.len : dsk_bpe_last_piece(tk, &enc, f.data ? f.data : "", f.len);
    int wrong = b.len != want || (want && memcmp(b.data, f.data, want) != 0);
    dsk_err err = {0};
    CHECK(dsk_bpe_encode(tk, &enc, b.data ? b.data : "", b.len, 0, &err) == 0);
    wrong += enc.n_ids != (size_t)n;
    for (int k = 0; k < n && (size_t)k < enc.n_ids; k++)
        wrong += enc.ids[k] != (uint32_t)out[k];
    dsk_bpe_encoder_free(&enc);
    *bytes_sum += (long)b.len;
    dsk_buf_free(&b);
    dsk_buf_free(&f);
    return wrong;
}

/* Jump-forward decoding: in every state of answers with calls and of a
 * JSON answer under a schema, the forced tokens are the bytes the state
 * alone allows, as the tokenizer encodes them; a tokenizer that cannot
 * encode every text forces nothing. */
TEST(forced_tokens_are_the_only_bytes)
{
    dsk_tokenizer tk;
    dsk_err err = {0};
    static const char *const pieces[] = {"<tool_call>", "</tool_call>", "{\"", "name", "\":\"", "\",\"", "arguments",
                                         "\":{", "}}", "get", "_time", "city", "\":", "color", "red", "green", "ee"};
    uint32_t id = byte_vocab(&tk, pieces, sizeof pieces / sizeof *pieces, 0);
    CHECK(dsk_tokenizer_add_special(&tk, id++, "<|end|>", &err) == 0);
    int n_vocab = (int)id;
    /* no pattern yet: nothing is forced */
    dsk_json_vocab *v = dsk_json_vocab_new(&tk, n_vocab);
    dsk_call_tools *tools = tools_of(GET_TOOLS);
    int32_t out[64];
    dsk_call_prefix s;
    dsk_call_prefix_init(&s, tools, DSK_CALLS_REQUIRED, -1, 1);
    CHECK(dsk_call_vocab_forced(v, &s, out, 64) == 0);
    dsk_json_vocab_free(v);
    CHECK(dsk_tokenizer_set_pattern(&tk, dsk_bpe_named_pattern("gpt2"), &err) == 0);
    v = dsk_json_vocab_new(&tk, n_vocab);
    /* the whole opening of a required call, in the tokenizer's tokens */
    int n = dsk_call_vocab_forced(v, &s, out, 64);
    dsk_buf b = {0};
    for (int k = 0; k < n; k++) {
        size_t len;
        const char *p = dsk_tokenizer_bytes(&tk, (uint32_t)out[k], &len);
        dsk_buf_add(&b, p, len);
    }
    /* "<tool_call>{\"name\":\"get" less its last piece, "get" */
    CHECK(b.len == strlen("<tool_call>{\"name\":\"") && memcmp(b.data, "<tool_call>{\"name\":\"", b.len) == 0);
    dsk_buf_free(&b);
    CHECK(n >= 1 && out[n - 1] == (int32_t)dsk_tokenizer_lookup(&tk, "\":\"", 3));
    CHECK(dsk_call_vocab_forced(v, &s, out, 2) == 2);   /* cap */
    static const char *const answers[] = {
        "Hi <to <tool_call>{\"name\":\"get\",\"arguments\":{\"city\":\"Oslo\"}}</tool_call>\n"
        "<tool_call>{\"name\":\"get_time\",\"arguments\":{}}</tool_call>",
        "<tool_call>{\"name\":\"get\",\"arguments\":{\"city\":\"\xC3\xA9\"}}</tool_call>",
    };
    int states = 0, wrong = 0;
    long bytes_sum = 0;
    for (int a = 0; a < 2 && tools; a++) {
        dsk_call_prefix_init(&s, tools, a ? DSK_CALLS_REQUIRED : DSK_CALLS_AUTO, -1, a == 0);
        for (size_t cut = 0; cut <= strlen(answers[a]); cut++) {
            if (cut)
                CHECK(dsk_call_prefix_feed(&s, (unsigned char)answers[a][cut - 1]));
            wrong += check_forced(&tk, v, &s, NULL, &bytes_sum);
            states++;
        }
    }
    /* JSON under a schema, compact: keys and enum values run on alone */
    dsk_json_schema *schema = schema_of(
        "{\"type\":\"object\",\"properties\":{\"color\":{\"enum\":[\"red\",\"green\",\"grey\"]},"
        "\"city\":{\"type\":\"string\"}},\"required\":[\"color\",\"city\"],\"additionalProperties\":false}");
    static const char json_answer[] = "{\"color\":\"green\",\"city\":\"Z\xC3\xBCrich\"}";
    for (int compact = 0; compact < 2 && schema; compact++) {
        dsk_json_prefix j;
        dsk_json_prefix_init_schema(&j, schema);
        if (compact)
            dsk_json_prefix_compact(&j);
        for (size_t cut = 0; cut <= strlen(json_answer); cut++) {
            if (cut)
                CHECK(dsk_json_prefix_feed(&j, (unsigned char)json_answer[cut - 1]));
            wrong += check_forced(&tk, v, NULL, &j, &bytes_sum);
            states++;
        }
    }
    dsk_json_schema_free(schema);
    printf("# %d states, %.1f bytes forced on average\n", states, (double)bytes_sum / states);
    CHECK(wrong == 0 && states > 200 && bytes_sum > states);
    dsk_call_tools_free(tools);
    dsk_json_vocab_free(v);
    dsk_tokenizer_free(&tk);
}

RUN_TESTS(T(mask_equals_trying_every_token), T(call_mask_equals_trying_every_token),
          T(forced_tokens_are_the_only_bytes))
