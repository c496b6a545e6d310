/* JSON Schema, compiled for text/json_prefix.h: the subset an automaton
 * that reads one byte at a time can hold a generated text to, with no
 * going back.  What it supports (anything else is refused by name, not
 * ignored, so a text that passes is valid against the schema):
 *
 *   type           object, array, string, number, integer, boolean,
 *                  null, or a list of them; without it, a schema with
 *                  keywords of some kinds takes any kind of value, each
 *                  held to its own kind's keywords
 *   properties, required, additionalProperties
 *                  only the listed properties are written, each at most
 *                  once, in any order (or in the order they are listed:
 *                  dsk_json_schema_order_keys); every required one
 *                  before '}'; a property whose schema is false, never
 *   items, minItems, maxItems
 *   minLength, maxLength   in code points (an escape is one, a surrogate
 *                  pair of escapes too)
 *   enum, const    written exactly as compact JSON (up to 64 values);
 *                  beside them only type and annotations
 *   anyOf, oneOf   branches that begin with different bytes (a string
 *                  and a number: yes; two objects: no)
 *   $ref           "#", "#/$defs/NAME", "#/definitions/NAME"; recursion
 *                  is fine; $id only at the top
 *   annotations    title, description, default, examples, format,
 *                  $schema, $id, $comment, deprecated, readOnly,
 *                  writeOnly, strict: no effect on the text
 *
 * A schema no value satisfies, or none that nests fewer than
 * DSK_JSON_MAX_DEPTH levels, is refused.  Each node knows the nesting its
 * smallest value needs, and the automaton enters a value only where that
 * fits, so every text it accepts can be finished.
 *
 * Keys are written as their plain JSON strings (no escapes where none are
 * needed); integers without a fraction or exponent. */
#ifndef DSK_TEXT_JSON_SCHEMA_H
#define DSK_TEXT_JSON_SCHEMA_H

#include <stddef.h>

struct json_object;
typedef struct dsk_json_schema dsk_json_schema;

/* NULL on a schema outside the subset, with the reason in msg ("at
 * /properties/age: 'minimum' is not supported"). */
dsk_json_schema *dsk_json_schema_compile(struct json_object *schema, char *msg, size_t msg_len);
void dsk_json_schema_free(dsk_json_schema *s);

/* From now on, every object's keys come in the order its properties are
 * listed: after a key, only those listed after it, up to and including
 * the next required one (OpenAI's Structured Outputs write keys so; a
 * schema can put "reasoning" before "answer"). */
void dsk_json_schema_order_keys(dsk_json_schema *s);

/* Whether a value valid against s may begin with byte c ('{': an object). */
int dsk_json_schema_admits(const dsk_json_schema *s, unsigned char c);

#endif
