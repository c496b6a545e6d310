/* Token ids between their stored form (little-endian words of 2 or 4
 * bytes, as .dskt streams and dataset rows hold them) and uint32 arrays.
 * Both directions return the largest id, so that a caller checks a whole
 * run against the vocab size with one comparison and only looks for the
 * culprit when it fails: the loops stay branch-free and vectorise. */
#ifndef DSK_CORE_TOKENS_H
#define DSK_CORE_TOKENS_H

#include <stddef.h>
#include <stdint.h>

/* dst[i] = the i-th word of src, for n words of width bytes (2 or 4);
 * returns the largest (0 when n is 0). */
uint32_t dsk_tokens_widen(uint32_t *dst, const void *src, size_t n, unsigned width);
/* The reverse: src[i] as a width-byte word; a value over the width keeps
 * only its low bytes, so callers check the returned largest first. */
uint32_t dsk_tokens_narrow(void *dst, const uint32_t *src, size_t n, unsigned width);

#endif
