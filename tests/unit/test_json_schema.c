/* JSON schemas for the automaton: what compiles, what is refused (and
 * why), and texts taken or refused under a schema.  That every accepted
 * text validates is tests/cli/test_json_schema.sh's work (against the
 * Python jsonschema package). */
#include "core/buf.h"
#include "core/json.h"
#include "test.h"
#include "text/json_prefix.h"
#include "text/json_schema.h"

static dsk_json_schema *compile(const char *text, char *msg, size_t msg_len)
{
    struct json_object *doc = dsk_json_parse(text, strlen(text), msg, msg_len);
    if (!doc && strcmp(text, "null") != 0) {
        printf("#   bad test schema: %s\n", msg);
        return NULL;
    }
    msg[0] = 0;
    dsk_json_schema *s = dsk_json_schema_compile(doc, msg, msg_len);
    json_object_put(doc);
    return s;
}

/* 1 if text is taken whole and complete under schema (ordered: with its
 * objects' keys in the order of their properties). */
static int takes_keys(const char *schema, const char *text, int ordered)
{
    char msg[256];
    dsk_json_schema *s = compile(schema, msg, sizeof msg);
    if (!s) {
        printf("#   schema refused: %s\n", msg);
        return -1;
    }
    if (ordered)
        dsk_json_schema_order_keys(s);
    dsk_json_prefix p;
    dsk_json_prefix_init_schema(&p, s);
    int ok = dsk_json_prefix_feed_all(&p, text, strlen(text)) && dsk_json_prefix_complete(&p);
    dsk_json_schema_free(s);
    return ok;
}

static int takes(const char *schema, const char *text) { return takes_keys(schema, text, 0); }

TEST(refused_schemas_say_why)
{
    static const struct { const char *schema, *says; } bad[] = {
        {"{\"type\":\"string\",\"pattern\":\"^a\"}", "'pattern' is not supported"},
        {"{\"properties\":{\"n\":{\"type\":\"number\",\"minimum\":0}}}", "at /properties/n: 'minimum'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required property 'b'"},
        {"{\"type\":\"object\",\"required\":[\"b\"]}", "required property 'b'"},
        {"{\"anyOf\":[{\"type\":\"object\"},{\"properties\":{\"x\":{}}}]}", "begin with '{'"},
        {"{\"type\":[\"integer\",\"string\",\"number\"],\"maxLength\":3}", NULL},   /* number takes integer */
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", NULL},   /* pydantic's int | float */
        {"{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "may both begin with '-'"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minimum above the maximum"},
        {"{\"type\":\"string\",\"maxLength\":-1}", "'maxLength' must be a non-negative integer"},
        {"false", "no value is valid"},
        {"3", "must be an object or a boolean"},
        {"{\"$ref\":\"http://x/y\"}", "'$ref' must be"},
        {"{\"$ref\":\"#/$defs/none\",\"$defs\":{}}", "'$ref' must be"},
        {"{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"$ref\":\"#/$defs/a\"}}}", "loops"},
        {"{\"$ref\":\"#\",\"type\":\"string\"}", "'type' beside '$ref'"},
        {"{\"enum\":[]}", "non-empty array"},
        {"{\"type\":\"string\",\"enum\":[1,2]}", "no enum value is of the schema's type"},
        {"{\"type\":\"strin\"}", "'type' must name JSON types"},
        {"{\"allOf\":[{}]}", "'allOf' is not supported"},
        {"{\"anyOf\":[{}],\"type\":\"object\"}", "'type' beside 'anyOf'"},
        /* found in review: keywords an enum or an untyped schema would have ignored */
        {"{\"enum\":[\"abc\"],\"maxLength\":2}", "'maxLength' beside 'enum'"},
        {"{\"const\":1,\"enum\":[2]}", "'enum' beside 'const'"},
        {"{\"oneOf\":[{\"type\":\"number\"},{\"properties\":{\"a\":{}}}]}", "may both begin with '-'"},
        {"{\"enum\":[NaN]}", "is not JSON"},
        {"{\"const\":-Infinity}", "is not JSON"},
        {"{\"anyOf\":[{\"$ref\":\"#\"}]}", "no value is valid"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"}},\"required\":[\"a\"]}", "no value is valid"},
        {"{\"properties\":{\"p\":{\"$id\":\"http://e.x/s\",\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}}}",
         "'$id' is supported only at the top"},
        {"{\"type\":[]}", "empty list"},
        {"{\"minItems\":-1}", "'minItems' must be a non-negative integer"},
        /* found in the second review */
        {"{\"oneOf\":[{\"const\":0},{\"const\":-0.0}]}", "oneOf: both take numbers"},
        {"{\"$defs\":{\"a%20b\":{}},\"$ref\":\"#/$defs/a%20b\"}", "'$ref' must be"},
        {"{\"type\":[\"null\",\"null\",\"null\",\"null\",\"null\",\"null\",\"null\",\"null\",\"bogus\"]}",
         "'type' must name JSON types"},
        {"{\"type\":\"integer\",\"enum\":[1e300]}", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char msg[256];
        dsk_json_schema *s = compile(bad[i].schema, msg, sizeof msg);
        if (!bad[i].says) {
            CHECK(s != NULL);
        } else if (s || !strstr(msg, bad[i].says)) {
            printf("#   %s: %s (want \"%s\")\n", bad[i].schema, s ? "compiled" : msg, bad[i].says);
            CHECK(0);
        }
        dsk_json_schema_free(s);
    }
    /* a chain of 70 $defs, each an object whose property refers to the next, is no loop */
    dsk_buf chain = {0};
    dsk_buf_adds(&chain, "{\"$defs\":{");
    for (int i = 0; i < 70; i++)
        dsk_buf_printf(&chain, "%s\"d%d\":{\"type\":\"object\",\"properties\":{\"x\":{\"$ref\":\"#/$defs/d%d\"}}}",
                       i ? "," : "", i, (i + 1) % 70);
    dsk_buf_adds(&chain, "},\"$ref\":\"#/$defs/d0\"}");
    dsk_buf_addc(&chain, 0);
    char cmsg[256];
    dsk_json_schema *cs = compile(chain.data, cmsg, sizeof cmsg);
    if (!cs)
        printf("#   %s\n", cmsg);
    CHECK(cs != NULL);
    dsk_json_schema_free(cs);
    dsk_buf_free(&chain);
    /* a recursive schema through $ref compiles */
    char msg[256];
    dsk_json_schema *s = compile("{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}", msg, sizeof msg);
    CHECK(s != NULL);
    dsk_json_schema_free(s);
}

TEST(objects_keys_required_and_order)
{
    const char *schema = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"ab\":{\"type\":\"string\"},"
                         "\"q\\\"\":{\"type\":\"null\"}},\"required\":[\"a\"]}";
    CHECK(takes(schema, "{\"a\":1}") == 1);
    CHECK(takes(schema, "{ \"ab\" : \"x\" , \"a\" : -0 }") == 1);            /* any order */
    CHECK(takes(schema, "{\"a\":1,\"ab\":\"\",\"q\\\"\":null}") == 1);      /* a key with a quote */
    CHECK(takes(schema, "{\"ab\":\"x\"}") == 0);                           /* a missing */
    CHECK(takes(schema, "{}") == 0);
    CHECK(takes(schema, "{\"a\":1,\"a\":2}") == 0);                         /* twice */
    CHECK(takes(schema, "{\"b\":1}") == 0);                                 /* not listed */
    CHECK(takes(schema, "{\"a\":1.5}") == 0);                               /* integer */
    CHECK(takes(schema, "{\"a\":1e3}") == 0);
    CHECK(takes(schema, "{\"a\":\"1\"}") == 0);
    CHECK(takes(schema, "{\"a\":1,\"ab\":\"x\",\"q\\\"\":null,") == 0);     /* no key is left for a ',' */
    CHECK(takes(schema, "[]") == 0);
    CHECK(takes("{\"type\":\"object\"}", "{\"x\":[1,{\"y\":null}]}") == 1); /* free keys, any values */
    CHECK(takes("{\"properties\":{},\"additionalProperties\":false}", "{}") == 1);
    CHECK(takes("{\"type\":\"object\",\"additionalProperties\":false}", "{\"x\":1}") == 0);
    CHECK(takes("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}", "{\"x\":true,\"y\":false}") == 1);
    CHECK(takes("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"boolean\"}}", "{\"x\":1}") == 0);
}

TEST(arrays_strings_and_enums)
{
    const char *arr = "{\"type\":\"array\",\"items\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":2},"
                      "\"minItems\":1,\"maxItems\":2}";
    CHECK(takes(arr, "[\"a\"]") == 1);
    CHECK(takes(arr, "[\"ab\", \"\\u00e9\\n\"]") == 1);   /* an escape is one character */
    CHECK(takes(arr, "[\"\xC3\xA9\xE4\xB8\xAD\"]") == 1);  /* characters, not bytes */
    CHECK(takes(arr, "[]") == 0);
    CHECK(takes(arr, "[\"a\",\"b\",\"c\"]") == 0);
    CHECK(takes(arr, "[\"\"]") == 0);
    CHECK(takes(arr, "[\"abc\"]") == 0);
    CHECK(takes("{\"type\":\"array\",\"items\":false}", "[]") == 1);
    CHECK(takes("{\"type\":\"array\",\"items\":false}", "[1]") == 0);
    const char *en = "{\"enum\":[1,12,\"a\",\"ab\",null,{\"k\":[true]}]}";
    CHECK(takes(en, "1") == 1);
    CHECK(takes(en, "12") == 1);
    CHECK(takes(en, "\"ab\"") == 1);
    CHECK(takes(en, "{\"k\":[true]}") == 1);
    CHECK(takes(en, "null") == 1);
    CHECK(takes(en, "123") == 0);
    CHECK(takes(en, "\"b\"") == 0);
    CHECK(takes(en, "{\"k\": [true]}") == 0);   /* enum values are written compact */
    CHECK(takes("{\"type\":\"array\",\"items\":{\"enum\":[1,12]}}", "[1,12, 1 ,12]") == 1);
    CHECK(takes("{\"type\":\"array\",\"items\":{\"enum\":[1,12]}}", "[2]") == 0);
    CHECK(takes("{\"const\":\"x\"}", "\"x\"") == 1);
    CHECK(takes("{\"type\":[\"string\",\"null\"],\"maxLength\":1}", "null") == 1);
    CHECK(takes("{\"type\":[\"string\",\"null\"],\"maxLength\":1}", "\"ab\"") == 0);
    CHECK(takes("{\"type\":\"boolean\"}", "true") == 1);
    CHECK(takes("{\"type\":\"boolean\"}", "null") == 0);
    CHECK(takes("{\"type\":\"number\"}", "-1.5E+3") == 1);
    CHECK(takes("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"},{\"type\":\"null\"}]}", "2.5") == 1);
}

TEST(recursion_and_unions)
{
    const char *tree = "{\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"kids\":{\"type\":\"array\","
                       "\"items\":{\"$ref\":\"#/$defs/n\"}}}}},\"$ref\":\"#/$defs/n\"}";
    CHECK(takes(tree, "{\"kids\":[{},{\"kids\":[{\"kids\":[]}]}]}") == 1);
    CHECK(takes(tree, "{\"kids\":[1]}") == 0);
    const char *u = "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"array\",\"items\":{\"$ref\":\"#\"}}]}";
    CHECK(takes(u, "[\"a\",[1,[\"b\"]],2]") == 1);
    CHECK(takes(u, "[1.5]") == 0);
    CHECK(takes(u, "{}") == 0);
}

/* The state a schema walk needs is copied frame by frame: a copy goes on
 * exactly like the original. */
TEST(copies_go_on_alike)
{
    char msg[256];
    dsk_json_schema *s = compile("{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                 "\"array\",\"maxItems\":1}},\"required\":[\"a\"]}}", msg, sizeof msg);
    CHECK(s != NULL);
    const char *text = "[{\"a\":[[1]]},{\"a\":[]}]";
    for (size_t cut = 0; cut <= strlen(text); cut++) {
        dsk_json_prefix p, q;
        dsk_json_prefix_init_schema(&p, s);
        CHECK(dsk_json_prefix_feed_all(&p, text, cut));
        dsk_json_prefix_copy(&q, &p);
        CHECK(dsk_json_prefix_feed_all(&q, text + cut, strlen(text) - cut) && dsk_json_prefix_complete(&q));
        CHECK(!dsk_json_prefix_feed_all(&p, "{", 1) || cut != strlen(text));
    }
    dsk_json_schema_free(s);
}

/* Keys in the order of the properties (dsk_json_schema_order_keys):
 * after a key only those listed after it, none past a required one. */
TEST(ordered_keys_follow_the_properties)
{
    /* a and c optional, b and d required; e's objects ordered too */
    const char *schema =
        "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"},"
        "\"c\":{\"type\":\"integer\"},\"d\":{\"type\":\"integer\"},\"e\":{\"type\":\"object\",\"properties\":"
        "{\"y\":{\"type\":\"null\"},\"x\":{\"type\":\"null\"}},\"required\":[\"x\",\"y\"]}},\"required\":[\"b\",\"d\"]}";
    static const struct {
        const char *text;
        int ordered, any;   /* taken with keys in order; taken in any order */
    } cases[] = {
        {"{\"b\":1,\"d\":2}", 1, 1},
        {"{\"a\":0,\"b\":1,\"c\":2,\"d\":3}", 1, 1},
        {"{\"b\":1,\"c\":2,\"d\":3,\"e\":{\"y\":null,\"x\":null}}", 1, 1},
        {"{\"a\":0,\"b\":1,\"d\":3}", 1, 1},
        {"{\"d\":3,\"b\":1}", 0, 1},                                   /* b is listed first */
        {"{\"b\":1,\"a\":0,\"d\":3}", 0, 1},                           /* a comes before b */
        {"{\"a\":0,\"c\":2,\"b\":1,\"d\":3}", 0, 1},                   /* c skips the required b */
        {"{\"b\":1,\"d\":3,\"e\":{\"x\":null,\"y\":null}}", 0, 1},     /* in e, y first */
        {"{\"b\":1,\"d\":3,\"c\":2}", 0, 1},
        {"{\"b\":1}", 0, 0},                                           /* d missing either way */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int ordered = takes_keys(schema, cases[i].text, 1), any = takes_keys(schema, cases[i].text, 0);
        if (ordered != cases[i].ordered || any != cases[i].any)
            printf("#   %s: ordered %d, any order %d\n", cases[i].text, ordered, any);
        CHECK(ordered == cases[i].ordered && any == cases[i].any);
    }
    /* where the order leaves one key, its bytes are the only ones: after
     * "b":1, only c or d (not a); after "c":2, only d */
    char msg[256];
    dsk_json_schema *s = compile(schema, msg, sizeof msg);
    CHECK(s != NULL);
    dsk_json_schema_order_keys(s);
    dsk_json_prefix p;
    dsk_json_prefix_init_schema(&p, s);
    dsk_json_prefix_compact(&p);
    CHECK(dsk_json_prefix_feed_all(&p, "{\"b\":1,\"", 8));
    int taken = 0;
    for (int c = 0; c < 256; c++) {
        dsk_json_prefix q;
        dsk_json_prefix_copy(&q, &p);
        taken += dsk_json_prefix_feed(&q, (unsigned char)c) ? 1 << (c == 'c' ? 0 : c == 'd' ? 1 : 2) : 0;
    }
    CHECK(taken == 3);
    dsk_json_schema_free(s);
}

/* Found in review: keywords without a type, surrogate pairs, long
 * strings, properties that can never be written, and the depth limit. */
TEST(untyped_keywords_pairs_and_depth)
{
    CHECK(takes("{\"minLength\":5}", "\"ab\"") == 0);
    CHECK(takes("{\"minLength\":5}", "\"abcde\"") == 1);
    CHECK(takes("{\"minLength\":5}", "5") == 1);   /* minLength says nothing of numbers */
    CHECK(takes("{\"type\":\"array\",\"items\":{\"minLength\":3}}", "[\"a\"]") == 0);
    CHECK(takes("{\"additionalProperties\":false}", "{\"a\":1}") == 0);
    CHECK(takes("{\"additionalProperties\":false}", "{}") == 1);
    CHECK(takes("{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":\"x\"}") == 0);
    CHECK(takes("{\"maxItems\":0}", "[1]") == 0);
    CHECK(takes("{\"maxItems\":0}", "[]") == 1);
    CHECK(takes("{\"type\":\"string\",\"minLength\":2}", "\"\\ud83d\\ude00\"") == 0);   /* one code point */
    CHECK(takes("{\"type\":\"string\",\"maxLength\":1}", "\"\\ud83d\\ude00\"") == 1);
    CHECK(takes("{\"type\":\"string\",\"maxLength\":1}", "\"\\ud83dx\"") == 0);       /* a lone half and x: two */
    CHECK(takes("{\"type\":\"string\",\"maxLength\":2}", "\"\\ude00\\ude00\"") == 1);
    CHECK(takes("{\"type\":\"integer\",\"enum\":[1.0]}", "1.0") == 1);
    CHECK(takes("{\"type\":\"object\",\"properties\":{\"a\":false,\"b\":{}}}", "{\"b\":1}") == 1);
    CHECK(takes("{\"type\":\"object\",\"properties\":{\"a\":false,\"b\":{}}}", "{\"a\":1}") == 0);
    /* a pair does not reach across strings: a high half ending one string
     * leaves the next to count its low half as a character */
    CHECK(takes("{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":1}}",
                "[\"\\ud800\",\"\\udc00a\"]") == 0);
    CHECK(takes("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"string\",\"maxLength\":0}}",
                "{\"\\ud800\":\"\\udc00\"}") == 0);
    /* 70,000 characters: past 16 bits */
    dsk_buf b = {0};
    dsk_buf_addc(&b, '"');
    for (int i = 0; i < 70001; i++)
        dsk_buf_addc(&b, 'a');
    dsk_buf_adds(&b, "\"");
    dsk_buf_addc(&b, 0);
    CHECK(takes("{\"type\":\"string\",\"maxLength\":70000}", b.data) == 0);
    CHECK(takes("{\"type\":\"string\",\"maxLength\":70001}", b.data) == 1);
    dsk_buf_free(&b);

    /* an optional property that nests: at the limit, its key is refused, '}' is not */
    char msg[256];
    dsk_json_schema *s = compile("{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#\"},"
                                 "\"b\":{\"const\":[[[1]]]}}}", msg, sizeof msg);
    CHECK(s != NULL);
    dsk_json_prefix p;
    dsk_json_prefix_init_schema(&p, s);
    for (int d = 1; d < DSK_JSON_MAX_DEPTH; d++)
        CHECK(dsk_json_prefix_feed_all(&p, "{\"a\":", 5));
    dsk_json_prefix q;
    dsk_json_prefix_copy(&q, &p);
    CHECK(dsk_json_prefix_feed_all(&q, "{\"b\":", 5) == 0);   /* [[[1]]] would nest past the limit */
    dsk_json_prefix_copy(&q, &p);
    CHECK(dsk_json_prefix_feed_all(&q, "{\"a", 3) == 0);       /* so would another object */
    CHECK(dsk_json_prefix_feed_all(&p, "{}", 2));
    for (int d = 1; d < DSK_JSON_MAX_DEPTH; d++)
        CHECK(dsk_json_prefix_feed(&p, '}'));
    CHECK(dsk_json_prefix_closed(&p));
    /* where its three levels fit, b is taken: inside 29 objects */
    dsk_json_prefix_init_schema(&p, s);
    for (int d = 1; d < DSK_JSON_MAX_DEPTH - 3; d++)
        CHECK(dsk_json_prefix_feed_all(&p, "{\"a\":", 5));
    CHECK(dsk_json_prefix_feed_all(&p, "{\"b\":[[[1]]]}", 13));
    dsk_json_schema_free(s);
}

RUN_TESTS(T(untyped_keywords_pairs_and_depth), T(refused_schemas_say_why), T(objects_keys_required_and_order), T(ordered_keys_follow_the_properties), T(arrays_strings_and_enums),
          T(recursion_and_unions), T(copies_go_on_alike))
