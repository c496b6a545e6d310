/* JSON on json-c: parsing one value with a precise error, and compact
 * output.  json-c keeps object key order and writes numbers back exactly
 * as read (64-bit integers, the source text of doubles), so documents pass
 * through dsk tools without their other fields changing. */
#ifndef DSK_CORE_JSON_H
#define DSK_CORE_JSON_H

#include <json-c/json.h>
#include <stddef.h>

#include "core/buf.h"

/* Parses exactly one JSON value from s[0..n) (surrounding whitespace
 * allowed).  On failure returns NULL and writes "what at column N" to msg. */
struct json_object *dsk_json_parse(const char *s, size_t n, char *msg, size_t msg_len);

/* Whether the JSON text s[0..n) holds a string escape json-c does not
 * keep: \u0000 (json-c cuts an object key there) or a lone surrogate
 * (read as U+FFFD).  Values are unchanged for most uses; a schema's
 * names and constants must not be. */
int dsk_json_has_lossy_escape(const char *s, size_t n);

/* Appends the compact serialization of o (no slash escaping). */
void dsk_json_append(struct json_object *o, dsk_buf *out);

/* A JSON number for the double v, written in the fewest digits (15 to
 * 17) that read back as v: 0.95, not json-c's 0.94999999999999996; JSON
 * null (NULL) for NaN and infinities, which json-c would write as -nan. */
struct json_object *dsk_json_new_double(double v);
/* Its text alone, as %g writes it (1, not 1.0), into out[0..n). */
void dsk_json_double_text(double v, char *out, size_t n);

/* The string value of key in obj, or NULL if absent or not a string. */
struct json_object *dsk_json_get_string(struct json_object *obj, const char *key);

/* The deepest nesting of arrays and objects dsk_json_parse reads (an
 * answer generated under a schema nests at most DSK_JSON_MAX_DEPTH, 32). */
#define DSK_JSON_PARSE_DEPTH 256

/* Whether o is a JSON value of type t.  json-c holds JSON's null as a NULL
 * pointer: a key whose value is null gives NULL, which is json_type_null. */
static inline int dsk_json_is(struct json_object *o, enum json_type t)
{
    return o ? json_object_is_type(o, t) : t == json_type_null;
}

#endif
