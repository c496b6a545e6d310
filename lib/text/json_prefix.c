#include "text/json_prefix.h"

#include <stddef.h>
#include <string.h>

#include "text/json_schema_nodes.h"

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
    AT_SCHEMA_KEY,   /* schema: in a key, matching the properties in cand (pos bytes after the quote) */
    AT_ENUM,         /* schema: in a value matching the enum texts in cand (pos bytes) */
};

/* The ranges a UTF-8 sequence's next byte may take (RFC 3629's table). */
enum { NEXT_ANY, NEXT_A0_BF, NEXT_80_9F, NEXT_90_BF, NEXT_80_8F };

static const char *const literals[3] = {"true", "false", "null"};

void dsk_json_prefix_init(dsk_json_prefix *s, int top_object)
{
    memset(s, 0, offsetof(dsk_json_prefix, frame));
    s->at = AT_START;
    s->space_max = DSK_JSON_MAX_SPACE;
    s->top_object = (uint8_t)(top_object != 0);
}

void dsk_json_prefix_init_schema(dsk_json_prefix *s, const struct dsk_json_schema *schema)
{
    dsk_json_prefix_init(s, 0);
    s->schema = schema;
    s->value = schema->root;
}

void dsk_json_prefix_compact(dsk_json_prefix *s) { s->space_max = 0; }

void dsk_json_prefix_any_digits(dsk_json_prefix *s) { s->any_digits = 1; }

void dsk_json_prefix_copy(dsk_json_prefix *dst, const dsk_json_prefix *src)
{
    memcpy(dst, src, offsetof(dsk_json_prefix, frame) + (src->schema ? src->depth * sizeof src->frame[0] : 0));
}

static int fail(dsk_json_prefix *s)
{
    s->at = AT_FAILED;
    return 0;
}

static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int is_hex(unsigned char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* ---- the schema's side ------------------------------------------------------------------ */

static const dsk_schema_node *node_of(const dsk_json_prefix *s, int i) { return &s->schema->nodes[i]; }
static const dsk_schema_text *text_of(const dsk_json_prefix *s, const dsk_schema_node *n, int k)
{
    return &s->schema->texts[n->at + (uint32_t)k];
}
static const dsk_json_frame *top(const dsk_json_prefix *s) { return &s->frame[s->depth - 1]; }

/* Whether a value of node i, begun at the present depth, fits under the
 * depth limit (a node with no value never does). */
static int fits(const dsk_json_prefix *s, int i)
{
    return s->depth + node_of(s, i)->need <= DSK_JSON_MAX_DEPTH;
}

/* The properties the open object may still take: not written yet, and
 * with a value that fits; with keys in order, those after the last one
 * written, up to the first required one (none may be skipped). */
static uint64_t keys_open(const dsk_json_prefix *s)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    const dsk_json_frame *f = top(s);
    int ordered = s->schema->ordered;
    uint64_t open = 0;
    for (int k = ordered && f->seen ? f->prop + 1 : 0; k < n->n; k++) {
        if (!(f->seen >> k & 1) && fits(s, text_of(s, n, k)->node))
            open |= 1ull << k;
        if (ordered && n->required >> k & 1)
            break;
    }
    return open;
}

/* Whether the open object may take another key, or close. */
static int object_may_add(const dsk_json_prefix *s)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    if (n->kind == NODE_ANY)
        return 1;
    return n->free_keys ? fits(s, n->child) : keys_open(s) != 0;
}
static int object_may_close(const dsk_json_prefix *s)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    return n->kind == NODE_ANY || !(n->required & ~top(s)->seen);
}

/* Array bounds: whether the open array may take another item, or close. */
static int array_may_add(const dsk_json_prefix *s)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    return n->kind == NODE_ANY || (top(s)->count < n->max && fits(s, n->child));
}
static int array_may_close(const dsk_json_prefix *s)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    return n->kind == NODE_ANY || top(s)->count >= n->min;
}

/* The node of an open container's items (array) or free keys' values. */
static uint16_t child_of(const dsk_json_prefix *s)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    return n->kind == NODE_ANY ? 0 : n->child;
}

/* A string value under a STRING node counts its characters. */
static int counted(const dsk_json_prefix *s)
{
    return s->schema && !s->in_key && node_of(s, s->value)->kind == NODE_STRING;
}

/* One more byte of an enum value: cand keeps the texts that go on with c. */
static int structural(dsk_json_prefix *s, unsigned char c);
static int value_ended(dsk_json_prefix *s);

static int enum_byte(dsk_json_prefix *s, unsigned char c)
{
    const dsk_schema_node *n = node_of(s, s->value);
    uint64_t next = 0;
    int complete = 0;
    for (int k = 0; k < n->n; k++) {
        if (!(s->cand >> k & 1))
            continue;
        const dsk_schema_text *t = text_of(s, n, k);
        if (t->len == s->pos)
            complete = 1;
        else if ((unsigned char)s->schema->pool[t->off + s->pos] == c)
            next |= 1ull << k;
    }
    if (!next) {
        if (!complete)
            return fail(s);
        value_ended(s);   /* a number ended before c */
        return structural(s, c);
    }
    s->cand = next;
    s->pos++;
    /* a text matched whole that none goes on from is over: a string, a
     * literal, a container (its last byte closes it) or a number */
    int longer = 0;
    complete = 0;
    for (int k = 0; k < n->n; k++)
        if (next >> k & 1) {
            uint32_t len = text_of(s, n, k)->len;
            complete |= len == s->pos;
            longer |= len > s->pos;
        }
    if (complete && !longer)
        value_ended(s);
    return 1;
}

/* One more byte of a key under a schema: after the opening quote, the
 * bytes of one of the properties in cand. */
static int key_byte(dsk_json_prefix *s, unsigned char c)
{
    const dsk_schema_node *n = node_of(s, top(s)->node);
    uint64_t next = 0;
    int done = -1;
    for (int k = 0; k < n->n; k++) {
        const dsk_schema_text *t = text_of(s, n, k);
        if (s->cand >> k & 1 && t->len > s->pos && (unsigned char)s->schema->pool[t->off + s->pos] == c) {
            next |= 1ull << k;
            if (t->len == s->pos + 1u)
                done = k;   /* the closing quote: no other key goes on from here */
        }
    }
    if (!next)
        return fail(s);
    s->cand = next;
    s->pos++;
    if (done >= 0) {
        dsk_json_frame *f = &s->frame[s->depth - 1];
        f->prop = (uint16_t)done;
        f->seen |= 1ull << done;
        s->at = AT_COLON;
    }
    return 1;
}

/* ---- structure ---------------------------------------------------------------------------- */

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
    if (s->schema)
        s->frame[s->depth] = (dsk_json_frame){.node = s->value};
    s->depth++;
    s->at = object ? AT_OBJECT_FIRST : AT_ARRAY_FIRST;
    if (s->schema && !object)
        s->value = child_of(s);
    return 1;
}

static int close_container(dsk_json_prefix *s, int object)
{
    if (!s->depth || (int)(s->objects >> (s->depth - 1) & 1) != object)
        return fail(s);
    if (s->schema && !(object ? object_may_close(s) : array_may_close(s)))
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
    s->detail = 0;
    if (s->schema) {
        /* an array item is counted as it begins */
        if (s->depth && !(s->objects >> (s->depth - 1) & 1)) {
            if (!array_may_add(s))
                return fail(s);
            s->frame[s->depth - 1].count++;
        }
        const dsk_schema_node *n = node_of(s, s->value);
        if (!(n->first[c >> 3] >> (c & 7) & 1))
            return fail(s);
        while (n->kind == NODE_UNION) {   /* the one branch that begins with c */
            int k = 0;
            while (!(node_of(s, s->schema->alts[n->at + (uint32_t)k])->first[c >> 3] >> (c & 7) & 1))
                k++;
            s->value = s->schema->alts[n->at + (uint32_t)k];
            n = node_of(s, s->value);
        }
        if (!fits(s, s->value))   /* another branch may still fit */
            return fail(s);
        if (n->kind == NODE_ENUM) {
            s->cand = 0;
            for (int k = 0; k < n->n; k++)
                if (s->depth + text_of(s, n, k)->nest <= DSK_JSON_MAX_DEPTH)
                    s->cand |= 1ull << k;
            s->pos = 0;
            s->at = AT_ENUM;
            return enum_byte(s, c);
        }
        s->detail = n->kind == NODE_INTEGER;   /* numbers: no fraction, no exponent */
        s->pos = 0;                            /* strings: characters so far */
    }
    switch (c) {
    case '{': return open_container(s, 1);
    case '[': return open_container(s, 0);
    case '"': s->at = AT_STRING; s->in_key = 0; s->high = 0; return 1;
    case '-': s->at = AT_MINUS; return 1;
    case '0': s->at = AT_ZERO; s->pos = 1; return 1;
    case 't': case 'f': case 'n':
        s->detail = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->left = (uint8_t)(strlen(literals[s->detail]) - 1);
        s->at = AT_LITERAL;
        return 1;
    default:
        if (c >= '1' && c <= '9') {
            s->at = AT_INT;
            s->pos = 1;
            return 1;
        }
        return fail(s);
    }
}

/* The opening quote of a key. */
static int begin_key(dsk_json_prefix *s)
{
    s->space = 0;
    if (s->schema && !object_may_add(s))
        return fail(s);
    const dsk_schema_node *n = s->schema ? node_of(s, top(s)->node) : NULL;
    s->high = 0;   /* a pair does not reach across strings */
    if (n && n->kind == NODE_OBJECT && !n->free_keys) {
        s->cand = keys_open(s);
        s->pos = 0;
        s->at = AT_SCHEMA_KEY;
        return 1;
    }
    s->at = AT_STRING;
    s->in_key = 1;
    s->high = 0;
    return 1;
}

/* A byte where structure is read (not inside a string, literal or number). */
static int structural(dsk_json_prefix *s, unsigned char c)
{
    if (is_space(c)) {
        if (s->space >= s->space_max)
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
        if (c == '"')
            return begin_key(s);
        s->space = 0;
        return s->at == AT_OBJECT_FIRST && c == '}' ? close_container(s, 1) : fail(s);
    case AT_COLON:
        s->space = 0;
        if (c != ':')
            return fail(s);
        s->at = AT_VALUE;
        if (s->schema) {
            const dsk_schema_node *n = node_of(s, top(s)->node);
            s->value = n->kind == NODE_OBJECT && !n->free_keys ? text_of(s, n, top(s)->prop)->node : child_of(s);
        }
        return 1;
    case AT_AFTER:
        s->space = 0;
        if (c == ',') {
            int object = s->objects >> (s->depth - 1) & 1;
            if (s->schema && !(object ? object_may_add(s) : array_may_add(s)))
                return fail(s);
            s->at = object ? AT_KEY : AT_VALUE;
            if (s->schema && !object)
                s->value = child_of(s);
            return 1;
        }
        if (c == '}' || c == ']')
            return close_container(s, c == '}');
        return fail(s);
    default:   /* AT_DONE */
        return fail(s);
    }
}

/* Characters the string being read may still take (UINT32_MAX: no limit). */
static uint32_t room_left(const dsk_json_prefix *s)
{
    return counted(s) ? node_of(s, s->value)->max - s->pos : UINT32_MAX;
}

/* One more character of a string: under a length limit, if there is room. */
static int count_char(dsk_json_prefix *s)
{
    if (!room_left(s))
        return fail(s);
    if (counted(s))
        s->pos++;
    return 1;
}

/* A byte inside a string (after the opening quote).  Characters are
 * counted as code points: an escape is one, a surrogate pair of escapes
 * too (counted when its last digit shows what it is). */
static int in_string(dsk_json_prefix *s, unsigned char c)
{
    switch (s->at) {
    case AT_ESCAPE:
        if (c == 'u') {
            s->at = AT_HEX;
            s->left = 4;
            s->hex = 0;
            return 1;
        }
        if (!strchr("\"\\/bfnrt", c) || !c)
            return fail(s);
        s->at = AT_STRING;
        s->high = 0;
        return count_char(s);
    case AT_HEX: {
        if (!is_hex(c))
            return fail(s);
        /* a string with no room left takes only the second half of a pair: \uDC00-\uDFFF */
        if (!room_left(s) &&
            ((s->left == 4 && (c | 0x20) != 'd') || (s->left == 3 && (c | 0x20) < 'c')))
            return fail(s);
        s->hex = (uint16_t)(s->hex << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10));
        if (--s->left)
            return 1;
        s->at = AT_STRING;
        if (s->high && s->hex >= 0xDC00 && s->hex <= 0xDFFF) {   /* the pair's second half */
            s->high = 0;
            return 1;
        }
        s->high = s->hex >= 0xD800 && s->hex <= 0xDBFF;
        return count_char(s);
    }
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
            if (counted(s) && s->pos < node_of(s, s->value)->min)
                return fail(s);
            return value_ended(s);
        }
        if (c < 0x20)
            return fail(s);
        if (c == '\\') {   /* counted once the escape is read */
            if (!room_left(s) && !s->high)
                return fail(s);   /* no room, and no pair to finish */
            s->at = AT_ESCAPE;
            return 1;
        }
        /* a character begins: an ASCII byte or a lead byte */
        s->high = 0;
        if (!count_char(s))
            return 0;
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

/* Digits a number's integer part and exponent may have: every number
 * written then reads back as JSON parsers hold numbers (an integer within
 * 64 bits, a finite double), as dsk-serve reads the arguments of the
 * calls it made when a conversation sends them back. */
#define MAX_INT_DIGITS 18
#define MAX_EXP_DIGITS 2

/* A byte after a number's part in s->at.  A byte that cannot continue the
 * number ends it, if it may end here, and is then read as structure.
 * detail: 1 for an integer (no fraction, no exponent); pos: the digits of
 * the integer part, then of the exponent. */
static int in_number(dsk_json_prefix *s, unsigned char c)
{
    switch (s->at) {
    case AT_MINUS:
        if (!is_digit(c))
            return fail(s);
        s->at = c == '0' ? AT_ZERO : AT_INT;
        s->pos = 1;
        return 1;
    case AT_ZERO:
    case AT_INT:
        if (s->at == AT_INT && is_digit(c))
            return s->any_digits || s->pos < MAX_INT_DIGITS ? (s->pos++, 1) : fail(s);
        if (c == '.' && !s->detail) {
            s->at = AT_POINT;
            return 1;
        }
        if ((c == 'e' || c == 'E') && !s->detail) {
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
        s->pos = 1;
        return 1;
    default:   /* AT_EXPONENT */
        if (is_digit(c))
            return s->any_digits || s->pos < MAX_EXP_DIGITS ? (s->pos++, 1) : fail(s);
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
    case AT_SCHEMA_KEY:
        return key_byte(s, c);
    case AT_ENUM:
        return enum_byte(s, c);
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
    if (s->depth)
        return 0;
    /* a number at the top ends with the text */
    if (s->at == AT_ENUM) {
        const dsk_schema_node *n = node_of(s, s->value);
        for (int k = 0; k < n->n; k++)
            if (s->cand >> k & 1 && text_of(s, n, k)->len == s->pos)
                return 1;
        return 0;
    }
    return s->at == AT_ZERO || s->at == AT_INT || s->at == AT_FRACTION || s->at == AT_EXPONENT;
}

int dsk_json_prefix_closed(const dsk_json_prefix *s) { return s->at == AT_DONE; }

int dsk_json_prefix_in_text(const dsk_json_prefix *s, uint32_t *room)
{
    if (s->at != AT_STRING)
        return 0;
    *room = room_left(s);
    return 1;
}
