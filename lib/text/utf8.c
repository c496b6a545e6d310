#include "text/utf8.h"

size_t dsk_utf8_seq_len(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && s[1] < 0xA0)
            return 0;  /* overlong */
        if (c == 0xED && s[1] >= 0xA0)
            return 0;  /* surrogate */
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && s[1] < 0x90)
            return 0;  /* overlong */
        if (c == 0xF4 && s[1] >= 0x90)
            return 0;  /* above U+10FFFF */
        return 4;
    }
    return 0;
}

size_t dsk_utf8_find_invalid(const char *str, size_t n)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, eight bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = dsk_utf8_seq_len(s + i, n - i);
        if (!l)
            return i;
        i += l;
    }
    return n;
}

/* Length of the maximal subpart of an ill-formed sequence at s: the lead
 * byte plus the continuation bytes that would still have been valid. */
static size_t maximal_subpart(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c < 0xE0) need = 1;
    else if (c >= 0xE0 && c < 0xF0) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c < 0xF5) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 1;
    size_t i = 1;
    while (i <= need && i < n) {
        uint8_t b = s[i];
        if (b < lo || b > hi)
            break;
        lo = 0x80;
        hi = 0xBF;
        i++;
    }
    return i;
}

size_t dsk_utf8_repair(const char *str, size_t n, dsk_buf *out)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t replaced = 0, i = 0;
    while (i < n) {
        size_t bad = i + dsk_utf8_find_invalid(str + i, n - i);
        dsk_buf_add(out, str + i, bad - i);
        if (bad >= n)
            break;
        dsk_buf_add(out, "\xEF\xBF\xBD", 3);
        replaced++;
        i = bad + maximal_subpart(s + bad, n - bad);
    }
    return replaced;
}

void dsk_utf8_char_offsets(const char *str, size_t n, const size_t *at, size_t m, size_t *out, size_t *pos,
                           size_t *count)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = *pos, chars = *count;
    for (size_t j = 0; j < m; j++) {
        while (i < n) {
            size_t len = dsk_utf8_seq_len(s + i, n - i);
            int settled = len != 0;
            if (!len) {
                len = maximal_subpart(s + i, n - i);
                settled = i + len < n;   /* a cut sequence at the end may be whole once more bytes come */
            }
            if (i + len > at[j])
                break;
            chars++;
            i += len;
            if (settled)
                *pos = i, *count = chars;
        }
        out[j] = chars;
    }
}

size_t dsk_utf8_encode(uint32_t cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Bytes a UTF-8 sequence starting with lead byte c has; 1 for anything
 * that cannot start one (it is then final as it is). */
static size_t lead_len(unsigned char c)
{
    /* C0, C1 and F5-FF lead nothing valid: overlong or past U+10FFFF */
    return c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF5 ? 4 : 1;
}

size_t dsk_utf8_whole(const char *s, size_t from, size_t n)
{
    /* the lead byte of the last character: at most 3 continuation bytes back */
    size_t q = n;
    while (q > from && n - q < 3 && ((unsigned char)s[q - 1] & 0xC0) == 0x80)
        q--;
    if (q > from) {
        unsigned char lead = (unsigned char)s[q - 1];
        if (lead >= 0xC0 && n - (q - 1) < lead_len(lead))
            return q - 1;
    }
    return n;
}
