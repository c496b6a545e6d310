/* A compiled JSON schema (text/json_schema.h), as json_prefix.c reads it:
 * a graph of nodes, one per schema object ($ref makes it cyclic). */
#ifndef DSK_TEXT_JSON_SCHEMA_NODES_H
#define DSK_TEXT_JSON_SCHEMA_NODES_H

#include <stdint.h>

enum {
    NODE_ANY,       /* any JSON value (children are NODE_ANY too) */
    NODE_OBJECT,
    NODE_ARRAY,
    NODE_STRING,
    NODE_NUMBER,
    NODE_INTEGER,
    NODE_BOOLEAN,
    NODE_NULL,
    NODE_ENUM,      /* one of some JSON texts, byte for byte */
    NODE_UNION,     /* one of some nodes, told apart by the first byte */
    NODE_NEVER,     /* no value (the schema false) */
};

#define DSK_SCHEMA_MAX_ALTS 64     /* enum values, properties of an object, union branches */
#define DSK_SCHEMA_MAX_NODES 4096
#define DSK_SCHEMA_NO_VALUE 255    /* need of a node no finite value satisfies */

typedef struct dsk_schema_node {
    uint8_t kind;
    uint8_t free_keys;       /* object: any keys (no properties listed), each value a child */
    uint8_t one_of;          /* union: from oneOf (a value must match exactly one branch) */
    /* Objects and arrays its smallest value opens, one inside another
     * (0 for a string), or DSK_SCHEMA_NO_VALUE: the automaton enters a
     * value only where it fits under the depth limit, so it never walks
     * into a value it cannot finish. */
    uint8_t need;
    uint16_t n;              /* object: properties; enum: values; union: branches */
    uint16_t child;          /* array: its items; object with free keys: their values */
    uint32_t at;             /* object: first property in texts; enum: first value in texts;
                              * union: first branch in alts */
    uint32_t min, max;       /* array: items; string: characters */
    uint64_t required;       /* object: bit k for property k */
    uint8_t first[32];       /* bit c: a value may begin with byte c */
} dsk_schema_node;

typedef struct dsk_schema_text {
    uint32_t off, len;       /* in pool */
    uint16_t node;           /* a property's value (unused for enum values) */
    uint8_t nest;            /* an enum value: how deep its objects and arrays go */
} dsk_schema_text;

struct dsk_json_schema {
    dsk_schema_node *nodes;
    int n_nodes, cap_nodes;
    dsk_schema_text *texts;  /* property keys (the bytes after the opening quote, closing quote
                              * included) and enum values (whole compact JSON texts) */
    int n_texts, cap_texts;
    uint16_t *alts;          /* union branches */
    int n_alts, cap_alts;
    char *pool;
    uint32_t pool_len, pool_cap;
    uint16_t root;           /* the node of the whole text */
    int ordered;             /* objects' keys in the order of their properties (dsk_json_schema_order_keys) */
};

#endif
