/* The BPE merge loop: pair counts with the words that hold each pair, and
 * a max-heap of pairs with lazy refresh of stale counts (as in Hugging
 * Face's BpeTrainer, with 64-bit counts). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bpe/train.h"
#include "core/u64map.h"

typedef struct pair_info {
    uint32_t a, b;
    int64_t count;
    uint32_t *words;  /* words that may hold the pair (stale entries are harmless) */
    uint32_t n_words, cap_words, last_word;
} pair_info;

typedef struct heap_entry {
    int64_t count;
    uint32_t a, b;
} heap_entry;

typedef struct trainer {
    uint32_t *sym;      /* every word's symbols, back to back */
    size_t *start;      /* per word */
    uint32_t *len;      /* per word, shrinks as pairs merge */
    const uint64_t *wcount;
    size_t n_words;
    dsk_u64map pair_index;  /* (a, b) -> pair index + 1 */
    pair_info *pairs;
    size_t n_pairs, cap_pairs;
    heap_entry *heap;
    size_t heap_n, heap_cap;
    uint32_t *dirty;    /* pairs whose count rose during one merge */
    size_t n_dirty, cap_dirty;
} trainer;

static uint64_t pair_key(uint32_t a, uint32_t b) { return ((uint64_t)a << 32 | b) + 1; }

/* Better: higher count, then smaller left id, then smaller right id. */
static int better(const heap_entry *x, const heap_entry *y)
{
    if (x->count != y->count)
        return x->count > y->count;
    if (x->a != y->a)
        return x->a < y->a;
    return x->b < y->b;
}

static void heap_push(trainer *t, heap_entry e)
{
    if (t->heap_n == t->heap_cap) {
        t->heap_cap = t->heap_cap ? t->heap_cap * 2 : 4096;
        t->heap = dsk_xrealloc(t->heap, t->heap_cap * sizeof *t->heap);
    }
    size_t i = t->heap_n++;
    while (i > 0 && better(&e, &t->heap[(i - 1) / 2])) {
        t->heap[i] = t->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    t->heap[i] = e;
}

static heap_entry heap_pop(trainer *t)
{
    heap_entry top = t->heap[0], last = t->heap[--t->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->heap_n)
            break;
        if (c + 1 < t->heap_n && better(&t->heap[c + 1], &t->heap[c]))
            c++;
        if (!better(&t->heap[c], &last))
            break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    t->heap[i] = last;
    return top;
}

static pair_info *get_pair(trainer *t, uint32_t a, uint32_t b, int create)
{
    int is_new = 0;
    uint64_t *slot = create ? dsk_u64map_upsert(&t->pair_index, pair_key(a, b), &is_new)
                            : dsk_u64map_find(&t->pair_index, pair_key(a, b));
    if (!slot)
        return NULL;
    if (is_new) {
        if (t->n_pairs == t->cap_pairs) {
            t->cap_pairs = t->cap_pairs ? t->cap_pairs * 2 : 4096;
            t->pairs = dsk_xrealloc(t->pairs, t->cap_pairs * sizeof *t->pairs);
        }
        t->pairs[t->n_pairs] = (pair_info){a, b, 0, NULL, 0, 0, UINT32_MAX};
        *slot = ++t->n_pairs;
    }
    return &t->pairs[*slot - 1];
}

static void note_word(pair_info *p, uint32_t w)
{
    if (p->last_word == w)
        return;
    if (p->n_words == p->cap_words) {
        p->cap_words = p->cap_words ? p->cap_words * 2 : 4;
        p->words = dsk_xrealloc(p->words, p->cap_words * sizeof *p->words);
    }
    p->words[p->n_words++] = w;
    p->last_word = w;
}

static void add_pair(trainer *t, uint32_t a, uint32_t b, uint32_t w, int64_t delta)
{
    pair_info *p = get_pair(t, a, b, 1);
    p->count += delta;
    if (delta > 0) {
        note_word(p, w);
        if (t->n_dirty == t->cap_dirty) {
            t->cap_dirty = t->cap_dirty ? t->cap_dirty * 2 : 1024;
            t->dirty = dsk_xrealloc(t->dirty, t->cap_dirty * sizeof *t->dirty);
        }
        t->dirty[t->n_dirty++] = (uint32_t)(p - t->pairs);
    }
}

/* Replaces every (a, b) in word w, left to right, by id, updating the
 * counts of the neighbouring pairs. */
static void merge_in_word(trainer *t, uint32_t w, uint32_t a, uint32_t b, uint32_t id)
{
    uint32_t *s = t->sym + t->start[w];
    uint32_t n = t->len[w];
    int64_t c = (int64_t)t->wcount[w];
    uint32_t i = 0, o = 0;  /* read and write positions */
    while (i < n) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            if (o > 0) {
                add_pair(t, s[o - 1], a, w, -c);
                add_pair(t, s[o - 1], id, w, c);
            }
            if (i + 2 < n) {
                add_pair(t, b, s[i + 2], w, -c);
                add_pair(t, id, s[i + 2], w, c);
            }
            get_pair(t, a, b, 1)->count -= c;
            s[o++] = id;
            i += 2;
        } else {
            s[o++] = s[i++];
        }
    }
    t->len[w] = o;
}

int dsk_bpe_train(const dsk_bpe_counts *c, const dsk_bpe_train_opts *o, dsk_tokenizer *out, dsk_err *err)
{
    uint32_t n_special = (uint32_t)o->n_specials;
    if (o->vocab_size < 256 + n_special || o->vocab_size > DSK_BPE_MAX_VOCAB)
        return dsk_fail(err, EX_USAGE, "--vocab-size must be at least 256 + the %u special tokens, and at most %u",
                        n_special, DSK_BPE_MAX_VOCAB);
    trainer t;
    memset(&t, 0, sizeof t);
    t.n_words = c->n;
    t.wcount = c->count;
    t.start = dsk_xmalloc((c->n + 1) * sizeof *t.start);
    t.len = dsk_xmalloc((c->n + 1) * sizeof *t.len);
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++) {
        t.start[i] = total;
        t.len[i] = (uint32_t)(c->off[i] & 0xFFFFFF);
        total += t.len[i];
    }
    t.sym = dsk_xmalloc((total + 1) * sizeof *t.sym);
    for (size_t i = 0; i < c->n; i++) {
        const uint8_t *w = (const uint8_t *)c->pool + (c->off[i] >> 24);
        for (uint32_t k = 0; k < t.len[i]; k++)
            t.sym[t.start[i] + k] = w[k];
    }
    dsk_u64map_init(&t.pair_index, 1 << 16);
    for (size_t w = 0; w < c->n; w++)
        for (uint32_t k = 0; k + 1 < t.len[w]; k++)
            add_pair(&t, t.sym[t.start[w] + k], t.sym[t.start[w] + k + 1], (uint32_t)w, (int64_t)c->count[w]);
    for (size_t i = 0; i < t.n_pairs; i++)
        heap_push(&t, (heap_entry){t.pairs[i].count, t.pairs[i].a, t.pairs[i].b});
    t.n_dirty = 0;

    /* the vocabulary: the 256 bytes, then one token per merge */
    dsk_tokenizer_init(out);
    int rc = 0;
    for (int b = 0; b < 256 && !rc; b++) {
        char ch = (char)b;
        rc = dsk_tokenizer_add(out, (uint32_t)b, &ch, 1, err);
    }
    uint32_t next = 256, merges_wanted = o->vocab_size - n_special;
    dsk_buf bytes = {0};
    int tty = o->verbose && isatty(STDERR_FILENO);
    while (!rc && next < merges_wanted && t.heap_n) {
        heap_entry e = heap_pop(&t);
        pair_info *p = get_pair(&t, e.a, e.b, 0);
        if (!p || p->count != e.count) {  /* stale: refresh */
            if (p && p->count > 0)
                heap_push(&t, (heap_entry){p->count, p->a, p->b});
            continue;
        }
        if (e.count <= 0 || (uint64_t)e.count < (o->min_frequency ? o->min_frequency : 1))
            break;
        size_t la, lb;
        const char *ba = dsk_tokenizer_bytes(out, e.a, &la), *bb = dsk_tokenizer_bytes(out, e.b, &lb);
        dsk_buf_clear(&bytes);
        dsk_buf_add(&bytes, ba, la);
        dsk_buf_add(&bytes, bb, lb);
        if ((rc = dsk_tokenizer_add(out, next, bytes.data, bytes.len, err)))
            break;
        /* take the word list: merging re-notes the words that still hold (a, b) */
        uint32_t *words = p->words, n = p->n_words;
        p->words = NULL;
        p->n_words = p->cap_words = 0;
        p->last_word = UINT32_MAX;
        for (uint32_t k = 0; k < n; k++)
            merge_in_word(&t, words[k], e.a, e.b, next);
        free(words);
        for (size_t k = 0; k < t.n_dirty; k++) {
            pair_info *d = &t.pairs[t.dirty[k]];
            if (d->count > 0)
                heap_push(&t, (heap_entry){d->count, d->a, d->b});
        }
        t.n_dirty = 0;
        next++;
        if (tty && next % 500 == 0)
            fprintf(stderr, "\rdsk-bpe: %u of %u merges\033[K", next - 256, merges_wanted - 256);
    }
    if (tty)
        fputs("\r\033[K", stderr);
    for (size_t i = 0; i < o->n_specials && !rc; i++)
        rc = dsk_tokenizer_add_special(out, next + (uint32_t)i, o->specials[i], err);
    if (!rc)
        rc = dsk_tokenizer_set_pattern(out, o->pattern, err);
    if (!rc)
        rc = dsk_tokenizer_finish(out, err);
    dsk_buf_free(&bytes);
    for (size_t i = 0; i < t.n_pairs; i++)
        free(t.pairs[i].words);
    free(t.pairs);
    free(t.heap);
    free(t.dirty);
    free(t.sym);
    free(t.start);
    free(t.len);
    dsk_u64map_free(&t.pair_index);
    return rc;
}
