#include "core/buf.h"
#include "core/json.h"
#include "core/rng.h"
#include "test.h"
#include "text/json_prefix.h"
#include "text/utf8.h"

/* Bytes of s the automaton takes before failing (strlen(s) when all). */
static size_t taken(const char *s, int top_object, int *complete)
{
    dsk_json_prefix p;
    dsk_json_prefix_init(&p, top_object);
    size_t n = strlen(s), i = 0;
    while (i < n && dsk_json_prefix_feed(&p, (unsigned char)s[i]))
        i++;
    *complete = i == n && dsk_json_prefix_complete(&p);
    return i;
}

static int whole(const char *s, int top_object)
{
    int complete;
    return taken(s, top_object, &complete) == strlen(s) && complete;
}

TEST(valid_texts_are_taken_whole)
{
    static const char *const ok[] = {
        "{}", " { } ", "[]", "[[],{}]", "0", "-0", "12", "-1.5e+3", "0.25E-2", "1e9", "true", "false", "null",
        "\"\"", "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\uD83D\\ude00\"", "\"caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80\"",
        "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}", "{ \"k\" : [ 1 , 2 ] }\n",
        "[1,-2,3.5,\"x\",{\"y\":[]}]",
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        if (!whole(ok[i], 0))
            printf("#   refused: %s\n", ok[i]);
        CHECK(whole(ok[i], 0));
    }
}

TEST(invalid_texts_fail_at_the_first_wrong_byte)
{
    static const struct { const char *s; size_t at; } bad[] = {
        {"{,}", 1},          {"[1,]", 3},          {"{\"a\"}", 4},      {"{\"a\":}", 5},   {"{\"a\" 1}", 5},
        {"01", 1},           {"-", 1},             {"-a", 1},           {"1.", 2},         {"1.e3", 2},
        {"1e", 2},           {"1e+", 3},           {".5", 0},           {"+1", 0},         {"tru", 3},
        {"trUe", 2},         {"nul1", 3},          {"[1}", 2},          {"{\"a\":1]", 6},  {"}", 0},
        {"\"\\x\"", 2},      {"\"\\u12g4\"", 5},   {"\"a\tb\"", 2},     {"\"\x01\"", 1},   {"\"\xC0\xAF\"", 1},
        {"\"\xE0\x80\x80\"", 2}, {"\"\xED\xA0\x80\"", 2}, {"\"\xF4\x90\x80\x80\"", 2}, {"\"\xF5\"", 1},
        {"\"\x80\"", 1},     {"\"\xC3\"x", 2},     {"{} {}", 3},        {"[] x", 3},       {"12 3", 3},
        {"{\"a\":1,}", 7},   {"[,1]", 1},          {"{1:2}", 1},        {"'a'", 0},        {"[1 2]", 3},
        {"NaN", 0},          {"Infinity", 0},      {"\"\\", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int complete;
        size_t got = taken(bad[i].s, 0, &complete);
        size_t n = strlen(bad[i].s);
        /* a text cut short is no failure, but it is not complete either */
        size_t want = bad[i].at;
        if (got != want || complete)
            printf("#   \"%s\": took %zu bytes (want %zu), complete %d\n", bad[i].s, got, want, complete);
        CHECK(got == want && !complete);
        (void)n;
    }
}

TEST(top_object_takes_only_an_object)
{
    CHECK(whole("{\"a\":[1]}", 1));
    CHECK(whole("  {}  ", 1));
    int complete;
    CHECK(taken("[1]", 1, &complete) == 0);
    CHECK(taken("\"x\"", 1, &complete) == 0);
    CHECK(taken(" 1", 1, &complete) == 1);
    CHECK(taken("{\"a\":1", 1, &complete) == 6 && !complete);
    CHECK(taken("{} {", 1, &complete) == 3);
}

TEST(nesting_and_whitespace_are_bounded)
{
    char deep[2 * DSK_JSON_MAX_DEPTH + 4];
    memset(deep, '[', DSK_JSON_MAX_DEPTH);
    memset(deep + DSK_JSON_MAX_DEPTH, ']', DSK_JSON_MAX_DEPTH);
    deep[2 * DSK_JSON_MAX_DEPTH] = 0;
    CHECK(whole(deep, 0));
    memmove(deep + 1, deep, 2 * DSK_JSON_MAX_DEPTH + 1);   /* one more [ ... ] */
    deep[0] = '[';
    strcat(deep, "]");
    int complete;
    CHECK(taken(deep, 0, &complete) == DSK_JSON_MAX_DEPTH);

    char spaced[DSK_JSON_MAX_SPACE + 8];
    spaced[0] = '[';
    memset(spaced + 1, '\n', DSK_JSON_MAX_SPACE);
    strcpy(spaced + 1 + DSK_JSON_MAX_SPACE, "1]");
    CHECK(whole(spaced, 0));
    memmove(spaced + 2, spaced + 1, DSK_JSON_MAX_SPACE + 3);
    CHECK(taken(spaced, 0, &complete) == 1 + DSK_JSON_MAX_SPACE);
    /* whitespace inside strings is text, not counted */
    char str[64] = "[\"";
    memset(str + 2, ' ', 40);
    strcpy(str + 42, "\"]");
    CHECK(whole(str, 0));
}

/* Numbers read back as parsers hold them: an integer part of at most 18
 * digits (within 64 bits), an exponent of at most 2 (a finite double). */
TEST(numbers_stay_within_what_parsers_hold)
{
    int complete;
    CHECK(whole("123456789012345678", 0));
    CHECK(whole("[-123456789012345678,0.12345678901234567890123]", 0));
    CHECK(whole("{\"a\":-1.5e-99,\"b\":7E+12,\"c\":123456789012345678.25e99}", 1));
    CHECK(taken("1234567890123456789", 0, &complete) == 18);
    CHECK(taken("[-1234567890123456789]", 0, &complete) == 20);
    CHECK(taken("[1e123]", 0, &complete) == 5);
    CHECK(taken("[0.5E-100]", 0, &complete) == 8);
    /* each number counts its own digits */
    CHECK(whole("[123456789012345678,123456789012345678,1e99,2e99]", 0));
    /* a text written elsewhere may be checked without the bound */
    dsk_json_prefix p;
    dsk_json_prefix_init(&p, 0);
    dsk_json_prefix_any_digits(&p);
    CHECK(dsk_json_prefix_feed_all(&p, "[-123456789012345678901234567890,1e300]", 39) && dsk_json_prefix_complete(&p));
}

TEST(compact_takes_no_whitespace_outside_strings)
{
    dsk_json_prefix p;
    dsk_json_prefix_init(&p, 1);
    dsk_json_prefix_compact(&p);
    const char *text = "{\"a b\":[1,\" \\n \"]}";
    CHECK(dsk_json_prefix_feed_all(&p, text, strlen(text)) && dsk_json_prefix_complete(&p));
    static const char *const spaced[] = {" {}", "{ }", "{\"a\" :1}", "{\"a\":1 }", "[1, 2]", "{}\n"};
    for (int i = 0; i < 6; i++) {
        dsk_json_prefix_init(&p, 0);
        dsk_json_prefix_compact(&p);
        CHECK(!dsk_json_prefix_feed_all(&p, spaced[i], strlen(spaced[i])));
    }
}

TEST(a_failed_state_refuses_everything)
{
    dsk_json_prefix p;
    dsk_json_prefix_init(&p, 0);
    CHECK(!dsk_json_prefix_feed(&p, '}'));
    CHECK(!dsk_json_prefix_feed(&p, '{'));
    CHECK(!dsk_json_prefix_feed(&p, ' '));
    CHECK(!dsk_json_prefix_complete(&p));
    CHECK(!dsk_json_prefix_feed_all(&p, "1", 1));
}

/* ---- against json-c on random texts -------------------------------------------------- */

static void random_value(dsk_rng *r, dsk_buf *b, int depth);

static void random_space(dsk_rng *r, dsk_buf *b)
{
    static const char ws[] = " \n\t\r";
    int n = (int)(dsk_rng_next(r) % 4);
    for (int i = 0; i < n; i++)
        dsk_buf_addc(b, ws[dsk_rng_next(r) % 4]);
}

static void random_string(dsk_rng *r, dsk_buf *b)
{
    static const char *const pieces[] = {"a", "Z", " ", "\\n", "\\\"", "\\\\", "\\u00e9", "\\uD83D\\uDE00",
                                         "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "{", "]", ":", ","};
    dsk_buf_addc(b, '"');
    int n = (int)(dsk_rng_next(r) % 6);
    for (int i = 0; i < n; i++)
        dsk_buf_adds(b, pieces[dsk_rng_next(r) % (sizeof pieces / sizeof *pieces)]);
    dsk_buf_addc(b, '"');
}

static void random_value(dsk_rng *r, dsk_buf *b, int depth)
{
    static const char *const scalars[] = {"0", "-1", "12.5", "3e7", "-0.0E-2", "true", "false", "null"};
    int kind = (int)(dsk_rng_next(r) % (depth >= 5 ? 2 : 4));
    if (kind == 0) {
        dsk_buf_adds(b, scalars[dsk_rng_next(r) % 8]);
    } else if (kind == 1) {
        random_string(r, b);
    } else {
        int object = kind == 2, n = (int)(dsk_rng_next(r) % 4);
        dsk_buf_addc(b, object ? '{' : '[');
        for (int i = 0; i < n; i++) {
            if (i)
                dsk_buf_addc(b, ',');
            random_space(r, b);
            if (object) {
                random_string(r, b);
                random_space(r, b);
                dsk_buf_addc(b, ':');
                random_space(r, b);
            }
            random_value(r, b, depth + 1);
            random_space(r, b);
        }
        dsk_buf_addc(b, object ? '}' : ']');
    }
}

static int json_c_takes(const char *s, size_t n)
{
    char msg[128] = "";
    json_object_put(dsk_json_parse(s, n, msg, sizeof msg));
    return !msg[0] || strncmp(msg, "null,", 5) == 0;   /* dsk_json_parse refuses a top-level null by name */
}

TEST(agrees_with_json_c_on_random_and_mutated_texts)
{
    dsk_rng r;
    dsk_rng_seed(&r, 7);
    static const char mutations[] = "{}[],:\"\\ 0123456789-+.eEtrufalsn";
    int disagreements = 0, mutated_ok = 0, mutated_bad = 0;
    for (int iter = 0; iter < 4000; iter++) {
        dsk_buf b = {0};
        random_space(&r, &b);
        random_value(&r, &b, 0);
        random_space(&r, &b);
        dsk_buf_addc(&b, 0);
        b.len--;
        if (!whole(b.data, 0) || !json_c_takes(b.data, b.len)) {
            printf("#   generated text refused: %s\n", b.data);
            disagreements++;
        }
        /* one byte changed, inserted or removed */
        size_t at = dsk_rng_next(&r) % (b.len + 1);
        int op = (int)(dsk_rng_next(&r) % 3);
        char c = mutations[dsk_rng_next(&r) % (sizeof mutations - 1)];
        dsk_buf m = {0};
        dsk_buf_add(&m, b.data, at);
        if (op != 2 || at == b.len)
            dsk_buf_addc(&m, c);
        if (at < b.len)
            dsk_buf_add(&m, b.data + at + (op == 0), b.len - at - (op == 0));
        dsk_buf_addc(&m, 0);
        m.len--;
        /* json-c takes broken UTF-8 in strings, which the automaton refuses by design */
        if (dsk_utf8_find_invalid(m.data, m.len) != m.len) {
            CHECK(!whole(m.data, 0));
            dsk_buf_free(&m);
            dsk_buf_free(&b);
            continue;
        }
        int ours = whole(m.data, 0), theirs = m.len && json_c_takes(m.data, m.len);
        if (ours != theirs) {
            printf("#   mutated text: ours %d, json-c %d: %s\n", ours, theirs, m.data);
            disagreements++;
        }
        ours ? mutated_ok++ : mutated_bad++;
        dsk_buf_free(&m);
        dsk_buf_free(&b);
    }
    CHECK(disagreements == 0);
    CHECK(mutated_ok > 100 && mutated_bad > 1000);   /* both sides were exercised */
}

/* Every prefix of a valid text is taken, and the failure point of an
 * invalid one is where its longest valid beginning ends. */
TEST(prefixes_of_valid_texts_are_taken)
{
    const char *s = "{\"key\": [1, -2.5e3, \"v\\u00e9\", {\"x\": null}], \"t\": true}";
    for (size_t n = 0; n <= strlen(s); n++) {
        dsk_json_prefix p;
        dsk_json_prefix_init(&p, 1);
        CHECK(dsk_json_prefix_feed_all(&p, s, n));
        CHECK(dsk_json_prefix_complete(&p) == (n == strlen(s)));
    }
}

RUN_TESTS(T(valid_texts_are_taken_whole), T(invalid_texts_fail_at_the_first_wrong_byte),
          T(top_object_takes_only_an_object), T(nesting_and_whitespace_are_bounded), T(numbers_stay_within_what_parsers_hold),
          T(compact_takes_no_whitespace_outside_strings), T(a_failed_state_refuses_everything), T(agrees_with_json_c_on_random_and_mutated_texts),
          T(prefixes_of_valid_texts_are_taken))
