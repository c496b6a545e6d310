/* Whether a text, fed a byte at a time, is still the beginning of a JSON
 * text (RFC 8259): the automaton behind dsk-serve's JSON mode, which lets
 * the model draw only tokens that keep its answer valid JSON.
 *
 * The state is a small value, copied freely: a caller tries a token by
 * feeding its bytes to a copy.  Once feeding fails, every longer text with
 * that beginning fails too (the set of valid beginnings is prefix-closed),
 * which is what lets token masks skip whole runs of a sorted vocabulary.
 *
 * Beyond RFC 8259, for generated text:
 *   - nesting stops at DSK_JSON_MAX_DEPTH (json-c's default limit);
 *   - at most DSK_JSON_MAX_SPACE whitespace bytes in a row outside strings
 *     (room for a newline and indentation, not for a model that would
 *     emit blank lines until max_tokens);
 *   - strings hold valid UTF-8 (no overlongs, surrogates or code points
 *     past U+10FFFF) and no raw control characters.
 *
 * Under a schema (text/json_schema.h) each byte must also keep the value
 * valid against it: a key must begin one of the properties not yet
 * written, '}' waits for the required ones, ']' for minItems, and so on.
 * Every state the automaton accepts can still be completed (short of the
 * depth limit, which a schema that demands endless nesting reaches). */
#ifndef DSK_TEXT_JSON_PREFIX_H
#define DSK_TEXT_JSON_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#define DSK_JSON_MAX_DEPTH 32
#define DSK_JSON_MAX_SPACE 24

struct dsk_json_schema;

/* An open object or array, under a schema. */
typedef struct dsk_json_frame {
    uint16_t node;       /* its schema node */
    uint16_t prop;       /* object: the property whose value is read */
    uint32_t count;      /* array: items begun */
    uint64_t seen;       /* object: bit k, property k was written */
} dsk_json_frame;

typedef struct dsk_json_prefix {
    const struct dsk_json_schema *schema;   /* NULL: any JSON */
    uint64_t cand;       /* schema: the keys or enum values the bytes so far still match */
    uint32_t objects;    /* bit d: the container at depth d+1 is an object (else an array) */
    uint32_t pos;        /* schema: bytes of a key or enum value matched; characters of a string;
                          * digits of a number's integer part or exponent */
    uint16_t value;      /* schema: the node of the value being read, or due next */
    uint16_t hex;        /* the digits of a \u escape so far */
    uint8_t at;          /* where in the grammar (json_prefix.c's enum) */
    uint8_t depth;       /* open objects and arrays */
    uint8_t left;        /* bytes left: of a literal, a \u escape or a UTF-8 sequence */
    uint8_t detail;      /* which literal; the range of a UTF-8 sequence's next byte; an integer */
    uint8_t space;       /* whitespace bytes in a row */
    uint8_t top_object;  /* 1: the text must be one object */
    uint8_t in_key;      /* the string being read is an object's key */
    uint8_t high;        /* the last character was a \u escape of a high surrogate */
    uint8_t space_max;   /* whitespace bytes in a row allowed (DSK_JSON_MAX_SPACE; 0: compact JSON) */
    uint8_t any_digits;  /* numbers of any length (else json_prefix.c's MAX_INT_DIGITS, MAX_EXP_DIGITS) */
    dsk_json_frame frame[DSK_JSON_MAX_DEPTH];   /* schema: [0, depth) */
} dsk_json_prefix;

/* A state before any byte: for one JSON value of any kind, or (top_object)
 * for one object, as OpenAI's response_format json_object asks. */
void dsk_json_prefix_init(dsk_json_prefix *s, int top_object);

/* A state before any byte, for one value valid against schema
 * (text/json_schema.h), which must outlive the state. */
void dsk_json_prefix_init_schema(dsk_json_prefix *s, const struct dsk_json_schema *schema);

/* No whitespace outside strings from here on: compact JSON. */
void dsk_json_prefix_compact(dsk_json_prefix *s);

/* Numbers of any length from here on.  By default a number's integer part
 * has at most 18 digits and its exponent 2, so that a generated number
 * reads back as JSON parsers hold numbers (64-bit integers, finite
 * doubles); checking a text written elsewhere needs no such bound. */
void dsk_json_prefix_any_digits(dsk_json_prefix *s);

/* *dst = *src, copying only the frames in use (a state is mostly frames). */
void dsk_json_prefix_copy(dsk_json_prefix *dst, const dsk_json_prefix *src);

/* Feeds one byte: 1 if the text is still the beginning of a JSON text,
 * 0 if not (s is then left in a failed state that refuses everything). */
int dsk_json_prefix_feed(dsk_json_prefix *s, unsigned char c);

/* Feeds n bytes; 1 if all were taken. */
int dsk_json_prefix_feed_all(dsk_json_prefix *s, const void *bytes, size_t n);

/* 1 when the text so far is a whole JSON text: the value is closed, or
 * is a number at the top (which more digits could still continue). */
int dsk_json_prefix_complete(const dsk_json_prefix *s);

/* 1 when the value is closed: only whitespace may follow. */
int dsk_json_prefix_closed(const dsk_json_prefix *s);

/* 1 when s is inside a string between characters (not in an escape or a
 * UTF-8 sequence), where any run of whole characters with no '"', '\\'
 * or control character leaves s as it is, but for counting them: *room
 * is how many more characters the string may take (UINT32_MAX: no
 * limit).  Masks take such runs without feeding them. */
int dsk_json_prefix_in_text(const dsk_json_prefix *s, uint32_t *room);

#endif
