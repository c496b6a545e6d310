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
 *     past U+10FFFF) and no raw control characters. */
#ifndef DSK_TEXT_JSON_PREFIX_H
#define DSK_TEXT_JSON_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#define DSK_JSON_MAX_DEPTH 32
#define DSK_JSON_MAX_SPACE 24

typedef struct dsk_json_prefix {
    uint8_t at;          /* where in the grammar (json_prefix.c's enum) */
    uint8_t depth;       /* open objects and arrays */
    uint8_t left;        /* bytes left: of a literal, a \u escape or a UTF-8 sequence */
    uint8_t detail;      /* which literal; the range of a UTF-8 sequence's next byte */
    uint8_t space;       /* whitespace bytes in a row */
    uint8_t top_object;  /* 1: the text must be one object */
    uint8_t in_key;      /* the string being read is an object's key */
    uint8_t pad;
    uint32_t objects;    /* bit d: the container at depth d+1 is an object (else an array) */
} dsk_json_prefix;

/* A state before any byte: for one JSON value of any kind, or (top_object)
 * for one object, as OpenAI's response_format json_object asks. */
void dsk_json_prefix_init(dsk_json_prefix *s, int top_object);

/* Feeds one byte: 1 if the text is still the beginning of a JSON text,
 * 0 if not (s is then left in a failed state that refuses everything). */
int dsk_json_prefix_feed(dsk_json_prefix *s, unsigned char c);

/* Feeds n bytes; 1 if all were taken. */
int dsk_json_prefix_feed_all(dsk_json_prefix *s, const void *bytes, size_t n);

/* 1 when the text so far is a whole JSON text: the value is closed (a
 * number at the top counts as closed), only whitespace may follow. */
int dsk_json_prefix_complete(const dsk_json_prefix *s);

#endif
