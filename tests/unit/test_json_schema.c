/* JSON schemas for the automaton: what compiles, what is refused (and
 * why), and texts taken or refused under a schema.  That every accepted
 * text validates is tests/cli/test_json_schema.sh's work (against the
 * Python jsonschema package). */
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

/* 1 if text is taken whole and complete under schema. */
static int takes(const char *schema, const char *text)
{
    char msg[256];
    dsk_json_schema *s = compile(schema, msg, sizeof msg);
    if (!s) {
        printf("#   schema refused: %s\n", msg);
        return -1;
    }
    dsk_json_prefix p;
    dsk_json_prefix_init_schema(&p, s);
    int ok = dsk_json_prefix_feed_all(&p, text, strlen(text)) && dsk_json_prefix_complete(&p);
    dsk_json_schema_free(s);
    return ok;
}

TEST(refused_schemas_say_why)
{
    static const struct { const char *schema, *says; } bad[] = {
        {"{\"type\":\"string\",\"pattern\":\"^a\"}", "'pattern' is not supported"},
        {"{\"properties\":{\"n\":{\"type\":\"number\",\"minimum\":0}}}", "at /properties/n: 'minimum'"},
        {"{\"type\":\"object\",\"properties\":{\"a\":{}},\"required\":[\"b\"]}", "required property 'b'"},
        {"{\"type\":\"object\",\"required\":[\"b\"]}", "required property 'b'"},
        {"{\"anyOf\":[{\"type\":\"object\"},{\"properties\":{\"x\":{}}}]}", "begin with '{'"},
        {"{\"type\":[\"integer\",\"string\",\"number\"],\"maxLength\":3}", NULL},   /* number takes integer */
        {"{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "begin with '-'"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minimum above the maximum"},
        {"{\"type\":\"string\",\"maxLength\":-1}", "'maxLength' must be a non-negative integer"},
        {"false", "admits no value"},
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

RUN_TESTS(T(refused_schemas_say_why), T(objects_keys_required_and_order), T(arrays_strings_and_enums),
          T(recursion_and_unions), T(copies_go_on_alike))
