#include "serve/json_mode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "text/tool_calls.h"
#include "text/utf8.h"

/* Tokens in byte order, with what the walk needs to share and skip work. */
enum { SKIP_DEPTHS = 4 };
typedef struct walk_order {
    int n;
    int32_t *id;
    uint32_t *shared;    /* leading bytes shared with the token before */
    /* next[d - 1][k]: the first token after k that shares fewer than d
     * bytes with those before it: the end of k's group of d-byte beginnings */
    int *next[SKIP_DEPTHS];
    int first[257];      /* the tokens whose first byte is c: [first[c], first[c + 1]) */
} walk_order;

struct dsk_json_vocab {
    int n_vocab;
    const dsk_tokenizer *tk;
    walk_order all;      /* every token with bytes */
    walk_order odd;      /* those that are not plain text (below) */
    walk_order lt;       /* those with a '<': in free text, the ones that may begin a tool call */
    /* Plain text: whole UTF-8 characters, none a control character, '"'
     * or '\\'.  Inside a string such a token changes nothing but the
     * count of characters, so string states take them unread. */
    int n_plain;
    int32_t *plain;
    uint32_t *plain_chars;
    int n_never;         /* ids with no bytes: special tokens, ids the tokenizer lacks */
    int32_t *never;
    uint32_t max_len;    /* the longest token, in bytes */
    /* Every byte, the commonest in JSON and calls first: jump-forward
     * decoding tries them in this order, so a state with a choice most
     * often shows two bytes within a few tries. */
    unsigned char byte_order[256];
    int can_encode;      /* the tokenizer encodes any text: a pattern, and a token for each byte */
};

static const dsk_tokenizer *sort_tk;   /* qsort's comparison has no context argument */

static int by_bytes(const void *a, const void *b)
{
    size_t la, lb;
    const char *pa = dsk_tokenizer_bytes(sort_tk, (uint32_t)*(const int32_t *)a, &la);
    const char *pb = dsk_tokenizer_bytes(sort_tk, (uint32_t)*(const int32_t *)b, &lb);
    int c = memcmp(pa, pb, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

/* Characters in p[0..n) if it is plain text, else -1. */
static long plain_chars(const unsigned char *p, size_t n)
{
    long chars = 0;
    for (size_t i = 0; i < n; chars++) {
        unsigned char c = p[i];
        if (c < 0x20 || c == '"' || c == '\\' || (c >= 0x80 && c < 0xC2) || c > 0xF4)
            return -1;
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        if (i + len > n)
            return -1;
        /* the second byte's range (RFC 3629), then continuation bytes */
        unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        for (size_t k = 1; k < len; k++) {
            unsigned char d = p[i + k];
            if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF))
                return -1;
        }
        i += len;
    }
    return chars;
}

/* Sorts ids[0..n) by bytes and fills the order's sharing and groups. */
static void order_build(walk_order *o, const dsk_tokenizer *tk, int32_t *ids, int n)
{
    o->n = n;
    o->id = ids;
    sort_tk = tk;   /* the server builds this once, before it takes requests */
    qsort(ids, (size_t)n, sizeof *ids, by_bytes);
    sort_tk = NULL;
    o->shared = dsk_xcalloc((size_t)(n ? n : 1), sizeof *o->shared);
    for (int k = 1; k < n; k++) {
        size_t len, prev_len;
        const char *p = dsk_tokenizer_bytes(tk, (uint32_t)ids[k], &len);
        const char *q = dsk_tokenizer_bytes(tk, (uint32_t)ids[k - 1], &prev_len);
        uint32_t m = 0;
        while (m < len && m < prev_len && p[m] == q[m])
            m++;
        o->shared[k] = m;
    }
    for (int c = 0, k = 0; c <= 256; c++) {
        for (; k < n; k++) {
            size_t len;
            const unsigned char *p = (const unsigned char *)dsk_tokenizer_bytes(tk, (uint32_t)ids[k], &len);
            if (p[0] >= c)
                break;
        }
        o->first[c] = k;
    }
    for (int d = 1; d <= SKIP_DEPTHS; d++) {
        o->next[d - 1] = dsk_xmalloc((size_t)(n ? n : 1) * sizeof *o->next[d - 1]);
        for (int k = n - 1, next = n; k >= 0; k--) {
            o->next[d - 1][k] = next;
            if (o->shared[k] < (uint32_t)d)
                next = k;
        }
    }
}

static void order_free(walk_order *o)
{
    free(o->id);
    free(o->shared);
    for (int d = 0; d < SKIP_DEPTHS; d++)
        free(o->next[d]);
}

dsk_json_vocab *dsk_json_vocab_new(const dsk_tokenizer *tk, int n_vocab)
{
    dsk_json_vocab *v = dsk_xcalloc(1, sizeof *v);
    v->n_vocab = n_vocab;
    v->tk = tk;
    size_t cap = (size_t)(n_vocab ? n_vocab : 1);
    int32_t *all = dsk_xmalloc(cap * sizeof *all), *odd = dsk_xmalloc(cap * sizeof *odd);
    int32_t *lt = dsk_xmalloc(cap * sizeof *lt);
    v->plain = dsk_xmalloc(cap * sizeof *v->plain);
    v->plain_chars = dsk_xmalloc(cap * sizeof *v->plain_chars);
    v->never = dsk_xmalloc(cap * sizeof *v->never);
    int n_all = 0, n_odd = 0, n_lt = 0;
    for (int id = 0; id < n_vocab; id++) {
        size_t len;
        const char *p = dsk_tokenizer_bytes(tk, (uint32_t)id, &len);
        if (!len || dsk_tokenizer_is_special(tk, (uint32_t)id)) {
            v->never[v->n_never++] = id;
            continue;
        }
        all[n_all++] = id;
        if (memchr(p, '<', len))
            lt[n_lt++] = id;
        v->max_len = len > v->max_len ? (uint32_t)len : v->max_len;
        long chars = plain_chars((const unsigned char *)p, len);
        if (chars < 0) {
            odd[n_odd++] = id;
        } else {
            v->plain_chars[v->n_plain] = (uint32_t)chars;
            v->plain[v->n_plain++] = id;
        }
    }
    v->can_encode = tk->re != NULL;
    for (int b = 0; b < 256; b++)
        v->can_encode &= tk->byte_id[b] != DSK_BPE_NO_TOKEN;
    static const char common[] = "\"e a,:}]{[0t1n";
    unsigned char tried[256] = {0};
    int n_order = 0;
    for (const char *c = common; *c; c++)
        tried[(unsigned char)*c] = 1, v->byte_order[n_order++] = (unsigned char)*c;
    for (int c = 0; c < 256; c++)
        if (!tried[c])
            v->byte_order[n_order++] = (unsigned char)c;
    order_build(&v->all, tk, all, n_all);
    order_build(&v->odd, tk, odd, n_odd);
    order_build(&v->lt, tk, lt, n_lt);
    return v;
}

void dsk_json_vocab_free(dsk_json_vocab *v)
{
    if (!v)
        return;
    order_free(&v->all);
    order_free(&v->odd);
    order_free(&v->lt);
    free(v->plain);
    free(v->plain_chars);
    free(v->never);
    free(v);
}

/* A state that takes bytes: JSON mode's or tool calls'. */
typedef struct automaton {
    size_t size;
    void (*copy)(void *dst, const void *src);
    int (*feed)(void *s, unsigned char c);
} automaton;

static void json_copy(void *dst, const void *src) { dsk_json_prefix_copy(dst, src); }
static int json_feed(void *s, unsigned char c) { return dsk_json_prefix_feed(s, c); }
static void call_copy(void *dst, const void *src) { dsk_call_prefix_copy(dst, src); }
static int call_feed(void *s, unsigned char c) { return dsk_call_prefix_feed(s, c); }
static const automaton json_automaton = {sizeof(dsk_json_prefix), json_copy, json_feed};
static const automaton call_automaton = {sizeof(dsk_call_prefix), call_copy, call_feed};

/* Walks the tokens [from, to) of o from state 0, returning how many pass.  With
 * saved NULL, the logit of each one that fails is set to -INFINITY;
 * otherwise the logits are all -INFINITY already and each one that passes
 * gets its saved value back (fewer scattered writes where most fail).
 * states holds max_len + 1 states of a: state i, after the first i bytes
 * of the token at hand, valid up to the bytes it shares with the token
 * before; failed_at: the token before failed on its byte failed_at - 1,
 * so one sharing failed_at bytes with it fails too (for short beginnings,
 * the whole group that shares it is skipped at once). */
static int walk_range(const dsk_json_vocab *v, const walk_order *o, int from, int to, const automaton *a,
                      unsigned char *states, float *logits, const float *saved)
{
    uint32_t failed_at = UINT32_MAX;
    int n_allowed = 0;
    for (int k = from; k < to; k++) {
        uint32_t shared = k == from ? 0 : o->shared[k];   /* states before from were not computed */
        if (shared >= failed_at) {
            int end = failed_at <= SKIP_DEPTHS ? o->next[failed_at - 1][k] : k + 1;
            end = end < to ? end : to;
            for (int j = k; j < end && !saved; j++)
                logits[o->id[j]] = -INFINITY;
            k = end - 1;
            continue;
        }
        failed_at = UINT32_MAX;
        size_t len;
        const unsigned char *p = (const unsigned char *)dsk_tokenizer_bytes(v->tk, (uint32_t)o->id[k], &len);
        uint32_t i = shared;
        for (; i < len; i++) {
            unsigned char *next = states + (i + 1) * a->size;
            a->copy(next, states + i * a->size);
            if (!a->feed(next, p[i]))
                break;
        }
        if (i < len) {
            failed_at = i + 1;
            if (!saved)
                logits[o->id[k]] = -INFINITY;
            continue;
        }
        if (saved)
            logits[o->id[k]] = saved[o->id[k]];
        n_allowed++;
    }
    return n_allowed;
}

static int walk(const dsk_json_vocab *v, const walk_order *o, const automaton *a, unsigned char *states,
                float *logits, const float *saved)
{
    return walk_range(v, o, 0, o->n, a, states, logits, saved);
}

/* Walks every token of the vocabulary: few pass, so all go and those
 * that pass come back.  Special tokens fail. */
static int walk_all(const dsk_json_vocab *v, const automaton *a, unsigned char *states, float *logits)
{
    float *saved = dsk_xmalloc((size_t)v->n_vocab * sizeof *saved);
    memcpy(saved, logits, (size_t)v->n_vocab * sizeof *saved);
    for (int id = 0; id < v->n_vocab; id++)
        logits[id] = -INFINITY;
    int n_allowed = walk(v, &v->all, a, states, logits, saved);
    free(saved);
    return n_allowed;
}

/* Inside a JSON string: plain tokens pass if the string has room for
 * them, most do, and the few others are walked. */
static int walk_text(const dsk_json_vocab *v, uint32_t room, const automaton *a, unsigned char *states,
                     float *logits)
{
    for (int k = 0; k < v->n_never; k++)
        logits[v->never[k]] = -INFINITY;
    int n_allowed = v->n_plain;
    if (room < v->max_len)
        for (int k = 0; k < v->n_plain; k++)
            if (v->plain_chars[k] > room) {
                logits[v->plain[k]] = -INFINITY;
                n_allowed--;
            }
    return n_allowed + walk(v, &v->odd, a, states, logits, NULL);
}

int dsk_json_vocab_mask(const dsk_json_vocab *v, const dsk_json_prefix *s, float *logits)
{
    unsigned char *states = dsk_xmalloc(((size_t)v->max_len + 1) * sizeof(dsk_json_prefix));
    dsk_json_prefix_copy((dsk_json_prefix *)states, s);
    uint32_t room;
    int n_allowed = dsk_json_prefix_in_text(s, &room) ? walk_text(v, room, &json_automaton, states, logits)
                                                      : walk_all(v, &json_automaton, states, logits);
    free(states);
    return n_allowed;
}

int dsk_call_vocab_mask(const dsk_json_vocab *v, const dsk_call_prefix *s, float *logits)
{
    unsigned char *states = dsk_xmalloc(((size_t)v->max_len + 1) * sizeof(dsk_call_prefix));
    dsk_call_prefix_copy((dsk_call_prefix *)states, s);
    uint32_t room;
    int n_allowed;
    if (dsk_call_prefix_in_free_text(s)) {
        /* text: only a token with a '<' may begin a call, and go wrong */
        n_allowed = v->n_vocab - v->lt.n + walk(v, &v->lt, &call_automaton, states, logits, NULL);
    } else if (s->at == DSK_CALL_TEXT) {
        /* text that ends with part of the opening tag: a token goes on with
         * it only if it begins with the tag's next byte c; the others start
         * over, and only a '<' in them may begin a call.  So: the tokens
         * that begin with c, and those with a '<' that do not. */
        int c = (unsigned char)DSK_TOOL_CALL_OPEN[s->pos];
        const walk_order *all = &v->all, *lt = &v->lt;
        int first = all->first[c], end = all->first[c + 1];
        int failed = end - first - walk_range(v, all, first, end, &call_automaton, states, logits, NULL);
        failed += lt->first[c] - walk_range(v, lt, 0, lt->first[c], &call_automaton, states, logits, NULL);
        failed += lt->n - lt->first[c + 1] - walk_range(v, lt, lt->first[c + 1], lt->n, &call_automaton, states,
                                                         logits, NULL);
        n_allowed = v->n_vocab - failed;
    } else if (s->at == DSK_CALL_ARGS && dsk_json_prefix_in_text(&s->args, &room)) {
        n_allowed = walk_text(v, room, &call_automaton, states, logits);
    } else {   /* in a call, or after one: few pass */
        n_allowed = walk_all(v, &call_automaton, states, logits);
    }
    free(states);
    return n_allowed;
}

int dsk_json_vocab_feed(const dsk_json_vocab *v, dsk_json_prefix *s, int32_t tok)
{
    size_t len = 0;
    const char *p = NULL;
    if (tok >= 0 && tok < v->n_vocab && !dsk_tokenizer_is_special(v->tk, (uint32_t)tok))
        p = dsk_tokenizer_bytes(v->tk, (uint32_t)tok, &len);
    if (!len) {
        dsk_json_prefix_feed(s, 0);   /* no JSON text holds a NUL byte: s fails */
        return 0;
    }
    return dsk_json_prefix_feed_all(s, p, len);
}

int dsk_call_vocab_feed(const dsk_json_vocab *v, dsk_call_prefix *s, int32_t tok)
{
    size_t len = 0;
    const char *p = NULL;
    if (tok >= 0 && tok < v->n_vocab && !dsk_tokenizer_is_special(v->tk, (uint32_t)tok))
        p = dsk_tokenizer_bytes(v->tk, (uint32_t)tok, &len);
    if (!len && s->at == DSK_CALL_TEXT)   /* no text: text stays as it is */
        return 1;
    if (!len) {   /* in a call, it breaks the call */
        s->at = DSK_CALL_FAILED;
        return 0;
    }
    return dsk_call_prefix_feed_all(s, p, len);
}

/* Jump-forward decoding. */
enum { FORCED_MAX_BYTES = 256 };   /* 64 tokens (the most taken a time) of 4 bytes */

/* The one byte a takes next from state s, or -1 where it takes none or
 * several.  scratch: room for a state. */
static int only_byte(const dsk_json_vocab *v, const automaton *a, const void *s, void *scratch)
{
    int found = -1;
    for (int k = 0; k < 256; k++) {
        unsigned char c = v->byte_order[k];
        a->copy(scratch, s);
        if (a->feed(scratch, c)) {
            if (found >= 0)
                return -1;
            found = c;
        }
    }
    return found;
}

/* The bytes forced from state s (held in a copy, fed as they are found)
 * until a byte is the model's to choose, or the answer may end there
 * (may_end), as the tokenizer encodes them: up to cap tokens in out.
 * Unless the answer is over after them (done), their last pre-token is
 * left to the model: in the text as a whole it may run on into the bytes
 * that follow ("\":{" into "\":{\"city"), a token the model was trained
 * on and would not be given the chance to draw. */
static int forced_tokens(const dsk_json_vocab *v, const automaton *a, void *s, int (*may_end)(const void *),
                         int (*done)(const void *), int32_t *out, int cap)
{
    unsigned char bytes[FORCED_MAX_BYTES];
    size_t n = 0;
    if (!v->can_encode || may_end(s))   /* most states of free text: nothing to look for */
        return 0;
    void *scratch = dsk_xmalloc(a->size);
    while (n < sizeof bytes && !may_end(s)) {
        int c = only_byte(v, a, s, scratch);
        if (c < 0)
            break;
        a->feed(s, (unsigned char)c);
        bytes[n++] = (unsigned char)c;
    }
    free(scratch);
    n = dsk_utf8_whole((const char *)bytes, 0, n);   /* no unfinished character at the end */
    if (n == 0)
        return 0;
    dsk_bpe_encoder enc;
    dsk_bpe_encoder_init(&enc, v->tk);
    if (n == sizeof bytes || !done(s))
        n = dsk_bpe_last_piece(v->tk, &enc, (const char *)bytes, n);
    dsk_err err = {0};
    int k = 0;
    if (n > 0 && dsk_bpe_encode(v->tk, &enc, (const char *)bytes, n, 0, &err) == 0)
        /* a token the model lacks ends the run: the model draws from there */
        for (; k < cap && (size_t)k < enc.n_ids && enc.ids[k] < (uint32_t)v->n_vocab &&
               !dsk_tokenizer_is_special(v->tk, enc.ids[k]);
             k++)
            out[k] = (int32_t)enc.ids[k];
    dsk_bpe_encoder_free(&enc);
    return k;
}

static int json_may_end(const void *s) { return dsk_json_prefix_complete(s); }
static int call_may_end(const void *s) { return dsk_call_prefix_may_end(s); }
static int json_done(const void *s) { return dsk_json_prefix_closed(s); }
static int call_done(const void *s) { return dsk_call_prefix_done(s); }

int dsk_json_vocab_forced(const dsk_json_vocab *v, const dsk_json_prefix *s, int32_t *out, int cap)
{
    dsk_json_prefix at;
    dsk_json_prefix_copy(&at, s);
    return forced_tokens(v, &json_automaton, &at, json_may_end, json_done, out, cap);
}

int dsk_call_vocab_forced(const dsk_json_vocab *v, const dsk_call_prefix *s, int32_t *out, int cap)
{
    dsk_call_prefix at;
    dsk_call_prefix_copy(&at, s);
    return forced_tokens(v, &call_automaton, &at, call_may_end, call_done, out, cap);
}
