#include "text/json_prefix.h"

#include <string.h>

/* Where the text is.  Numbers take a state per part, so whether one may
 * end here is the state alone. */
enum {
    AT_FAILED,
    AT_START,        /* before the value; whitespace */
    AT_VALUE,        /* a value is due (after ':' or ',' in an array) */
    AT_ARRAY_FIRST,  /* after '[': a value or ']' */
    AT_OBJECT_FIRST, /* after '{': a key or '}' */
    AT_KEY,          /* after ',' in an object: a key */
    AT_COLON,        /* after a key */
    AT_AFTER,        /* after a value in a container: ',' or its close */
    AT_DONE,         /* the top value is closed: whitespace only */
    AT_STRING,       /* inside a string */
    AT_ESCAPE,       /* after a backslash */
    AT_HEX,          /* in \uXXXX: left digits to go */
    AT_UTF8,         /* in a multi-byte sequence: left continuation bytes, detail the next one's range */
    AT_LITERAL,      /* in true/false/null: detail which, left bytes to go */
    AT_MINUS,        /* '-': a digit is due */
    AT_ZERO,         /* a leading 0: '.', 'e' or the end */
    AT_INT,          /* 1-9 and digits */
    AT_POINT,        /* '.': a digit is due */
    AT_FRACTION,     /* digits after the point */
    AT_EXP_MARK,     /* 'e': a sign or a digit is due */
    AT_EXP_SIGN,     /* the exponent's sign: a digit is due */
    AT_EXPONENT,     /* the exponent's digits */
};

/* The ranges a UTF-8 sequence's next byte may take (RFC 3629's table). */
enum { NEXT_ANY, NEXT_A0_BF, NEXT_80_9F, NEXT_90_BF, NEXT_80_8F };

static const char *const literals[3] = {"true", "false", "null"};

void dsk_json_prefix_init(dsk_json_prefix *s, int top_object)
{
    memset(s, 0, sizeof *s);
    s->at = AT_START;
    s->top_object = (uint8_t)(top_object != 0);
}

static int fail(dsk_json_prefix *s)
{
    s->at = AT_FAILED;
    return 0;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* A value has ended: back in the container around it, or done. */
static int value_ended(dsk_json_prefix *s)
{
    s->at = s->depth ? AT_AFTER : AT_DONE;
    return 1;
}

static int open_container(dsk_json_prefix *s, int object)
{
    if (s->depth == DSK_JSON_MAX_DEPTH)
        return fail(s);
    s->objects = object ? s->objects | 1u << s->depth : s->objects & ~(1u << s->depth);
    s->depth++;
    s->at = object ? AT_OBJECT_FIRST : AT_ARRAY_FIRST;
    return 1;
}

static int close_container(dsk_json_prefix *s, int object)
{
    if (!s->depth || (int)(s->objects >> (s->depth - 1) & 1) != object)
        return fail(s);
    s->depth--;
    return value_ended(s);
}

/* The first byte of a value. */
static int begin_value(dsk_json_prefix *s, unsigned char c)
{
    if (s->at == AT_START && s->top_object && c != '{')
        return fail(s);
    s->space = 0;
    switch (c) {
    case '{': return open_container(s, 1);
    case '[': return open_container(s, 0);
    case '"': s->at = AT_STRING; s->in_key = 0; return 1;
    case '-': s->at = AT_MINUS; return 1;
    case '0': s->at = AT_ZERO; return 1;
    case 't': case 'f': case 'n':
        s->detail = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->left = (uint8_t)(strlen(literals[s->detail]) - 1);
        s->at = AT_LITERAL;
        return 1;
    default:
        if (c >= '1' && c <= '9') {
            s->at = AT_INT;
            return 1;
        }
        return fail(s);
    }
}

/* A byte where structure is read (not inside a string, literal or number). */
static int structural(dsk_json_prefix *s, unsigned char c)
{
    if (is_space(c)) {
        if (s->space == DSK_JSON_MAX_SPACE)
            return fail(s);
        s->space++;
        return 1;
    }
    switch (s->at) {
    case AT_START:
    case AT_VALUE:
        return begin_value(s, c);
    case AT_ARRAY_FIRST:
        if (c == ']') {
            s->space = 0;
            return close_container(s, 0);
        }
        return begin_value(s, c);
    case AT_OBJECT_FIRST:
    case AT_KEY:
        s->space = 0;
        if (c == '"') {
            s->at = AT_STRING;
            s->in_key = 1;
            return 1;
        }
        return s->at == AT_OBJECT_FIRST && c == '}' ? close_container(s, 1) : fail(s);
    case AT_COLON:
        s->space = 0;
        if (c != ':')
            return fail(s);
        s->at = AT_VALUE;
        return 1;
    case AT_AFTER:
        s->space = 0;
        if (c == ',') {
            s->at = s->objects >> (s->depth - 1) & 1 ? AT_KEY : AT_VALUE;
            return 1;
        }
        if (c == '}' || c == ']')
            return close_container(s, c == '}');
        return fail(s);
    default:   /* AT_DONE */
        return fail(s);
    }
}

/* A byte inside a string (after the opening quote). */
static int in_string(dsk_json_prefix *s, unsigned char c)
{
    switch (s->at) {
    case AT_ESCAPE:
        if (c == 'u') {
            s->at = AT_HEX;
            s->left = 4;
            return 1;
        }
        if (!strchr("\"\\/bfnrt", c) || !c)
            return fail(s);
        s->at = AT_STRING;
        return 1;
    case AT_HEX:
        if (!is_hex(c))
            return fail(s);
        if (--s->left == 0)
            s->at = AT_STRING;
        return 1;
    case AT_UTF8: {
        static const uint8_t lo[] = {0x80, 0xA0, 0x80, 0x90, 0x80}, hi[] = {0xBF, 0xBF, 0x9F, 0xBF, 0x8F};
        if (c < lo[s->detail] || c > hi[s->detail])
            return fail(s);
        s->detail = NEXT_ANY;
        if (--s->left == 0)
            s->at = AT_STRING;
        return 1;
    }
    default:   /* AT_STRING */
        if (c == '"') {
            if (s->in_key) {
                s->at = AT_COLON;
                return 1;
            }
            return value_ended(s);
        }
        if (c == '\\') {
            s->at = AT_ESCAPE;
            return 1;
        }
        if (c < 0x20)
            return fail(s);
        if (c < 0x80)
            return 1;
        /* the lead byte of a sequence: C2-DF, E0-EF, F0-F4 (RFC 3629) */
        if (c >= 0xC2 && c <= 0xDF) {
            s->left = 1, s->detail = NEXT_ANY;
        } else if (c >= 0xE0 && c <= 0xEF) {
            s->left = 2, s->detail = c == 0xE0 ? NEXT_A0_BF : c == 0xED ? NEXT_80_9F : NEXT_ANY;
        } else if (c >= 0xF0 && c <= 0xF4) {
            s->left = 3, s->detail = c == 0xF0 ? NEXT_90_BF : c == 0xF4 ? NEXT_80_8F : NEXT_ANY;
        } else {
            return fail(s);
        }
        s->at = AT_UTF8;
        return 1;
    }
}

/* A byte after a number's part in s->at.  A byte that cannot continue the
 * number ends it, if it may end here, and is then read as structure. */
static int in_number(dsk_json_prefix *s, unsigned char c)
{
    switch (s->at) {
    case AT_MINUS:
        if (!is_digit(c))
            return fail(s);
        s->at = c == '0' ? AT_ZERO : AT_INT;
        return 1;
    case AT_ZERO:
    case AT_INT:
        if (s->at == AT_INT && is_digit(c))
            return 1;
        if (c == '.') {
            s->at = AT_POINT;
            return 1;
        }
        if (c == 'e' || c == 'E') {
            s->at = AT_EXP_MARK;
            return 1;
        }
        break;
    case AT_POINT:
        if (!is_digit(c))
            return fail(s);
        s->at = AT_FRACTION;
        return 1;
    case AT_FRACTION:
        if (is_digit(c))
            return 1;
        if (c == 'e' || c == 'E') {
            s->at = AT_EXP_MARK;
            return 1;
        }
        break;
    case AT_EXP_MARK:
    case AT_EXP_SIGN:
        if (s->at == AT_EXP_MARK && (c == '+' || c == '-')) {
            s->at = AT_EXP_SIGN;
            return 1;
        }
        if (!is_digit(c))
            return fail(s);
        s->at = AT_EXPONENT;
        return 1;
    default:   /* AT_EXPONENT */
        if (is_digit(c))
            return 1;
        break;
    }
    value_ended(s);   /* the number ends before c */
    return structural(s, c);
}

int dsk_json_prefix_feed(dsk_json_prefix *s, unsigned char c)
{
    switch (s->at) {
    case AT_FAILED:
        return 0;
    case AT_STRING:
    case AT_ESCAPE:
    case AT_HEX:
    case AT_UTF8:
        return in_string(s, c);
    case AT_LITERAL:
        if (c != (unsigned char)literals[s->detail][strlen(literals[s->detail]) - s->left])
            return fail(s);
        if (--s->left == 0)
            value_ended(s);
        return 1;
    case AT_MINUS:
    case AT_ZERO:
    case AT_INT:
    case AT_POINT:
    case AT_FRACTION:
    case AT_EXP_MARK:
    case AT_EXP_SIGN:
    case AT_EXPONENT:
        return in_number(s, c);
    default:
        return structural(s, c);
    }
}

int dsk_json_prefix_feed_all(dsk_json_prefix *s, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++)
        if (!dsk_json_prefix_feed(s, p[i]))
            return 0;
    return 1;
}

int dsk_json_prefix_complete(const dsk_json_prefix *s)
{
    if (s->at == AT_DONE)
        return 1;
    /* a number at the top ends with the text */
    return s->depth == 0 && (s->at == AT_ZERO || s->at == AT_INT || s->at == AT_FRACTION || s->at == AT_EXPONENT);
}
