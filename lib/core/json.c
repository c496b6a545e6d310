#include "core/json.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/utf8.h"

/* A tokener per thread, reused (creating one allocates its parse stack),
 * and freed when its thread exits. */
static pthread_key_t tokener_key;
static _Thread_local dsk_buf rewritten;  /* see decode_surrogate_pairs; freed with the tokener */
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;

static void free_tokener(void *t)
{
    json_tokener_free(t);
    dsk_buf_free(&rewritten);
}
static void make_key(void) { pthread_key_create(&tokener_key, free_tokener); }

static struct json_tokener *thread_tokener(void)
{
    pthread_once(&tokener_once, make_key);
    struct json_tokener *t = pthread_getspecific(tokener_key);
    if (!t) {
        /* json-c's default of 32 levels is too few for a request holding a
         * JSON schema: each level of an answer's nesting takes four or
         * five in the schema (anyOf, its array, the object, properties),
         * and answers may nest 32 levels. */
        t = json_tokener_new_ex(DSK_JSON_PARSE_DEPTH);
        json_tokener_set_flags(t, JSON_TOKENER_STRICT);
        pthread_setspecific(tokener_key, t);
    }
    return t;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
                     : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (unsigned)((c | 0x20) - 'a' + 10) : 16;
        if (d > 15)
            return 0;
        *v = *v << 4 | d;
    }
    return 1;
}

/* json-c 0.16 turns a surrogate-pair escape into U+FFFD when the code point's
 * low 16 bits fall in D800-DFFF (U+1D800, U+2D800 in CJK Extension C, ...).
 * Such pairs are rewritten here as the UTF-8 they stand for, which is the
 * same JSON text; other escapes are left to json-c.  Returns 1 if out holds
 * a rewritten copy. */
static int decode_surrogate_pairs(const char *s, size_t n, dsk_buf *out)
{
    /* only a line with a high-surrogate escape (\\uD8.. to \\uDB..) needs the walk */
    if (!memmem(s, n, "\\ud", 3) && !memmem(s, n, "\\uD", 3))
        return 0;
    int changed = 0;
    /* walk escapes from the first backslash, so "\\\\u" is not taken for "\\u" */
    size_t i = (size_t)((const char *)memchr(s, '\\', n) - s), copied = 0;
    dsk_buf_clear(out);
    while (i + 1 < n) {
        if (s[i] != '\\') {
            i++;
            continue;
        }
        unsigned hi, lo;
        if (s[i + 1] == 'u' && i + 12 <= n && hex4(s + i + 2, &hi) && hi >= 0xD800 && hi <= 0xDBFF &&
            s[i + 6] == '\\' && s[i + 7] == 'u' && hex4(s + i + 8, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
            uint32_t cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
            if ((cp & 0xF800) == 0xD800) {  /* only the pairs json-c gets wrong */
                char utf8[4];
                size_t l = dsk_utf8_encode(cp, utf8);
                dsk_buf_add(out, s + copied, i - copied);
                dsk_buf_add(out, utf8, l);
                copied = i + 12;
                changed = 1;
            }
            i += 12;
            continue;
        }
        i += 2;  /* any other escape, "\\\\" included, is two characters */
    }
    if (changed)
        dsk_buf_add(out, s + copied, n - copied);
    return changed;
}

int dsk_json_has_lossy_escape(const char *s, size_t n)
{
    int in_string = 0, after_high = 0;   /* after_high: the last escape was a high surrogate */
    for (size_t i = 0; i < n; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            if (after_high)
                return 1;
            in_string = 0;
            continue;
        }
        unsigned v;
        if (s[i] != '\\') {
            if (after_high)
                return 1;   /* a high surrogate, then no low one */
            continue;
        }
        if (i + 1 < n && s[i + 1] == 'u' && i + 6 <= n && hex4(s + i + 2, &v)) {
            int low = v >= 0xDC00 && v <= 0xDFFF;
            if (v == 0 || (low && !after_high) || (after_high && !low))
                return 1;
            after_high = v >= 0xD800 && v <= 0xDBFF;
            i += 5;
            continue;
        }
        if (after_high)
            return 1;
        i++;   /* any other escape is two characters */
    }
    return after_high;
}

/* Whether t[0..n) is a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * *integer: no fraction or exponent. */
static int json_number(const char *t, size_t n, int *integer)
{
    size_t i = t[0] == '-';
    if (i == n || t[i] < '0' || t[i] > '9' || (t[i] == '0' && i + 1 < n && t[i + 1] >= '0' && t[i + 1] <= '9'))
        return 0;
    while (i < n && t[i] >= '0' && t[i] <= '9')
        i++;
    *integer = i == n;
    if (i < n && t[i] == '.') {
        size_t d = ++i;
        while (i < n && t[i] >= '0' && t[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '+' || t[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && t[i] >= '0' && t[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* Numbers json-c would pass on changed, or as text that is not JSON
 * (strict mode still takes "1.", "-.5" and "-01", writes the first two
 * back as they came and clamps integers beyond 64 bits to the limit):
 * every number outside the strings of a text json-c has parsed is checked
 * as written.  NaN and Infinity, which Python writes, pass.  Strings with
 * a raw control character, which json-c takes too and JSON does not
 * (Python's json.loads refuses them), are refused.  0, or -1 with msg
 * set. */
static int check_numbers_and_strings(const char *s, size_t n, char *msg, size_t msg_len)
{
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if (c == '"') {   /* a string: to its closing quote, past escaped ones */
            const char *q = s + i + 1;
            for (;;) {
                q = memchr(q, '"', (size_t)(s + n - q));
                if (!q)
                    return 0;   /* json-c has checked the strings */
                size_t bs = 0;
                while (q - bs > s && q[-1 - (ptrdiff_t)bs] == '\\')
                    bs++;
                q++;
                if (bs % 2 == 0)
                    break;
            }
            for (size_t k = i + 1; k < (size_t)(q - s); k++)
                if ((unsigned char)s[k] < 0x20) {
                    snprintf(msg, msg_len, "a raw control character (U+%04X) in a string at column %zu (JSON needs it escaped)",
                             (unsigned)(unsigned char)s[k], k + 1);
                    return -1;
                }
            i = (size_t)(q - s);
            continue;
        }
        if (c == '\'') {   /* json-c takes 'single-quoted' strings: JSON has none */
            snprintf(msg, msg_len, "a single-quoted string at column %zu (JSON strings take double quotes)", i + 1);
            return -1;
        }
        if (c == '-' && i + 1 < n && (s[i + 1] == 'I' || s[i + 1] == 'N')) {   /* -Infinity */
            i++;
            continue;
        }
        if (c != '-' && (c < '0' || c > '9')) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && ((s[j] >= '0' && s[j] <= '9') || s[j] == '.' || s[j] == '-' || s[j] == '+' || s[j] == 'e' ||
                         s[j] == 'E'))
            j++;
        int integer;
        if (!json_number(s + i, j - i, &integer)) {
            snprintf(msg, msg_len, "the number %.*s at column %zu is not JSON", (int)(j - i > 40 ? 40 : j - i), s + i,
                     i + 1);
            return -1;
        }
        if (integer) {   /* within int64 when negative, uint64 otherwise */
            const char *digits = s + i + (c == '-');
            size_t nd = j - i - (c == '-');
            const char *limit = c == '-' ? "9223372036854775808" : "18446744073709551615";
            size_t nl = strlen(limit);
            if (nd > nl || (nd == nl && memcmp(digits, limit, nl) > 0)) {
                snprintf(msg, msg_len, "the integer at column %zu is out of range (beyond 64 bits: the JSON library would change it)",
                         i + 1);
                return -1;
            }
        }
        i = j;
    }
    return 0;
}

struct json_object *dsk_json_parse(const char *s, size_t n, char *msg, size_t msg_len)
{
    if (decode_surrogate_pairs(s, n, &rewritten)) {
        s = rewritten.data;
        n = rewritten.len;
    }
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        snprintf(msg, msg_len, "a UTF-8 byte-order mark at column 1 (JSON text begins without one)");
        return NULL;
    }
    const char *nul = memchr(s, 0, n);   /* json-c would take it for the end of the text */
    if (nul) {
        snprintf(msg, msg_len, "a NUL byte at column %zu (JSON has none; in a string it is written \\u0000)",
                 (size_t)(nul - s) + 1);
        return NULL;
    }
    struct json_tokener *tokener = thread_tokener();
    json_tokener_reset(tokener);
    size_t start = 0;
    while (start < n && (s[start] == ' ' || s[start] == '\t' || s[start] == '\r'))
        start++;
    struct json_object *o = json_tokener_parse_ex(tokener, s + start, (int)(n - start));
    enum json_tokener_error e = json_tokener_get_error(tokener);
    size_t end = start + json_tokener_get_parse_end(tokener);
    int cut = !o && e == json_tokener_continue;
    if (cut) {
        /* A number (or literal) that ends the text waits for a delimiter:
         * the end of the text is one. */
        o = json_tokener_parse_ex(tokener, "", 1);
        e = json_tokener_get_error(tokener);
        end = n;
    }
    if (!o && e == json_tokener_success) {   /* the text is null */
        snprintf(msg, msg_len, "null, not a JSON object");
        return NULL;
    }
    if (!o || e != json_tokener_success) {
        if (o)
            json_object_put(o);
        if (cut)
            snprintf(msg, msg_len, "unexpected end of line at column %zu", n + 1);
        else
            snprintf(msg, msg_len, "%s at column %zu", json_tokener_error_desc(e), end + 1);
        return NULL;
    }
    while (end < n && (s[end] == ' ' || s[end] == '\t' || s[end] == '\r'))
        end++;
    if (end < n) {
        json_object_put(o);
        snprintf(msg, msg_len, "unexpected text after the value at column %zu", end + 1);
        return NULL;
    }
    if (check_numbers_and_strings(s, n, msg, msg_len)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

void dsk_json_append(struct json_object *o, dsk_buf *out)
{
    size_t len;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    dsk_buf_add(out, s, len);
}

void dsk_json_double_text(double v, char *out, size_t n)
{
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(out, n, "%.*g", digits, v);
        if (strtod(out, NULL) == v)
            break;
    }
}

struct json_object *dsk_json_new_double(double v)
{
    if (!isfinite(v))
        return NULL;   /* JSON has no NaN or infinity */
    char s[40];
    dsk_json_double_text(v, s, sizeof s - 2);
    if (!strpbrk(s, ".eEni"))
        strcat(s, ".0");   /* still a double when read back, as json-c writes 1.0 */
    return json_object_new_double_s(v, s);
}

struct json_object *dsk_json_get_string(struct json_object *obj, const char *key)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return v;
}
