#include "text/json_schema.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "text/json_prefix.h"
#include "text/json_schema_nodes.h"

typedef struct compiler {
    dsk_json_schema *s;
    struct json_object *root;
    struct json_object **memo_obj;   /* schema objects compiled so far ... */
    uint16_t *memo_node;             /* ... and their nodes */
    int n_memo, cap_memo;
    int ref_depth;                   /* $ref chains followed at once (a $ref to itself loops) */
    char **path_of;                  /* [node]: where in the schema, for messages */
    int never;                       /* the node of the schema false, once made (0: not yet) */
    char *msg;
    size_t msg_len;
} compiler;

static int failf(compiler *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int failf(compiler *c, const char *path, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->msg, c->msg_len, "at %s: %s", *path ? path : "the top", what);
    return -1;
}

static void set_first(dsk_schema_node *n, unsigned char b) { n->first[b >> 3] |= (uint8_t)(1u << (b & 7)); }

/* A new node for the schema at path, or -1 (with the message) past the limit. */
static int new_node(compiler *c, int kind, const char *path)
{
    dsk_json_schema *s = c->s;
    if (s->n_nodes == DSK_SCHEMA_MAX_NODES)
        return failf(c, path, "more than %d schema nodes", DSK_SCHEMA_MAX_NODES);
    if (s->n_nodes == s->cap_nodes) {
        s->cap_nodes = s->cap_nodes ? 2 * s->cap_nodes : 16;
        s->nodes = dsk_xrealloc(s->nodes, (size_t)s->cap_nodes * sizeof *s->nodes);
        c->path_of = dsk_xrealloc(c->path_of, (size_t)s->cap_nodes * sizeof *c->path_of);
    }
    dsk_schema_node *n = &s->nodes[s->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->max = UINT32_MAX;
    c->path_of[s->n_nodes] = dsk_xstrdup(*path ? path : "the top");
    return s->n_nodes++;
}

static int add_text(compiler *c, const char *p, size_t len, int node, int nest)
{
    dsk_json_schema *s = c->s;
    if (s->n_texts == s->cap_texts) {
        s->cap_texts = s->cap_texts ? 2 * s->cap_texts : 16;
        s->texts = dsk_xrealloc(s->texts, (size_t)s->cap_texts * sizeof *s->texts);
    }
    while (s->pool_len + len > s->pool_cap) {
        s->pool_cap = s->pool_cap ? 2 * s->pool_cap : 256;
        s->pool = dsk_xrealloc(s->pool, s->pool_cap);
    }
    memcpy(s->pool + s->pool_len, p, len);
    s->texts[s->n_texts] = (dsk_schema_text){s->pool_len, (uint32_t)len, (uint16_t)node, (uint8_t)nest};
    s->pool_len += (uint32_t)len;
    return s->n_texts++;
}

static void add_alt(compiler *c, int node)
{
    dsk_json_schema *s = c->s;
    if (s->n_alts == s->cap_alts) {
        s->cap_alts = s->cap_alts ? 2 * s->cap_alts : 16;
        s->alts = dsk_xrealloc(s->alts, (size_t)s->cap_alts * sizeof *s->alts);
    }
    s->alts[s->n_alts++] = (uint16_t)node;
}

static void remember(compiler *c, struct json_object *v, int node)
{
    if (c->n_memo == c->cap_memo) {
        c->cap_memo = c->cap_memo ? 2 * c->cap_memo : 16;
        c->memo_obj = dsk_xrealloc(c->memo_obj, (size_t)c->cap_memo * sizeof *c->memo_obj);
        c->memo_node = dsk_xrealloc(c->memo_node, (size_t)c->cap_memo * sizeof *c->memo_node);
    }
    c->memo_obj[c->n_memo] = v;
    c->memo_node[c->n_memo++] = (uint16_t)node;
}

static int get_count(compiler *c, struct json_object *v, const char *path, const char *key, uint32_t *out)
{
    struct json_object *x;
    if (!json_object_object_get_ex(v, key, &x))
        return 0;
    if (!dsk_json_is(x, json_type_int) || json_object_get_int64(x) < 0 || json_object_get_int64(x) > UINT32_MAX - 1)
        return failf(c, path, "'%s' must be a non-negative integer", key);
    *out = (uint32_t)json_object_get_int64(x);
    return 0;
}

static int compile(compiler *c, struct json_object *v, const char *path);

/* The schema a "$ref" names: "#", "#/$defs/NAME" or "#/definitions/NAME". */
static struct json_object *resolve(compiler *c, const char *ref)
{
    if (strcmp(ref, "#") == 0)
        return c->root;
    static const char *const homes[] = {"$defs", "definitions"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(homes[i]);
        if (strncmp(ref, "#/", 2) != 0 || strncmp(ref + 2, homes[i], n) != 0 || ref[2 + n] != '/')
            continue;
        const char *name = ref + 3 + n;   /* past "#/", the home and '/' */
        struct json_object *defs, *target;
        if (*name && !strpbrk(name, "/~%") && json_object_object_get_ex(c->root, homes[i], &defs) &&
            dsk_json_is(defs, json_type_object) && json_object_object_get_ex(defs, name, &target))
            return target;
    }
    return NULL;
}

/* Keywords that say nothing about the text, and those only read elsewhere. */
static int is_annotation(const char *k)
{
    static const char *const names[] = {"title", "description", "default", "examples", "format", "$schema", "$id",
                                        "$comment", "deprecated", "readOnly", "writeOnly", "strict", "$defs",
                                        "definitions", "name"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(k, names[i]) == 0)
            return 1;
    return 0;
}

static const char *const type_names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};
static const int type_kinds[] = {NODE_OBJECT, NODE_ARRAY, NODE_STRING, NODE_NUMBER, NODE_INTEGER, NODE_BOOLEAN,
                                 NODE_NULL};

static int kind_of_type(struct json_object *t)
{
    if (!dsk_json_is(t, json_type_string))
        return -1;
    for (int i = 0; i < 7; i++)
        if (strcmp(json_object_get_string(t), type_names[i]) == 0)
            return type_kinds[i];
    return -1;
}

/* Whether the JSON value x is of kind k (for enum values under a type). */
static int value_is(struct json_object *x, int k)
{
    switch (k) {
    case NODE_OBJECT: return dsk_json_is(x, json_type_object);
    case NODE_ARRAY: return dsk_json_is(x, json_type_array);
    case NODE_STRING: return dsk_json_is(x, json_type_string);
    case NODE_NUMBER: return dsk_json_is(x, json_type_int) || dsk_json_is(x, json_type_double);
    case NODE_INTEGER:   /* 1.0 and 1e300 are integers too (JSON Schema 2020-12) */
        return dsk_json_is(x, json_type_int) ||
               (dsk_json_is(x, json_type_double) && isfinite(json_object_get_double(x)) &&
                floor(json_object_get_double(x)) == json_object_get_double(x));
    case NODE_BOOLEAN: return dsk_json_is(x, json_type_boolean);
    case NODE_NULL: return x == NULL;
    }
    return 1;
}

/* A property name as the automaton matches it: its JSON string without
 * the opening quote (the closing one included). */
static void key_text(const char *name, dsk_buf *out)
{
    struct json_object *ks = json_object_new_string(name);
    dsk_buf_clear(out);
    dsk_json_append(ks, out);
    json_object_put(ks);
}

/* An object's properties, required list and extra keys. */
static int compile_object(compiler *c, int node, struct json_object *v, const char *path)
{
    struct json_object *props = NULL, *req = NULL, *extra = NULL;
    json_object_object_get_ex(v, "properties", &props);
    json_object_object_get_ex(v, "required", &req);
    json_object_object_get_ex(v, "additionalProperties", &extra);
    char sub[512];
    if (props && !dsk_json_is(props, json_type_object))
        return failf(c, path, "'properties' must be an object");
    if (!props) {   /* no properties listed: any keys, each value as additionalProperties says */
        int value = 0, none = extra && dsk_json_is(extra, json_type_boolean) && !json_object_get_boolean(extra);
        if (extra && !none) {
            snprintf(sub, sizeof sub, "%s/additionalProperties", path);
            if ((value = compile(c, extra, sub)) < 0)
                return -1;
        }
        c->s->nodes[node].free_keys = (uint8_t)!none;
        c->s->nodes[node].child = (uint16_t)value;
    } else {
        if (json_object_object_length(props) > DSK_SCHEMA_MAX_ALTS)
            return failf(c, path, "more than %d properties", DSK_SCHEMA_MAX_ALTS);
        /* the keys first, back to back (a property's schema adds texts of its own) */
        uint32_t first = (uint32_t)c->s->n_texts;
        int k = 0;
        dsk_buf b = {0};
        json_object_object_foreach(props, key, pv) {
            (void)pv;
            key_text(key, &b);
            add_text(c, b.data + 1, b.len - 1, 0, 0);
            k++;
        }
        dsk_buf_free(&b);
        c->s->nodes[node].at = first;
        c->s->nodes[node].n = (uint16_t)k;
        k = 0;
        json_object_object_foreach(props, key2, pv2) {
            snprintf(sub, sizeof sub, "%s/properties/%s", path, key2);
            int value = compile(c, pv2, sub);
            if (value < 0)
                return -1;
            c->s->texts[first + (uint32_t)k++].node = (uint16_t)value;
        }
    }
    if (req) {
        if (!dsk_json_is(req, json_type_array))
            return failf(c, path, "'required' must be an array of property names");
        for (size_t i = 0; i < json_object_array_length(req); i++) {
            struct json_object *r = json_object_array_get_idx(req, i);
            if (!dsk_json_is(r, json_type_string))
                return failf(c, path, "'required' must be an array of property names");
            const char *name = json_object_get_string(r);
            int found = -1;
            dsk_schema_node *n = &c->s->nodes[node];
            dsk_buf b = {0};
            key_text(name, &b);
            for (int k = 0; props && k < n->n; k++) {
                const dsk_schema_text *t = &c->s->texts[n->at + (uint32_t)k];
                if (b.len - 1 == t->len && memcmp(b.data + 1, c->s->pool + t->off, t->len) == 0)
                    found = k;
            }
            dsk_buf_free(&b);
            /* without properties, required keys would not be written: refused */
            if (found < 0)
                return failf(c, path, "required property '%s' is not in 'properties'", name);
            n->required |= 1ull << found;
        }
    }
    return 0;
}

/* A node of one kind from v's keywords for it (those of other kinds do
 * not apply to it): node, or a new one when node is -1. */
static int compile_kind(compiler *c, int kind, struct json_object *v, const char *path, int node)
{
    if (node < 0 && (node = new_node(c, kind, path)) < 0)
        return -1;
    char sub[512];
    uint32_t min = 0, max = UINT32_MAX;
    switch (kind) {
    case NODE_OBJECT:
        if (compile_object(c, node, v, path))
            return -1;
        break;
    case NODE_ARRAY: {
        struct json_object *items = NULL;
        int item = 0, none = 0;
        if (json_object_object_get_ex(v, "items", &items)) {
            none = dsk_json_is(items, json_type_boolean) && !json_object_get_boolean(items);
            snprintf(sub, sizeof sub, "%s/items", path);
            if (!none && (item = compile(c, items, sub)) < 0)
                return -1;
        }
        if (get_count(c, v, path, "minItems", &min) || get_count(c, v, path, "maxItems", &max))
            return -1;
        if (none)   /* items: false: only [] */
            max = 0;
        c->s->nodes[node].child = (uint16_t)item;
        break;
    }
    case NODE_STRING:
        if (get_count(c, v, path, "minLength", &min) || get_count(c, v, path, "maxLength", &max))
            return -1;
        break;
    }
    if (min > max)
        return failf(c, path, "a minimum above the maximum (%u > %u)", min, max);
    c->s->nodes[node].min = min;
    c->s->nodes[node].max = max;
    return node;
}

/* How deep the objects and arrays of a compact JSON text go. */
static int nesting(const char *p, size_t n)
{
    int depth = 0, deepest = 0, in_string = 0;
    for (size_t i = 0; i < n; i++) {
        if (in_string) {
            if (p[i] == '\\')
                i++;
            else if (p[i] == '"')
                in_string = 0;
        } else if (p[i] == '"') {
            in_string = 1;
        } else if (p[i] == '{' || p[i] == '[') {
            deepest = ++depth > deepest ? depth : deepest;
        } else if (p[i] == '}' || p[i] == ']') {
            depth--;
        }
    }
    return deepest;
}

/* enum or const, under "type" if given (kinds[0..n_kinds)): only the
 * values of those kinds. */
static int compile_enum(compiler *c, struct json_object *v, const char *path, const int *kinds, int n_kinds)
{
    struct json_object *vals = NULL, *one, *x;
    int is_const = json_object_object_get_ex(v, "const", &one);
    if (is_const && json_object_object_get_ex(v, "enum", &x))
        return failf(c, path, "'enum' beside 'const' is not supported");
    json_object_object_foreach(v, key, val) {
        (void)val;
        if (strcmp(key, is_const ? "const" : "enum") != 0 && strcmp(key, "type") != 0 && !is_annotation(key))
            return failf(c, path, "'%s' beside '%s' is not supported", key, is_const ? "const" : "enum");
    }
    if (!is_const) {
        json_object_object_get_ex(v, "enum", &vals);
        if (!dsk_json_is(vals, json_type_array) || json_object_array_length(vals) == 0)
            return failf(c, path, "'enum' must be a non-empty array");
    }
    int node = new_node(c, NODE_ENUM, path);
    if (node < 0)
        return -1;
    remember(c, v, node);
    uint32_t first = (uint32_t)c->s->n_texts;
    int n = 0;
    size_t count = is_const ? 1 : json_object_array_length(vals);
    for (size_t i = 0; i < count; i++) {
        x = is_const ? one : json_object_array_get_idx(vals, i);
        int keep = !n_kinds;
        for (int t = 0; t < n_kinds; t++)
            keep |= value_is(x, kinds[t]);
        if (!keep)
            continue;
        dsk_buf b = {0};
        if (x)
            dsk_json_append(x, &b);
        else
            dsk_buf_adds(&b, "null");
        /* NaN and Infinity pass the parser (Python writes them) but are not JSON */
        dsk_json_prefix check;
        dsk_json_prefix_init(&check, 0);
        dsk_json_prefix_any_digits(&check);   /* written as given, never generated */
        if (!dsk_json_prefix_feed_all(&check, b.data, b.len) || !dsk_json_prefix_complete(&check)) {
            failf(c, path, "the value %.*s is not JSON", (int)(b.len > 40 ? 40 : b.len), b.data);
            dsk_buf_free(&b);
            return -1;
        }
        /* the same text twice would make two candidates that never part */
        int dup = 0;
        for (int k = 0; k < n; k++) {
            const dsk_schema_text *t = &c->s->texts[first + (uint32_t)k];
            dup |= t->len == b.len && memcmp(c->s->pool + t->off, b.data, b.len) == 0;
        }
        if (!dup && n == DSK_SCHEMA_MAX_ALTS) {
            dsk_buf_free(&b);
            return failf(c, path, "more than %d enum values", DSK_SCHEMA_MAX_ALTS);
        }
        if (!dup) {
            add_text(c, b.data, b.len, 0, nesting(b.data, b.len));
            n++;
        }
        dsk_buf_free(&b);
    }
    if (!n)
        return failf(c, path, "no enum value is of the schema's type");
    c->s->nodes[node].at = first;
    c->s->nodes[node].n = (uint16_t)n;
    return node;
}

/* A union node of branches already compiled. */
static int make_union(compiler *c, const int *branch, int n, const char *path, int node)
{
    if (node < 0 && (node = new_node(c, NODE_UNION, path)) < 0)
        return -1;
    c->s->nodes[node].at = (uint32_t)c->s->n_alts;
    c->s->nodes[node].n = (uint16_t)n;
    for (int i = 0; i < n; i++)
        add_alt(c, branch[i]);
    return node;
}

/* One node per kind in kinds[0..n) (distinct; integer left out beside
 * number: number takes integers), each from v's keywords; their union if
 * more than one. */
static int compile_kinds(compiler *c, struct json_object *v, const int *kinds, int n, const char *path)
{
    int has_number = 0;
    for (int i = 0; i < n; i++)
        has_number |= kinds[i] == NODE_NUMBER;
    int node = -1, branch[8], n_branch = 0;
    if (n > 1) {   /* the union first, remembered before the branches: they may refer back */
        if ((node = new_node(c, NODE_UNION, path)) < 0)
            return -1;
        remember(c, v, node);
    }
    for (int i = 0; i < n; i++) {
        if (kinds[i] == NODE_INTEGER && has_number)
            continue;
        int lone = -1;
        if (n == 1) {   /* a lone kind is remembered before its children compile */
            if ((lone = new_node(c, kinds[i], path)) < 0)
                return -1;
            remember(c, v, lone);
        }
        int b = compile_kind(c, kinds[i], v, path, lone);
        if (b < 0)
            return -1;
        branch[n_branch++] = b;
    }
    return n == 1 ? branch[0] : make_union(c, branch, n_branch, path, node);
}

/* Keywords that say something only of some kinds of value. */
static int has_kind_keywords(struct json_object *v)
{
    static const char *const names[] = {"properties", "required", "additionalProperties", "items",
                                        "minItems",   "maxItems", "minLength",            "maxLength"};
    struct json_object *x;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (json_object_object_get_ex(v, names[i], &x))
            return 1;
    return 0;
}

static int compile_inner(compiler *c, struct json_object *v, const char *path)
{
    if (dsk_json_is(v, json_type_boolean)) {
        if (json_object_get_boolean(v))
            return 0;   /* true: anything */
        if (!c->never && (c->never = new_node(c, NODE_NEVER, path)) < 0)
            return -1;
        return c->never;
    }
    if (!dsk_json_is(v, json_type_object))
        return failf(c, path, "a schema must be an object or a boolean");
    for (int i = 0; i < c->n_memo; i++)
        if (c->memo_obj[i] == v)
            return c->memo_node[i];
    struct json_object *x;
    json_object_object_foreach(v, key, val) {
        (void)val;
        static const char *const known[] = {"type", "properties", "required", "additionalProperties", "items",
                                            "minItems", "maxItems", "minLength", "maxLength", "enum", "const",
                                            "anyOf", "oneOf", "$ref"};
        int ok = is_annotation(key);
        for (size_t i = 0; !ok && i < sizeof known / sizeof *known; i++)
            ok = strcmp(key, known[i]) == 0;
        if (!ok)
            return failf(c, path, "'%s' is not supported", key);
    }
    /* an $id below the top would change what "#" and "#/$defs/..." mean there */
    if (v != c->root && json_object_object_get_ex(v, "$id", &x))
        return failf(c, path, "'$id' is supported only at the top");
    if (json_object_object_get_ex(v, "$ref", &x)) {
        json_object_object_foreach(v, k2, v2) {
            (void)v2;
            if (strcmp(k2, "$ref") != 0 && !is_annotation(k2))
                return failf(c, path, "'%s' beside '$ref' is not supported", k2);
        }
        struct json_object *target = dsk_json_is(x, json_type_string) ? resolve(c, json_object_get_string(x)) : NULL;
        if (!target)
            return failf(c, path, "'$ref' must be \"#\", \"#/$defs/NAME\" or \"#/definitions/NAME\" of this schema");
        if (++c->ref_depth > 64)
            return failf(c, path, "'$ref' loops without a schema");
        char sub[512];
        snprintf(sub, sizeof sub, "%s", json_object_get_string(x) + 1);
        return compile(c, target, sub);   /* compile() puts ref_depth back */
    }
    /* "type": its kinds, each once (none: no "type") */
    struct json_object *types = NULL;
    int kinds[8], n_kinds = 0;
    json_object_object_get_ex(v, "type", &types);
    if (dsk_json_is(types, json_type_array) && json_object_array_length(types) == 0)
        return failf(c, path, "'type' is an empty list: no value has it");
    size_t n_types = !types ? 0 : dsk_json_is(types, json_type_array) ? json_object_array_length(types) : 1;
    for (size_t i = 0; i < n_types; i++) {
        int k = kind_of_type(dsk_json_is(types, json_type_array) ? json_object_array_get_idx(types, i) : types), dup = 0;
        if (k < 0)
            return failf(c, path, "'type' must name JSON types");
        for (int j = 0; j < n_kinds; j++)
            dup |= kinds[j] == k;
        if (!dup)
            kinds[n_kinds++] = k;   /* seven kinds at most */
    }
    if (json_object_object_get_ex(v, "enum", &x) || json_object_object_get_ex(v, "const", &x))
        return compile_enum(c, v, path, kinds, n_kinds);
    struct json_object *branches = NULL;
    const char *branch_key = json_object_object_get_ex(v, "anyOf", &branches) ? "anyOf"
                             : json_object_object_get_ex(v, "oneOf", &branches) ? "oneOf" : NULL;
    if (branch_key) {
        json_object_object_foreach(v, k2, v2) {
            (void)v2;
            if (strcmp(k2, branch_key) != 0 && !is_annotation(k2))
                return failf(c, path, "'%s' beside '%s' is not supported", k2, branch_key);
        }
        if (!dsk_json_is(branches, json_type_array) || json_object_array_length(branches) == 0)
            return failf(c, path, "'%s' must be a non-empty array", branch_key);
        int count = (int)json_object_array_length(branches);
        if (count > DSK_SCHEMA_MAX_ALTS)
            return failf(c, path, "more than %d branches", DSK_SCHEMA_MAX_ALTS);
        int node = new_node(c, NODE_UNION, path);
        if (node < 0)
            return -1;
        remember(c, v, node);
        int branch[DSK_SCHEMA_MAX_ALTS];
        for (int i = 0; i < count; i++) {
            char sub[512];
            snprintf(sub, sizeof sub, "%s/%s/%d", path, branch_key, i);
            if ((branch[i] = compile(c, json_object_array_get_idx(branches, (size_t)i), sub)) < 0)
                return -1;
        }
        /* anyOf's integer beside a number: the number takes integers too (not
         * for oneOf, where an integer would match both and so neither) */
        int kept = 0;
        for (int i = 0; i < count; i++) {
            int dropped = 0;
            for (int j = 0; j < count && branch_key[0] == 'a'; j++)
                dropped |= c->s->nodes[branch[i]].kind == NODE_INTEGER && c->s->nodes[branch[j]].kind == NODE_NUMBER;
            if (!dropped)
                branch[kept++] = branch[i];
        }
        c->s->nodes[node].one_of = branch_key[0] == 'o';
        return make_union(c, branch, kept, path, node);
    }
    if (!n_kinds && has_kind_keywords(v)) {
        /* no type: any kind of value, each held to the keywords for its kind */
        static const int all[] = {NODE_OBJECT, NODE_ARRAY, NODE_STRING, NODE_NUMBER, NODE_BOOLEAN, NODE_NULL};
        memcpy(kinds, all, sizeof all);
        n_kinds = 6;
    } else if (!n_kinds) {
        remember(c, v, 0);
        return 0;
    }
    return compile_kinds(c, v, kinds, n_kinds, path);
}

/* Only a $ref to a $ref, with no schema between, can loop: a schema
 * with keywords of its own is remembered before its children compile.
 * So the hops are counted from the last such schema. */
static int compile(compiler *c, struct json_object *v, const char *path)
{
    struct json_object *ref;
    int saved = c->ref_depth;
    if (!(dsk_json_is(v, json_type_object) && json_object_object_get_ex(v, "$ref", &ref)))
        c->ref_depth = 0;
    int node = compile_inner(c, v, path);
    c->ref_depth = saved;
    return node;
}

/* Each node's need (see json_schema_nodes.h): a fixed point from "no
 * value", as needs only fall and recursion makes cycles. */
static void compute_needs(dsk_json_schema *s)
{
    for (int i = 0; i < s->n_nodes; i++)
        s->nodes[i].need = DSK_SCHEMA_NO_VALUE;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < s->n_nodes; i++) {
            dsk_schema_node *n = &s->nodes[i];
            int need = DSK_SCHEMA_NO_VALUE;
            switch (n->kind) {
            case NODE_NEVER:
                break;
            case NODE_ENUM:
                for (int k = 0; k < n->n; k++)
                    need = s->texts[n->at + (uint32_t)k].nest < need ? s->texts[n->at + (uint32_t)k].nest : need;
                break;
            case NODE_ARRAY:
                need = n->min == 0 ? 1 : 1 + s->nodes[n->child].need;
                break;
            case NODE_OBJECT:
                need = 1;
                for (int k = 0; k < n->n; k++)
                    if (n->required >> k & 1) {
                        int v = 1 + s->nodes[s->texts[n->at + (uint32_t)k].node].need;
                        need = v > need ? v : need;
                    }
                break;
            case NODE_UNION:
                for (int k = 0; k < n->n; k++)
                    need = s->nodes[s->alts[n->at + (uint32_t)k]].need < need ? s->nodes[s->alts[n->at + (uint32_t)k]].need
                                                                                 : need;
                break;
            default:   /* any value, strings, numbers, booleans, null */
                need = 0;
            }
            if (need > DSK_JSON_MAX_DEPTH)
                need = DSK_SCHEMA_NO_VALUE;   /* deeper than the automaton goes: as good as none */
            if (need < n->need) {
                n->need = (uint8_t)need;
                changed = 1;
            }
        }
    }
}

/* The bytes each node's value may begin with.  A union takes its
 * branches' (a fixed point: branches may be unions), but only of those
 * that have a value, and they must part at the first byte: the automaton
 * never goes back. */
static int first_bytes(compiler *c)
{
    dsk_json_schema *s = c->s;
    for (int i = 0; i < s->n_nodes; i++) {
        dsk_schema_node *n = &s->nodes[i];
        switch (n->kind) {
        case NODE_ANY: {
            static const char all[] = "{[\"-0123456789tfn";
            for (const char *p = all; *p; p++)
                set_first(n, (unsigned char)*p);
            break;
        }
        case NODE_OBJECT: set_first(n, '{'); break;
        case NODE_ARRAY: set_first(n, '['); break;
        case NODE_STRING: set_first(n, '"'); break;
        case NODE_NUMBER:
        case NODE_INTEGER:
            set_first(n, '-');
            for (unsigned char d = '0'; d <= '9'; d++)
                set_first(n, d);
            break;
        case NODE_BOOLEAN: set_first(n, 't'); set_first(n, 'f'); break;
        case NODE_NULL: set_first(n, 'n'); break;
        case NODE_ENUM:
            for (int k = 0; k < n->n; k++)
                set_first(n, (unsigned char)s->pool[s->texts[n->at + (uint32_t)k].off]);
            break;
        }
        if (n->need == DSK_SCHEMA_NO_VALUE)
            memset(n->first, 0, sizeof n->first);
    }
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < s->n_nodes; i++) {
            dsk_schema_node *n = &s->nodes[i];
            if (n->kind != NODE_UNION || n->need == DSK_SCHEMA_NO_VALUE)
                continue;
            for (int k = 0; k < n->n; k++)
                for (int b = 0; b < 32; b++) {
                    uint8_t add = s->nodes[s->alts[n->at + (uint32_t)k]].first[b] & (uint8_t)~n->first[b];
                    n->first[b] |= add;
                    changed |= add != 0;
                }
        }
    }
    /* In oneOf, numbers that begin differently can still be equal (0 and
     * -0.0, 1 and 1e0): any two branches that take numbers conflict. */
    uint8_t numeric[32] = {0};
    for (const char *p = "-0123456789"; *p; p++)
        numeric[(unsigned char)*p >> 3] |= (uint8_t)(1u << (*p & 7));
    for (int i = 0; i < s->n_nodes; i++) {
        const dsk_schema_node *n = &s->nodes[i];
        if (n->kind != NODE_UNION)
            continue;
        for (int a = 0; a < n->n; a++)
            for (int b = a + 1; b < n->n; b++) {
                int na = s->alts[n->at + (uint32_t)a], nb = s->alts[n->at + (uint32_t)b];
                const uint8_t *fa = s->nodes[na].first, *fb = s->nodes[nb].first;
                int both = -1, nums_a = 0, nums_b = 0;
                for (int k = 0; k < 32; k++) {
                    nums_a |= (fa[k] & numeric[k]) != 0;
                    nums_b |= (fb[k] & numeric[k]) != 0;
                    for (int bit = 0; bit < 8 && both < 0; bit++)
                        if ((fa[k] & fb[k]) >> bit & 1)
                            both = k * 8 + bit;
                }
                if (both < 0 && n->one_of && nums_a && nums_b)
                    both = '0';
                if (both >= 0)
                    return failf(c, c->path_of[i],
                                 "%s and %s may both begin with '%c'%s: anyOf, oneOf, type lists and schemas "
                                 "without a type need branches that begin differently (an object and a string, "
                                 "not two objects)", c->path_of[na], c->path_of[nb], both,
                                 n->one_of && nums_a && nums_b ? " (oneOf: both take numbers)" : "");
            }
    }
    return 0;
}

dsk_json_schema *dsk_json_schema_compile(struct json_object *schema, char *msg, size_t msg_len)
{
    compiler c = {.s = dsk_xcalloc(1, sizeof(dsk_json_schema)), .root = schema, .msg = msg, .msg_len = msg_len};
    new_node(&c, NODE_ANY, "");   /* node 0: any value, the children of free containers */
    int rc = compile(&c, schema, "");
    if (rc >= 0) {
        compute_needs(c.s);
        if (c.s->nodes[rc].need == DSK_SCHEMA_NO_VALUE)
            rc = failf(&c, "", "no value is valid against the schema (or none nests fewer than %d levels)",
                       DSK_JSON_MAX_DEPTH);
    }
    if (rc >= 0 && first_bytes(&c))
        rc = -1;
    for (int i = 0; i < c.s->n_nodes; i++)
        free(c.path_of[i]);
    free(c.path_of);
    free(c.memo_obj);
    free(c.memo_node);
    if (rc < 0) {
        dsk_json_schema_free(c.s);
        return NULL;
    }
    c.s->root = (uint16_t)rc;
    return c.s;
}

void dsk_json_schema_free(dsk_json_schema *s)
{
    if (!s)
        return;
    free(s->nodes);
    free(s->texts);
    free(s->alts);
    free(s->pool);
    free(s);
}

void dsk_json_schema_order_keys(dsk_json_schema *s) { s->ordered = 1; }

int dsk_json_schema_admits(const dsk_json_schema *s, unsigned char c)
{
    return s->nodes[s->root].first[c >> 3] >> (c & 7) & 1;
}
