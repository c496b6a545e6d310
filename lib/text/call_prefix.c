/* Tool calls held to the tools: see call_prefix.h. */
#include "text/call_prefix.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "text/json_schema.h"
#include "text/tool_calls.h"

typedef struct call_tool {
    char *name;
    size_t len;
    dsk_json_schema *schema;   /* NULL: any object */
    char *loose;               /* why schema is NULL */
} call_tool;

struct dsk_call_tools {
    int n;
    call_tool tool[DSK_CALL_MAX_TOOLS];
};

/* The literals of the form (tool_calls.c writes them the same way:
 * json-c's compact JSON of {"name", "arguments"} in that order). */
static const char OPEN[] = DSK_TOOL_CALL_OPEN "{\"name\":\"";
static const char ARGS_KEY[] = "\",\"arguments\":";
static const char CLOSE[] = "}" DSK_TOOL_CALL_CLOSE;
enum { TAG_LEN = sizeof DSK_TOOL_CALL_OPEN - 1, OPEN_LEN = sizeof OPEN - 1, ARGS_KEY_LEN = sizeof ARGS_KEY - 1,
       CLOSE_LEN = sizeof CLOSE - 1 };

static int name_ok(const char *name, size_t len)
{
    if (len < 1 || len > 64)
        return 0;
    for (size_t k = 0; k < len; k++)
        if (name[k] < 0x20 || name[k] > 0x7E || name[k] == '"' || name[k] == '\\')
            return 0;
    return 1;
}

dsk_call_tools *dsk_call_tools_new(struct json_object *tools, char *msg, size_t msg_len)
{
    if (!dsk_json_is(tools, json_type_array) || json_object_array_length(tools) == 0 ||
        json_object_array_length(tools) > DSK_CALL_MAX_TOOLS) {
        snprintf(msg, msg_len, "tools must be an array of 1 to %d tools", DSK_CALL_MAX_TOOLS);
        return NULL;
    }
    dsk_call_tools *t = dsk_xcalloc(1, sizeof *t);
    for (size_t i = 0; i < json_object_array_length(tools); i++) {
        struct json_object *fn = NULL, *params = NULL, *type = NULL;
        struct json_object *entry = json_object_array_get_idx(tools, i);
        /* {"type": "function", "function": {"name", ...}}, the type perhaps left out */
        int shaped = dsk_json_is(entry, json_type_object) && json_object_object_get_ex(entry, "function", &fn) &&
                     dsk_json_is(fn, json_type_object) &&
                     (!json_object_object_get_ex(entry, "type", &type) ||
                      (dsk_json_is(type, json_type_string) && strcmp(json_object_get_string(type), "function") == 0));
        struct json_object *name = shaped ? dsk_json_get_string(fn, "name") : NULL;
        const char *nm = name ? json_object_get_string(name) : NULL;
        size_t len = name ? (size_t)json_object_get_string_len(name) : 0;
        if (!nm || !name_ok(nm, len) || strlen(nm) != len) {
            snprintf(msg, msg_len,
                     "tools[%zu] must be {\"type\": \"function\", \"function\": {\"name\": ...}} with a name of 1 to "
                     "64 printable ASCII bytes, no '\"' or '\\'", i);
            dsk_call_tools_free(t);
            return NULL;
        }
        if (dsk_call_tools_find(t, nm) >= 0) {
            snprintf(msg, msg_len, "two tools are named '%s'", nm);
            dsk_call_tools_free(t);
            return NULL;
        }
        call_tool *ct = &t->tool[t->n++];
        ct->name = dsk_xstrdup(nm);
        ct->len = len;
        /* no parameters: no arguments, {} */
        struct json_object *none = NULL;
        if (!json_object_object_get_ex(fn, "parameters", &params) || !params)
            params = none =
                json_tokener_parse("{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}");
        char why[400];
        ct->schema = dsk_json_schema_compile(params, why, sizeof why);
        json_object_put(none);
        if (ct->schema && !dsk_json_schema_admits(ct->schema, '{')) {
            snprintf(why, sizeof why, "its parameters admit no object");
            dsk_json_schema_free(ct->schema);
            ct->schema = NULL;
        }
        if (!ct->schema)
            ct->loose = dsk_xstrdup(why);
        /* a strict tool's arguments, as OpenAI's strict function calling
         * writes them: keys in the order of its properties */
        struct json_object *strict = NULL;
        if (ct->schema && json_object_object_get_ex(fn, "strict", &strict) && dsk_json_is(strict, json_type_boolean) &&
            json_object_get_boolean(strict))
            dsk_json_schema_order_keys(ct->schema);
    }
    return t;
}

void dsk_call_tools_free(dsk_call_tools *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++) {
        free(t->tool[i].name);
        dsk_json_schema_free(t->tool[i].schema);
        free(t->tool[i].loose);
    }
    free(t);
}

int dsk_call_tools_count(const dsk_call_tools *t) { return t->n; }
const char *dsk_call_tools_name(const dsk_call_tools *t, int i) { return t->tool[i].name; }
const char *dsk_call_tools_loose(const dsk_call_tools *t, int i) { return t->tool[i].loose; }

int dsk_call_tools_find(const dsk_call_tools *t, const char *name)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->tool[i].name, name) == 0)
            return i;
    return -1;
}

/* The tools a name may be: all, or only s->only. */
static void reset_cand(dsk_call_prefix *s)
{
    memset(s->cand, 0, sizeof s->cand);
    for (int i = 0; i < s->tools->n; i++)
        if (s->only < 0 || s->only == i)
            s->cand[i / 64] |= 1ULL << (i % 64);
}

void dsk_call_prefix_init(dsk_call_prefix *s, const dsk_call_tools *t, int mode, int only, int parallel)
{
    memset(s, 0, offsetof(dsk_call_prefix, args));
    s->tools = t;
    s->at = mode == DSK_CALLS_REQUIRED ? DSK_CALL_OPEN : DSK_CALL_TEXT;
    s->parallel = (uint8_t)(parallel != 0);
    s->only = (int16_t)(only >= 0 && only < t->n ? only : -1);
    s->tool = -1;
    dsk_json_prefix_init(&s->args, 1);
}

void dsk_call_prefix_copy(dsk_call_prefix *dst, const dsk_call_prefix *src)
{
    memcpy(dst, src, offsetof(dsk_call_prefix, args));
    if (src->at == DSK_CALL_ARGS)
        dsk_json_prefix_copy(&dst->args, &src->args);
}

static int fail(dsk_call_prefix *s)
{
    s->at = DSK_CALL_FAILED;
    return 0;
}

/* Bytes of a literal: the next one due is lit[pos]; at its end, s moves on. */
static int literal_byte(dsk_call_prefix *s, const char *lit, size_t len, unsigned char c)
{
    if ((unsigned char)lit[s->pos] != c)
        return fail(s);
    if (++s->pos < len)
        return 1;
    s->pos = 0;
    if (lit == OPEN) {
        s->at = DSK_CALL_NAME;
        reset_cand(s);
    } else if (lit == ARGS_KEY) {
        s->at = DSK_CALL_ARGS;
        const call_tool *ct = &s->tools->tool[s->tool];
        if (ct->schema)
            dsk_json_prefix_init_schema(&s->args, ct->schema);
        else
            dsk_json_prefix_init(&s->args, 1);
        s->args.top_object = 1;
        dsk_json_prefix_compact(&s->args);
    } else {   /* CLOSE */
        s->calls++;
        s->at = s->parallel ? DSK_CALL_BETWEEN : DSK_CALL_DONE;
        s->space = 0;
    }
    return 1;
}

/* A byte of the name: it keeps the tools whose names go on with it; '"'
 * ends the one name of pos bytes among them. */
static int name_byte(dsk_call_prefix *s, unsigned char c)
{
    uint64_t left = 0;
    for (int i = 0; i < s->tools->n; i++) {
        if (!(s->cand[i / 64] >> (i % 64) & 1))
            continue;
        const call_tool *ct = &s->tools->tool[i];
        if (c == '"' && ct->len == s->pos) {
            s->tool = (int16_t)i;
            s->at = DSK_CALL_ARGS_KEY;
            s->pos = 1;   /* the quote is ARGS_KEY's first byte */
            return 1;
        }
        if (ct->len > s->pos && (unsigned char)ct->name[s->pos] == c)
            left++;
        else
            s->cand[i / 64] &= ~(1ULL << (i % 64));
    }
    if (!left)
        return fail(s);
    s->pos++;
    return 1;
}

int dsk_call_prefix_feed(dsk_call_prefix *s, unsigned char c)
{
    switch (s->at) {
    case DSK_CALL_TEXT:
        /* the tag's only repeated byte is its first: a mismatch starts over
         * at '<' or before it */
        if (c == (unsigned char)OPEN[s->pos]) {
            if (++s->pos == TAG_LEN)
                s->at = DSK_CALL_OPEN;   /* pos stays: the tag is OPEN's beginning */
        } else {
            s->pos = c == '<';
        }
        return 1;
    case DSK_CALL_OPEN:
        return literal_byte(s, OPEN, OPEN_LEN, c);
    case DSK_CALL_NAME:
        return name_byte(s, c);
    case DSK_CALL_ARGS_KEY:
        return literal_byte(s, ARGS_KEY, ARGS_KEY_LEN, c);
    case DSK_CALL_ARGS:
        if (!dsk_json_prefix_feed(&s->args, c))
            return fail(s);
        if (dsk_json_prefix_closed(&s->args)) {
            s->at = DSK_CALL_CLOSE;
            s->pos = 0;
        }
        return 1;
    case DSK_CALL_CLOSE:
        return literal_byte(s, CLOSE, CLOSE_LEN, c);
    case DSK_CALL_BETWEEN:
        if (c == '<') {
            s->at = DSK_CALL_OPEN;
            s->pos = 1;
            return 1;
        }
        if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && s->space < DSK_CALL_MAX_SPACE) {
            s->space++;
            return 1;
        }
        return fail(s);
    default:   /* DONE, FAILED */
        return fail(s);
    }
}

int dsk_call_prefix_feed_all(dsk_call_prefix *s, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++)
        if (!dsk_call_prefix_feed(s, p[i]))
            return 0;
    return 1;
}

int dsk_call_prefix_may_end(const dsk_call_prefix *s)
{
    return s->at == DSK_CALL_TEXT || s->at == DSK_CALL_BETWEEN || s->at == DSK_CALL_DONE;
}

int dsk_call_prefix_done(const dsk_call_prefix *s) { return s->at == DSK_CALL_DONE; }

int dsk_call_prefix_in_free_text(const dsk_call_prefix *s) { return s->at == DSK_CALL_TEXT && s->pos == 0; }
