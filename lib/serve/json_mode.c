#include "serve/json_mode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Tokens in byte order, with what the walk needs to share and skip work. */
enum { SKIP_DEPTHS = 4 };
typedef struct walk_order {
    int n;
    int32_t *id;
    uint32_t *shared;    /* leading bytes shared with the token before */
    /* next[d - 1][k]: the first token after k that shares fewer than d
     * bytes with those before it: the end of k's group of d-byte beginnings */
    int *next[SKIP_DEPTHS];
} walk_order;

struct dsk_json_vocab {
    int n_vocab;
    const dsk_tokenizer *tk;
    walk_order all;      /* every token with bytes */
    walk_order odd;      /* those that are not plain text (below) */
    /* Plain text: whole UTF-8 characters, none a control character, '"'
     * or '\\'.  Inside a string such a token changes nothing but the
     * count of characters, so string states take them unread. */
    int n_plain;
    int32_t *plain;
    uint32_t *plain_chars;
    int n_never;         /* ids with no bytes: special tokens, ids the tokenizer lacks */
    int32_t *never;
    uint32_t max_len;    /* the longest token, in bytes */
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
    v->plain = dsk_xmalloc(cap * sizeof *v->plain);
    v->plain_chars = dsk_xmalloc(cap * sizeof *v->plain_chars);
    v->never = dsk_xmalloc(cap * sizeof *v->never);
    int n_all = 0, n_odd = 0;
    for (int id = 0; id < n_vocab; id++) {
        size_t len;
        const char *p = dsk_tokenizer_bytes(tk, (uint32_t)id, &len);
        if (!len || dsk_tokenizer_is_special(tk, (uint32_t)id)) {
            v->never[v->n_never++] = id;
            continue;
        }
        all[n_all++] = id;
        v->max_len = len > v->max_len ? (uint32_t)len : v->max_len;
        long chars = plain_chars((const unsigned char *)p, len);
        if (chars < 0) {
            odd[n_odd++] = id;
        } else {
            v->plain_chars[v->n_plain] = (uint32_t)chars;
            v->plain[v->n_plain++] = id;
        }
    }
    order_build(&v->all, tk, all, n_all);
    order_build(&v->odd, tk, odd, n_odd);
    return v;
}

void dsk_json_vocab_free(dsk_json_vocab *v)
{
    if (!v)
        return;
    order_free(&v->all);
    order_free(&v->odd);
    free(v->plain);
    free(v->plain_chars);
    free(v->never);
    free(v);
}

/* Walks the tokens of o from state[0], returning how many pass.  With
 * saved NULL, the logit of each one that fails is set to -INFINITY;
 * otherwise the logits are all -INFINITY already and each one that passes
 * gets its saved value back (fewer scattered writes where most fail).
 * state[i] holds the state after the first i bytes of the token at hand,
 * valid up to the bytes it shares with the token before; failed_at: the
 * token before failed on its byte failed_at - 1, so one sharing failed_at
 * bytes with it fails too (for short beginnings, the whole group that
 * shares it is skipped at once). */
static int walk(const dsk_json_vocab *v, const walk_order *o, dsk_json_prefix *state, float *logits,
                const float *saved)
{
    uint32_t failed_at = UINT32_MAX;
    int n_allowed = 0;
    for (int k = 0; k < o->n; k++) {
        uint32_t shared = o->shared[k];
        if (shared >= failed_at) {
            int end = failed_at <= SKIP_DEPTHS ? o->next[failed_at - 1][k] : k + 1;
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
            dsk_json_prefix_copy(&state[i + 1], &state[i]);
            if (!dsk_json_prefix_feed(&state[i + 1], p[i]))
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

int dsk_json_vocab_mask(const dsk_json_vocab *v, const dsk_json_prefix *s, float *logits)
{
    dsk_json_prefix *state = dsk_xmalloc(((size_t)v->max_len + 1) * sizeof *state);
    dsk_json_prefix_copy(&state[0], s);
    uint32_t room;
    int n_allowed;
    if (dsk_json_prefix_in_text(s, &room)) {
        /* inside a string: plain tokens pass if the string has room for
         * them, most pass, and the few others are walked */
        for (int k = 0; k < v->n_never; k++)
            logits[v->never[k]] = -INFINITY;
        n_allowed = v->n_plain;
        if (room < v->max_len)
            for (int k = 0; k < v->n_plain; k++)
                if (v->plain_chars[k] > room) {
                    logits[v->plain[k]] = -INFINITY;
                    n_allowed--;
                }
        n_allowed += walk(v, &v->odd, state, logits, NULL);
    } else {
        /* between values, keys and numbers few pass: all go, those that pass come back */
        float *saved = dsk_xmalloc((size_t)v->n_vocab * sizeof *saved);
        memcpy(saved, logits, (size_t)v->n_vocab * sizeof *saved);
        for (int id = 0; id < v->n_vocab; id++)
            logits[id] = -INFINITY;
        n_allowed = walk(v, &v->all, state, logits, saved);
        free(saved);
    }
    free(state);
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
