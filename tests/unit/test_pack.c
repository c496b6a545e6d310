/* Packing invariants: concat keeps every token exactly once and in order,
 * bestfit keeps every segment whole unless it is longer than a row, the
 * masks and boundaries say what dsk-dataset(5) says, SFT and DPO rows hold
 * their records. */
#include "core/hash.h"
#include "pack/pack.h"
#include "test.h"

#define EOT 1000u

typedef struct collected {
    dsk_row *rows;
    int *splits;
    size_t n, cap;
} collected;

static int collect(void *ctx, int split, const dsk_row *row, dsk_err *err)
{
    collected *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->rows = realloc(c->rows, c->cap * sizeof *c->rows);
        c->splits = realloc(c->splits, c->cap * sizeof *c->splits);
    }
    dsk_row *r = &c->rows[c->n];
    memset(r, 0, sizeof *r);
    dsk_row_reserve(r, row->n_tokens, row->n_boundaries + 1);
    memcpy(r->tokens, row->tokens, row->n_tokens * sizeof *r->tokens);
    memcpy(r->mask, row->mask, row->n_tokens);
    memcpy(r->boundaries, row->boundaries, row->n_boundaries * sizeof *r->boundaries);
    r->n_tokens = row->n_tokens, r->n_boundaries = row->n_boundaries, r->split = row->split, r->flags = row->flags;
    c->splits[c->n++] = split;
    return 0;
}

static void collected_free(collected *c)
{
    for (size_t i = 0; i < c->n; i++)
        dsk_row_free(&c->rows[i]);
    free(c->rows);
    free(c->splits);
}

static unsigned rng = 12345;
static unsigned next_rand(void) { return rng = rng * 1103515245u + 12345u, rng >> 8; }

/* n documents of random length up to max_len (some empty), tokens < EOT. */
static dskt_record *make_docs(size_t n, uint32_t min_len, uint32_t max_len, int split_every)
{
    dskt_record *d = calloc(n, sizeof *d);
    for (size_t i = 0; i < n; i++) {
        d[i].kind = DSKT_PLAIN;
        d[i].split = split_every && i % split_every == 0 ? DSKT_VAL : DSKT_TRAIN;
        d[i].n_tokens = min_len + next_rand() % (max_len - min_len + 1);
        d[i].tokens = malloc((d[i].n_tokens + 1) * sizeof(uint32_t));
        for (uint32_t k = 0; k < d[i].n_tokens; k++)
            d[i].tokens[k] = next_rand() % EOT;
    }
    return d;
}

static void free_docs(dskt_record *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(d[i].tokens), free(d[i].mask);
    free(d);
}

TEST(concat_keeps_every_token_once_in_order)
{
    enum { N = 300, L = 65 };
    dskt_record *docs = make_docs(N, 0, 200, 7);
    collected c = {0};
    dsk_pack_opts o = {.mode = DSK_PACK_CONCAT, .row_len = L, .eot = EOT};
    dsk_packer *p = dsk_packer_new(&o, collect, &c);
    dsk_err err = {0};
    for (size_t i = 0; i < N; i++)
        CHECK(dsk_packer_add(p, &docs[i], &err) == 0);
    CHECK(dsk_packer_finish(p, &err) == 0);
    for (int split = 0; split < 2; split++) {
        /* The expected stream: EOT doc EOT doc ..., and where each segment starts. */
        uint32_t *want = malloc(200000 * sizeof *want);
        uint8_t *starts = calloc(200000, 1);
        size_t nw = 0, docs_in = 0, tokens_in = 0;
        for (size_t i = 0; i < N; i++) {
            if ((docs[i].split == DSKT_VAL) != split)
                continue;
            starts[nw] = 1;
            want[nw++] = EOT;
            memcpy(want + nw, docs[i].tokens, docs[i].n_tokens * sizeof *want);
            nw += docs[i].n_tokens;
            docs_in++, tokens_in += docs[i].n_tokens;
        }
        size_t at = 0, rows = 0, pad = 0;
        int order_ok = 1, bounds_ok = 1, mask_ok = 1;
        for (size_t r = 0; r < c.n; r++) {
            if (c.splits[r] != split)
                continue;
            const dsk_row *row = &c.rows[r];
            CHECK(row->n_tokens == L);
            rows++;
            uint32_t b = 0;
            for (uint32_t k = 0; k < L; k++, at++) {
                if (at >= nw) {  /* padding: only in the last row */
                    pad++;
                    mask_ok &= row->tokens[k] == EOT && row->mask[k] == (at == nw);
                    continue;
                }
                order_ok &= row->tokens[k] == want[at];
                mask_ok &= row->mask[k] == 1;
                int is_boundary = b < row->n_boundaries && row->boundaries[b] == k;
                bounds_ok &= is_boundary == starts[at];
                b += is_boundary;
            }
        }
        CHECK(order_ok && bounds_ok && mask_ok);
        CHECK(at == rows * L && at - pad == nw && pad < L);
        const dsk_pack_stats *st = dsk_packer_stats(p, split);
        CHECK(st->documents == docs_in && st->document_tokens == tokens_in && st->rows == rows && st->padding == pad);
        CHECK(st->row_tokens == docs_in + tokens_in + pad);
        free(want);
        free(starts);
    }
    dsk_packer_free(p);
    collected_free(&c);
    free_docs(docs, N);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Every piece between boundaries, padding aside, is a whole segment or a
 * row-sized cut of a long one: compare the multisets by hash. */
static void check_bestfit(int crop)
{
    enum { N = 400, L = 129 };
    dskt_record *docs = make_docs(N, 1, 300, 0);
    collected c = {0};
    dsk_pack_opts o = {.mode = DSK_PACK_BESTFIT, .row_len = L, .eot = EOT, .crop_long = crop, .window_tokens = 5000};
    dsk_packer *p = dsk_packer_new(&o, collect, &c);
    dsk_err err = {0};
    uint64_t *want = calloc(4 * N, sizeof *want), *got = calloc(8 * N, sizeof *got);
    size_t nw = 0, ng = 0, cut = 0, cropped = 0, kept = 0;
    uint32_t seg[400];
    for (size_t i = 0; i < N; i++) {
        CHECK(dsk_packer_add(p, &docs[i], &err) == 0);
        seg[0] = EOT;
        memcpy(seg + 1, docs[i].tokens, docs[i].n_tokens * sizeof *seg);
        uint32_t n = docs[i].n_tokens + 1;
        if (n > L)
            cut++;
        if (n > L && crop) {
            cropped += n - L;
            n = L;
        }
        kept += n;
        for (uint32_t at = 0; at < n; at += L)
            want[nw++] = dsk_hash64(seg + at, (n - at < L ? n - at : L) * sizeof *seg);
    }
    CHECK(dsk_packer_finish(p, &err) == 0);
    size_t pad = 0;
    int mask_ok = 1;
    for (size_t r = 0; r < c.n; r++) {
        const dsk_row *row = &c.rows[r];
        CHECK(row->n_tokens == L && row->n_boundaries >= 1 && row->boundaries[0] == 0);
        for (uint32_t b = 0; b < row->n_boundaries; b++) {
            uint32_t from = row->boundaries[b], to = b + 1 < row->n_boundaries ? row->boundaries[b + 1] : L;
            int is_pad = 1;  /* documents are never empty and never hold EOT: all EOT is padding */
            for (uint32_t k = from; k < to; k++)
                is_pad &= row->tokens[k] == EOT && (k == from || row->mask[k] == 0);
            if (is_pad) {
                CHECK(b == row->n_boundaries - 1);
                pad += to - from;
                continue;
            }
            for (uint32_t k = from + 1; k < to; k++)
                mask_ok &= row->mask[k] == 1;
            got[ng++] = dsk_hash64(row->tokens + from, (to - from) * sizeof *row->tokens);
        }
    }
    qsort(want, nw, sizeof *want, cmp_u64);
    qsort(got, ng, sizeof *got, cmp_u64);
    CHECK(nw == ng && memcmp(want, got, nw * sizeof *want) == 0);
    CHECK(mask_ok);
    const dsk_pack_stats *st = dsk_packer_stats(p, 0);
    CHECK(st->cut_documents == cut && st->cropped == cropped && st->padding == pad);
    CHECK(st->rows * L == kept + pad);
    /* Best fit packs tightly: under 8% padding here (the rows closing each 5000-token window
     * included), where one segment a row would pad about 40%. */
    printf("# bestfit padding %.2f%% over %llu rows\n", 100.0 * pad / (st->rows * L), (unsigned long long)st->rows);
    CHECK(pad * 12 < st->rows * L);
    dsk_packer_free(p);
    collected_free(&c);
    free_docs(docs, N);
    free(want);
    free(got);
}

TEST(bestfit_keeps_segments_whole) { check_bestfit(0); }
TEST(bestfit_crops_long_documents) { check_bestfit(1); }

TEST(sft_rows_are_one_conversation)
{
    enum { L = 33 };
    collected c = {0};
    dsk_pack_opts o = {.mode = DSK_PACK_CONCAT, .row_len = L, .eot = EOT};
    dsk_packer *p = dsk_packer_new(&o, collect, &c);
    dsk_err err = {0};
    uint32_t toks[50];
    uint8_t mask[50];
    for (int i = 0; i < 50; i++)
        toks[i] = (uint32_t)i + 3, mask[i] = (uint8_t)(i % 3 == 0);
    dskt_record short_chat = {.kind = DSKT_CHAT, .tokens = toks, .n_tokens = 20, .mask = mask};
    dskt_record long_chat = {.kind = DSKT_CHAT, .split = DSKT_TEST, .tokens = toks, .n_tokens = 50, .mask = mask};
    CHECK(dsk_packer_add(p, &short_chat, &err) == 0);
    CHECK(dsk_packer_add(p, &long_chat, &err) == 0);
    dskt_record plain = {.kind = DSKT_PLAIN, .tokens = toks, .n_tokens = 5};
    CHECK(dsk_packer_add(p, &plain, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "pretrain data after sft data") != NULL);
    /* an empty conversation made a row that failed its own checks */
    dskt_record empty_chat = {.kind = DSKT_CHAT, .tokens = toks, .n_tokens = 0, .mask = mask};
    CHECK(dsk_packer_add(p, &empty_chat, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "no tokens") != NULL);
    CHECK(dsk_packer_finish(p, &err) == 0);
    CHECK(c.n == 2 && c.splits[1] == DSKT_TEST);
    CHECK(memcmp(c.rows[0].tokens, toks, 20 * 4) == 0 && memcmp(c.rows[0].mask, mask, 20) == 0);
    int pad_ok = 1;
    for (int k = 20; k < L; k++)
        pad_ok &= c.rows[0].tokens[k] == EOT && c.rows[0].mask[k] == 0;
    CHECK(pad_ok);
    CHECK(memcmp(c.rows[1].tokens, toks, L * 4) == 0);
    CHECK(dsk_packer_stats(p, DSKT_TEST)->cropped == 50 - L && dsk_packer_stats(p, 0)->padding == L - 20);
    CHECK(dsk_packer_kind(p) == DSK_KIND_SFT);
    dsk_packer_free(p);
    collected_free(&c);
}

TEST(dpo_rows_hold_both_answers)
{
    enum { L = 17 };
    collected c = {0};
    dsk_pack_opts o = {.mode = DSK_PACK_CONCAT, .row_len = L, .eot = EOT};
    dsk_packer *p = dsk_packer_new(&o, collect, &c);
    dsk_err err = {0};
    uint32_t toks[40];
    for (int i = 0; i < 40; i++)
        toks[i] = (uint32_t)i;
    /* prompt 0..5, chosen 6..9, rejected 10..16 */
    dskt_record pair = {.kind = DSKT_PREFERENCE, .tokens = toks, .n_tokens = 17, .n_prompt = 6, .n_chosen = 4};
    CHECK(dsk_packer_add(p, &pair, &err) == 0);
    /* prompt 0..19 (too long), chosen 20..29, rejected 30..39: the answers keep half a row (8 tokens),
     * the prompt its last 9 */
    dskt_record big = {.kind = DSKT_PREFERENCE, .tokens = toks, .n_tokens = 40, .n_prompt = 20, .n_chosen = 10};
    CHECK(dsk_packer_add(p, &big, &err) == 0);
    CHECK(dsk_packer_finish(p, &err) == 0);
    CHECK(c.n == 2);
    const dsk_row *r = &c.rows[0];
    CHECK(r->n_tokens == 2 * L && r->split == L && (r->flags & DSK_ROW_PAIR));
    CHECK(memcmp(r->tokens, toks, 10 * 4) == 0 && r->tokens[10] == EOT);
    CHECK(memcmp(r->tokens + L, toks, 6 * 4) == 0 && memcmp(r->tokens + L + 6, toks + 10, 7 * 4) == 0);
    CHECK(r->mask[5] == 0 && r->mask[6] == 1 && r->mask[9] == 1 && r->mask[10] == 0 && r->mask[L + 12] == 1 &&
          r->mask[L + 13] == 0);
    r = &c.rows[1];
    CHECK(r->tokens[0] == 11 && r->tokens[8] == 19 && r->tokens[9] == 20 && r->tokens[16] == 27);
    CHECK(r->tokens[L] == 11 && r->tokens[L + 9] == 30 && r->tokens[2 * L - 1] == 37);
    CHECK(dsk_packer_stats(p, 0)->cropped == 11 + 2 + 2);
    dsk_packer_free(p);
    collected_free(&c);
}

RUN_TESTS(T(concat_keeps_every_token_once_in_order), T(bestfit_keeps_segments_whole), T(bestfit_crops_long_documents),
          T(sft_rows_are_one_conversation), T(dpo_rows_hold_both_answers))
