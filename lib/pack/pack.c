#include "pack/pack.h"

#include <stdlib.h>
#include <string.h>

const char *dsk_kind_name(int kind)
{
    return kind == DSK_KIND_PRETRAIN ? "pretrain" : kind == DSK_KIND_SFT ? "sft" : kind == DSK_KIND_DPO ? "dpo" : "none";
}

const char *dsk_pack_mode_name(int kind, int mode)
{
    if (kind == DSK_KIND_SFT)
        return mode == DSK_PACK_BESTFIT ? "bestfit" : "conversation";
    if (kind == DSK_KIND_DPO)
        return "pair";
    return mode == DSK_PACK_BESTFIT ? "bestfit" : "concat";
}

/* A piece of a segment waiting for a bestfit row. */
typedef struct piece {
    uint64_t off;          /* in the split's token arena */
    uint32_t len;
    uint32_t bin;
    uint8_t starts_doc, ends_doc;
} piece;

typedef struct split_state {
    dsk_row row;           /* the row being filled (concat), or being built */
    uint32_t fill;
    uint32_t *arena;       /* bestfit: buffered segment tokens */
    uint8_t *mask_arena;   /* bestfit of chat records: their masks, beside the tokens */
    uint64_t arena_len, arena_cap;
    piece *pieces;
    size_t n_pieces, cap_pieces;
    dsk_pack_stats st;
} split_state;

struct dsk_packer {
    dsk_pack_opts o;
    dsk_pack_emit_fn emit;
    void *ctx;
    int kind;
    uint64_t records;
    split_state s[DSK_SPLITS];
    /* bestfit placement scratch */
    uint32_t *order, *stack_next, *stack_head, *bin_room;
    uint64_t *nonempty;    /* bit c: some open row has exactly c tokens of room */
    size_t cap_order, cap_bins;
};

dsk_packer *dsk_packer_new(const dsk_pack_opts *o, dsk_pack_emit_fn emit, void *ctx)
{
    dsk_packer *p = dsk_xcalloc(1, sizeof *p);
    p->o = *o;
    if (!p->o.window_tokens)
        p->o.window_tokens = 16u << 20;
    p->emit = emit;
    p->ctx = ctx;
    for (int s = 0; s < DSK_SPLITS; s++)
        dsk_row_reserve(&p->s[s].row, 2 * o->row_len, o->row_len + 1);
    return p;
}

void dsk_packer_free(dsk_packer *p)
{
    if (!p)
        return;
    for (int s = 0; s < DSK_SPLITS; s++) {
        dsk_row_free(&p->s[s].row);
        free(p->s[s].arena);
        free(p->s[s].mask_arena);
        free(p->s[s].pieces);
    }
    free(p->order), free(p->stack_next), free(p->stack_head), free(p->bin_room), free(p->nonempty);
    free(p);
}

int dsk_packer_kind(const dsk_packer *p) { return p->kind; }
const dsk_pack_stats *dsk_packer_stats(const dsk_packer *p, int split) { return &p->s[split].st; }

static int emit_row(dsk_packer *p, int split, dsk_err *err)
{
    split_state *s = &p->s[split];
    s->st.rows++;
    s->st.row_tokens += s->row.n_tokens;
    return p->emit(p->ctx, split, &s->row, err);
}

/* Pads the row from fill to row_len: the first padding token is a target
 * when the document before it ended there. */
static void pad_row(dsk_packer *p, split_state *s, uint32_t from, uint32_t to, int doc_ended)
{
    dsk_row *r = &s->row;
    if (from >= to)
        return;
    for (uint32_t i = from; i < to; i++) {
        r->tokens[i] = p->o.eot;
        r->mask[i] = 0;
    }
    r->mask[from] = (uint8_t)(doc_ended != 0);
    r->boundaries[r->n_boundaries++] = from;
    r->flags |= DSK_ROW_MASK;
    s->st.padding += to - from;
}

/* ---- concat ------------------------------------------------------------------ */

static int concat_push(dsk_packer *p, int split, const uint32_t *t, uint32_t n, int starts_segment, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint32_t L = p->o.row_len;
    while (n) {
        if (s->fill == 0) {
            s->row.n_boundaries = 0;
            s->row.flags = DSK_ROW_BOUNDARIES;
        }
        if (starts_segment) {
            s->row.boundaries[s->row.n_boundaries++] = s->fill;
            starts_segment = 0;
        }
        uint32_t k = n < L - s->fill ? n : L - s->fill;
        memcpy(s->row.tokens + s->fill, t, (size_t)k * sizeof *t);
        memset(s->row.mask + s->fill, 1, k);
        s->fill += k, t += k, n -= k;
        if (s->fill == L) {
            s->row.n_tokens = L;
            s->fill = 0;
            int rc = emit_row(p, split, err);
            if (rc)
                return rc;
        }
    }
    return 0;
}

static int concat_add(dsk_packer *p, int split, const dskt_record *rec, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint64_t first_row = s->st.rows;
    int rc = concat_push(p, split, &p->o.eot, 1, 1, err);
    if (!rc)
        rc = concat_push(p, split, rec->tokens, rec->n_tokens, 0, err);
    uint64_t last_row = s->st.rows - (s->fill == 0 && s->st.rows > 0);
    if (last_row > first_row)
        s->st.cut_documents++;
    return rc;
}

static int concat_finish(dsk_packer *p, int split, dsk_err *err)
{
    split_state *s = &p->s[split];
    if (s->fill == 0)
        return 0;
    pad_row(p, s, s->fill, p->o.row_len, 1);
    s->row.n_tokens = p->o.row_len;
    s->fill = 0;
    return emit_row(p, split, err);
}

/* ---- bestfit ------------------------------------------------------------------- */

static void add_piece(split_state *s, uint64_t off, uint32_t len, int starts, int ends)
{
    if (s->n_pieces == s->cap_pieces) {
        s->cap_pieces = s->cap_pieces ? 2 * s->cap_pieces : 1024;
        s->pieces = dsk_xrealloc(s->pieces, s->cap_pieces * sizeof *s->pieces);
    }
    s->pieces[s->n_pieces++] = (piece){off, len, 0, (uint8_t)starts, (uint8_t)ends};
}

static const piece *sort_pieces;  /* qsort has no context argument in C11 */

static int by_length_then_arrival(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    uint32_t lx = sort_pieces[x].len, ly = sort_pieces[y].len;
    if (lx != ly)
        return lx > ly ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* The smallest room >= need that some open row has, or 0 if none. */
static uint32_t find_room(const uint64_t *bits, uint32_t need, uint32_t max)
{
    for (uint32_t w = need / 64; w <= max / 64; w++) {
        uint64_t m = bits[w];
        if (w == need / 64)
            m &= ~0ull << (need % 64);
        if (m)
            return w * 64 + (uint32_t)__builtin_ctzll(m);
    }
    return 0;
}

/* Places the buffered pieces best-fit decreasing and emits the rows in the
 * order they were opened. */
static int bestfit_flush(dsk_packer *p, int split, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint32_t L = p->o.row_len;
    size_t n = s->n_pieces;
    if (!n)
        return 0;
    if (p->cap_order < n) {
        p->cap_order = n;
        p->order = dsk_xrealloc(p->order, n * sizeof *p->order);
        p->stack_next = dsk_xrealloc(p->stack_next, n * sizeof *p->stack_next);
        p->bin_room = dsk_xrealloc(p->bin_room, n * sizeof *p->bin_room);
    }
    if (!p->stack_head) {
        p->stack_head = dsk_xmalloc(((size_t)L + 1) * sizeof *p->stack_head);
        p->nonempty = dsk_xcalloc((size_t)L / 64 + 1, sizeof *p->nonempty);
    }
    for (uint32_t c = 0; c <= L; c++)
        p->stack_head[c] = UINT32_MAX;
    for (size_t i = 0; i < n; i++)
        p->order[i] = (uint32_t)i;
    sort_pieces = s->pieces;
    qsort(p->order, n, sizeof *p->order, by_length_then_arrival);

    uint32_t bins = 0;
    for (size_t k = 0; k < n; k++) {
        piece *pc = &s->pieces[p->order[k]];
        uint32_t room = find_room(p->nonempty, pc->len, L);
        uint32_t b;
        if (room) {  /* pop the row on top of that room's stack */
            b = p->stack_head[room];
            p->stack_head[room] = p->stack_next[b];
            if (p->stack_head[room] == UINT32_MAX)
                p->nonempty[room / 64] &= ~(1ull << (room % 64));
        } else {
            b = bins++;
            p->bin_room[b] = L;
        }
        pc->bin = b;
        p->bin_room[b] -= pc->len;
        uint32_t r = p->bin_room[b];
        if (r) {
            p->stack_next[b] = p->stack_head[r];
            p->stack_head[r] = b;
            p->nonempty[r / 64] |= 1ull << (r % 64);
        }
    }
    memset(p->nonempty, 0, ((size_t)L / 64 + 1) * sizeof *p->nonempty);

    /* Pieces grouped by row, in placement order: a counting sort by bin. */
    uint32_t *start = dsk_xcalloc((size_t)bins + 1, sizeof *start);
    uint32_t *grouped = dsk_xmalloc(n * sizeof *grouped);
    for (size_t i = 0; i < n; i++)
        start[s->pieces[i].bin + 1]++;
    for (uint32_t b = 0; b < bins; b++)
        start[b + 1] += start[b];
    for (size_t k = 0; k < n; k++)
        grouped[start[s->pieces[p->order[k]].bin]++] = p->order[k];
    int rc = 0, chat = p->kind == DSK_KIND_SFT;
    size_t k = 0;
    for (uint32_t b = 0; b < bins && !rc; b++) {
        dsk_row *r = &s->row;
        r->n_boundaries = 0;
        r->flags = chat ? DSK_ROW_BOUNDARIES | DSK_ROW_MASK : DSK_ROW_BOUNDARIES;
        uint32_t fill = 0;
        int ended = 0;
        for (; k < start[b]; k++) {
            const piece *pc = &s->pieces[grouped[k]];
            r->boundaries[r->n_boundaries++] = fill;
            memcpy(r->tokens + fill, s->arena + pc->off, (size_t)pc->len * sizeof *r->tokens);
            if (chat)   /* the record's own mask: its assistant turns */
                memcpy(r->mask + fill, s->mask_arena + pc->off, pc->len);
            else
                memset(r->mask + fill, 1, pc->len);
            if (!pc->starts_doc && fill > 0) {  /* the middle of a document is not predicted from another */
                r->mask[fill] = 0;
                r->flags |= DSK_ROW_MASK;
            }
            fill += pc->len;
            ended = pc->ends_doc && !chat;   /* a conversation's end token is in it, and not a target */
        }
        pad_row(p, s, fill, L, ended);
        r->n_tokens = L;
        rc = emit_row(p, split, err);
    }
    free(start);
    free(grouped);
    s->n_pieces = 0;
    s->arena_len = 0;
    return rc;
}

/* Room for n more buffered tokens (and their masks, with_mask: chat
 * records), taken: returns their offset in the arena. */
static uint64_t arena_take(split_state *s, uint64_t n, int with_mask)
{
    if (s->arena_len + n > s->arena_cap) {
        s->arena_cap = s->arena_len + n > 2 * s->arena_cap ? s->arena_len + n : 2 * s->arena_cap;
        s->arena = dsk_xrealloc(s->arena, s->arena_cap * sizeof *s->arena);
        if (with_mask)
            s->mask_arena = dsk_xrealloc(s->mask_arena, s->arena_cap);
    }
    uint64_t off = s->arena_len;
    s->arena_len += n;
    return off;
}

static int bestfit_add(dsk_packer *p, int split, const dskt_record *rec, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint32_t L = p->o.row_len;
    uint64_t seg = (uint64_t)rec->n_tokens + 1;
    uint64_t keep = seg;
    if (seg > L && p->o.crop_long) {
        keep = L;
        s->st.cropped += seg - L;
    }
    uint64_t off = arena_take(s, keep, 0);
    s->arena[off] = p->o.eot;
    memcpy(s->arena + off + 1, rec->tokens, (keep - 1) * sizeof *s->arena);
    if (seg > L)
        s->st.cut_documents++;
    for (uint64_t at = 0; at < keep; at += L) {
        uint32_t len = (uint32_t)(keep - at < L ? keep - at : L);
        add_piece(s, off + at, len, at == 0, at + len == seg);
    }
    return s->arena_len >= p->o.window_tokens ? bestfit_flush(p, split, err) : 0;
}

/* ---- conversations and preference pairs ------------------------------------------ */

/* bestfit: the conversation, cropped to a row, buffered with its mask as
 * one piece, placed like a plain document's (none is cut). */
static int sft_bestfit_add(dsk_packer *p, int split, const dskt_record *rec, uint32_t n, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint64_t off = arena_take(s, n, 1);
    memcpy(s->arena + off, rec->tokens, (size_t)n * sizeof *s->arena);
    memcpy(s->mask_arena + off, rec->mask, n);
    add_piece(s, off, n, 1, 1);
    return s->arena_len >= p->o.window_tokens ? bestfit_flush(p, split, err) : 0;
}

static int sft_add(dsk_packer *p, int split, const dskt_record *rec, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint32_t L = p->o.row_len, n = rec->n_tokens < L ? rec->n_tokens : L;
    dsk_row *r = &s->row;
    if (rec->n_tokens == 0)   /* dsk-bpe writes none: a conversation has its template's tokens at least */
        return dsk_fail(err, EX_DATAERR, "a chat record with no tokens");
    if (rec->n_tokens > L) {
        s->st.cropped += rec->n_tokens - L;
        s->st.cut_documents++;
    }
    if (p->o.mode == DSK_PACK_BESTFIT)
        return sft_bestfit_add(p, split, rec, n, err);
    memcpy(r->tokens, rec->tokens, (size_t)n * sizeof *r->tokens);
    memcpy(r->mask, rec->mask, n);
    r->flags = DSK_ROW_MASK | DSK_ROW_BOUNDARIES;
    r->n_boundaries = 0;
    r->boundaries[r->n_boundaries++] = 0;
    pad_row(p, s, n, L, 0);
    r->n_tokens = L;
    return emit_row(p, split, err);
}

/* One half of a pair: the prompt's last keep_prompt tokens, then the answer cropped to fit
 * (the caller counts the prompt's cropped tokens). */
static void pair_half(dsk_packer *p, split_state *s, uint32_t at, const uint32_t *prompt, uint32_t n_prompt,
                      uint32_t keep_prompt, const uint32_t *answer, uint32_t n_answer)
{
    uint32_t L = p->o.row_len, keep_answer = n_answer < L - keep_prompt ? n_answer : L - keep_prompt;
    dsk_row *r = &s->row;
    memcpy(r->tokens + at, prompt + n_prompt - keep_prompt, (size_t)keep_prompt * sizeof *r->tokens);
    memset(r->mask + at, 0, keep_prompt);
    memcpy(r->tokens + at + keep_prompt, answer, (size_t)keep_answer * sizeof *r->tokens);
    memset(r->mask + at + keep_prompt, 1, keep_answer);
    uint32_t used = keep_prompt + keep_answer;
    for (uint32_t i = used; i < L; i++) {
        r->tokens[at + i] = p->o.eot;
        r->mask[at + i] = 0;
    }
    s->st.padding += L - used;
    s->st.cropped += n_answer - keep_answer;
}

static int dpo_add(dsk_packer *p, int split, const dskt_record *rec, dsk_err *err)
{
    split_state *s = &p->s[split];
    uint32_t L = p->o.row_len;
    uint32_t np = rec->n_prompt, nc = rec->n_chosen, nr = rec->n_tokens - np - nc;
    uint32_t longest = nc > nr ? nc : nr;
    /* The same prompt tail in both halves; at least half a row for the answers. */
    uint32_t keep_prompt = np;
    if (np + longest > L) {
        uint32_t room = longest < L / 2 ? L - longest : L - L / 2;
        keep_prompt = np < room ? np : room;
        s->st.cut_documents++;
    }
    s->st.cropped += np - keep_prompt;  /* the prompt once, though both halves hold it */
    pair_half(p, s, 0, rec->tokens, np, keep_prompt, rec->tokens + np, nc);
    pair_half(p, s, L, rec->tokens, np, keep_prompt, rec->tokens + np + nc, nr);
    s->row.flags = DSK_ROW_PAIR | DSK_ROW_MASK;
    s->row.n_boundaries = 0;
    s->row.split = L;
    s->row.n_tokens = 2 * L;
    return emit_row(p, split, err);
}

/* ---- the packer ------------------------------------------------------------------ */

int dsk_packer_add(dsk_packer *p, const dskt_record *rec, dsk_err *err)
{
    int kind = rec->kind == DSKT_CHAT ? DSK_KIND_SFT : rec->kind == DSKT_PREFERENCE ? DSK_KIND_DPO : DSK_KIND_PRETRAIN;
    p->records++;
    if (!p->kind)
        p->kind = kind;
    if (kind != p->kind)
        return dsk_fail(err, EX_DATAERR, "%s data after %s data; pack them into separate datasets",
                        dsk_kind_name(kind), dsk_kind_name(p->kind));
    int split = rec->split >= 0 && rec->split < DSK_SPLITS ? rec->split : 0;
    split_state *s = &p->s[split];
    s->st.documents++;
    s->st.document_tokens += rec->n_tokens;
    if (kind == DSK_KIND_SFT)
        return sft_add(p, split, rec, err);
    if (kind == DSK_KIND_DPO && p->o.mode == DSK_PACK_BESTFIT)
        return dsk_fail(err, EX_DATAERR, "preference pairs are packed a pair a row: --pack bestfit is for plain "
                        "documents and chat records");
    if (kind == DSK_KIND_DPO)
        return dpo_add(p, split, rec, err);
    return p->o.mode == DSK_PACK_BESTFIT ? bestfit_add(p, split, rec, err) : concat_add(p, split, rec, err);
}

int dsk_packer_finish(dsk_packer *p, dsk_err *err)
{
    for (int split = 0; split < DSK_SPLITS; split++) {
        int rc = p->o.mode == DSK_PACK_BESTFIT ? bestfit_flush(p, split, err) : concat_finish(p, split, err);
        if (rc)
            return rc;
    }
    return 0;
}
