/* UTF-8 validation, repair and decoding. */
#ifndef DSK_TEXT_UTF8_H
#define DSK_TEXT_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is invalid
 * (overlong forms, surrogates and code points above U+10FFFF included). */
size_t dsk_utf8_seq_len(const uint8_t *s, size_t n);

/* Offset of the first invalid byte, or n if all of s is valid. */
size_t dsk_utf8_find_invalid(const char *s, size_t n);

/* Appends s to out with each maximal invalid subpart replaced by U+FFFD
 * (the WHATWG / Unicode "substitution of maximal subparts" practice).
 * Returns the number of replacements. */
size_t dsk_utf8_repair(const char *s, size_t n, dsk_buf *out);

/* n, or where the last character of s[0..n) begins if it runs past n
 * (bytes of it still to come: a text cut for streaming, or at a
 * boundary), looking no further back than from.  A byte that cannot lead
 * a sequence is taken as whole. */
size_t dsk_utf8_whole(const char *s, size_t from, size_t n);

/* For each of the m byte offsets at[] (ascending), the characters of s as
 * dsk_utf8_repair writes it (a valid sequence or a maximal invalid
 * subpart each) that end at or before it, into out[]: where a token that
 * begins at that byte begins in the repaired text.  The count starts at
 * byte *pos with *count characters before it (0 and 0 for all of s) and
 * both are left where a later call, with offsets from the last one on and
 * s perhaps grown, may go on: text that grows a token at a time is
 * counted once. */
void dsk_utf8_char_offsets(const char *s, size_t n, const size_t *at, size_t m, size_t *out, size_t *pos,
                           size_t *count);

/* Decodes the code point at s (which must be valid UTF-8) and its length. */
static inline uint32_t dsk_utf8_decode(const uint8_t *s, size_t *len)
{
    uint8_t c = s[0];
    if (c < 0x80) { *len = 1; return c; }
    if (c < 0xE0) { *len = 2; return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F); }
    if (c < 0xF0) {
        *len = 3;
        return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    }
    *len = 4;
    return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
           ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* Encodes cp into out (at least 4 bytes); returns the length. */
size_t dsk_utf8_encode(uint32_t cp, char *out);

#endif
