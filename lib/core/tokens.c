#include "core/tokens.h"

#include <endian.h>
#include <string.h>

/* The words go through memcpy (unaligned, and a big-endian host swaps
 * them); the simd pragmas vectorise the loops, which -O2 alone does not. */

uint32_t dsk_tokens_widen(uint32_t *dst, const void *src, size_t n, unsigned width)
{
    const uint8_t *p = src;
    uint32_t largest = 0;
    if (width == 2) {
#pragma omp simd reduction(max : largest)
        for (size_t i = 0; i < n; i++) {
            uint16_t w;
            memcpy(&w, p + 2 * i, 2);
            dst[i] = le16toh(w);
            largest = dst[i] > largest ? dst[i] : largest;
        }
    } else {
#pragma omp simd reduction(max : largest)
        for (size_t i = 0; i < n; i++) {
            uint32_t w;
            memcpy(&w, p + 4 * i, 4);
            dst[i] = le32toh(w);
            largest = dst[i] > largest ? dst[i] : largest;
        }
    }
    return largest;
}

uint32_t dsk_tokens_narrow(void *dst, const uint32_t *src, size_t n, unsigned width)
{
    uint8_t *p = dst;
    uint32_t largest = 0;
    if (width == 2) {
#pragma omp simd reduction(max : largest)
        for (size_t i = 0; i < n; i++) {
            uint16_t w = htole16((uint16_t)src[i]);
            memcpy(p + 2 * i, &w, 2);
            largest = src[i] > largest ? src[i] : largest;
        }
    } else {
#pragma omp simd reduction(max : largest)
        for (size_t i = 0; i < n; i++) {
            uint32_t w = htole32(src[i]);
            memcpy(p + 4 * i, &w, 4);
            largest = src[i] > largest ? src[i] : largest;
        }
    }
    return largest;
}
