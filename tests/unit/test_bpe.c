#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "bpe/formats.h"
#include "bpe/train.h"
#include "test.h"
#include "text/utf8.h"

/* A small byte-level BPE: the 256 bytes, then merges in id order. */
static void tiny(dsk_tokenizer *t)
{
    dsk_err err = {0};
    dsk_tokenizer_init(t);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        dsk_tokenizer_add(t, (uint32_t)b, &c, 1, &err);
    }
    static const char *const merges[] = {"aa", "ab", "aaaa", "ba", "abab", "th", "the", " the", "aaa", "bb", "bbbb"};
    for (size_t i = 0; i < sizeof merges / sizeof merges[0]; i++)
        CHECK(dsk_tokenizer_add(t, 256 + (uint32_t)i, merges[i], strlen(merges[i]), &err) == 0);
    CHECK(dsk_tokenizer_add_special(t, 300, "<|end|>", &err) == 0);
    CHECK(dsk_tokenizer_set_pattern(t, dsk_bpe_named_pattern("gpt2"), &err) == 0);
    CHECK(dsk_tokenizer_finish(t, &err) == 0);
}

static char *ids_of(const dsk_tokenizer *t, const char *text, int allow_special)
{
    dsk_bpe_encoder e;
    dsk_bpe_encoder_init(&e, t);
    dsk_err err = {0};
    dsk_bpe_encode(t, &e, text, strlen(text), allow_special, &err);
    dsk_buf b = {0};
    for (size_t i = 0; i < e.n_ids; i++)
        dsk_buf_printf(&b, i ? " %u" : "%u", e.ids[i]);
    dsk_bpe_encoder_free(&e);
    return b.data ? b.data : strdup("");
}

#define CHECK_IDS(t, text, special, want)          \
    do {                                           \
        char *got_ = ids_of(t, text, special);     \
        CHECK_STR(got_, want);                     \
        free(got_);                                \
    } while (0)

TEST(merges_lowest_id_first)
{
    dsk_tokenizer t;
    tiny(&t);
    CHECK_IDS(&t, "aaaa", 0, "258");           /* aa+aa, then aaaa */
    CHECK_IDS(&t, "aaa", 0, "264");            /* "aaa" is a token of its own */
    CHECK_IDS(&t, "aaaaa", 0, "258 97");       /* leftmost on ties */
    CHECK_IDS(&t, "abab", 0, "260");
    CHECK_IDS(&t, "the the", 0, "262 263");    /* " the" is one pre-token */
    CHECK_IDS(&t, "x", 0, "120");
    dsk_tokenizer_free(&t);
}

TEST(specials_only_when_allowed)
{
    dsk_tokenizer t;
    tiny(&t);
    CHECK_IDS(&t, "a<|end|>b", 1, "97 300 98");
    char *plain = ids_of(&t, "a<|end|>b", 0);
    CHECK(strstr(plain, "300") == NULL);
    free(plain);
    dsk_tokenizer_free(&t);
}

/* n pseudo-random bytes over "abth " (the tiny vocabulary's letters) into
 * buf, from *state. */
static void random_piece(uint8_t *buf, size_t n, unsigned *state)
{
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1103515245u + 12345u;
        buf[i] = "abth "[(*state >> 16) % 5];
    }
}

/* The same ids from two encoders' last pieces. */
static int same_ids(const dsk_bpe_encoder *a, const dsk_bpe_encoder *b)
{
    return a->n_ids == b->n_ids && memcmp(a->ids, b->ids, a->n_ids * sizeof *a->ids) == 0;
}

/* The pattern runs without UTF-8 checks: invalid UTF-8 is refused first. */
TEST(invalid_utf8_is_refused)
{
    dsk_tokenizer t;
    tiny(&t);
    dsk_bpe_encoder e;
    dsk_bpe_encoder_init(&e, &t);
    dsk_err err = {0};
    static const char bad[] = "jjjjjjjjjjjjjjjjjjzjjjjjjjjjjjjjjjjjjjjjjq\xfb the";
    CHECK(dsk_bpe_encode(&t, &e, bad, sizeof bad - 1, 0, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "invalid UTF-8 at byte 42") != NULL);
    CHECK(dsk_bpe_encode(&t, &e, bad, sizeof bad - 1, 1, &err) == EX_DATAERR);
    CHECK(dsk_bpe_encode(&t, &e, "\xed\xa0\x80", 3, 0, &err) == EX_DATAERR);   /* a surrogate */
    dsk_bpe_encoder_free(&e);
    dsk_tokenizer_free(&t);
}

/* A pattern that matches nothing at a character: counting takes the
 * whole character, as encoding does, never a byte of it. */
TEST(counting_an_empty_match_takes_a_character)
{
    dsk_tokenizer t;
    dsk_err err = {0};
    dsk_tokenizer_init(&t);
    CHECK(dsk_tokenizer_set_pattern(&t, "x*", &err) == 0);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t.re, NULL);
    dsk_bpe_counts c;
    dsk_bpe_counts_init(&c, 1024);
    CHECK(dsk_bpe_counts_add_text(&c, t.re, md, "\xc3\xa9\xc3\xa9\xe4\xb8\xad", 7, &err) == 0);
    CHECK(c.n == 2);   /* "\xc3\xa9" twice, "\xe4\xb8\xad" once */
    for (size_t i = 0; i < c.n; i++) {
        size_t len = (size_t)(c.off[i] & 0xFFFFFF);
        CHECK((len == 2 && c.count[i] == 2) || (len == 3 && c.count[i] == 1));
    }
    dsk_bpe_counts_free(&c);
    pcre2_match_data_free(md);
    dsk_tokenizer_free(&t);
}

TEST(heap_and_scan_agree)
{
    dsk_tokenizer t;
    tiny(&t);
    dsk_bpe_encoder a, b;
    dsk_bpe_encoder_init(&a, &t);
    dsk_bpe_encoder_init(&b, &t);
    unsigned state = 99;
    int same = 1;
    for (int iter = 0; iter < 300; iter++) {
        uint8_t buf[400];
        size_t n = 2 + (size_t)(iter % 398);
        random_piece(buf, n, &state);
        a.n_ids = b.n_ids = 0;
        dsk_bpe_encode_piece_with(&t, &a, buf, n, 0);
        dsk_bpe_encode_piece_with(&t, &b, buf, n, 1);
        same &= same_ids(&a, &b);
    }
    CHECK(same);
    dsk_bpe_encoder_free(&a);
    dsk_bpe_encoder_free(&b);
    dsk_tokenizer_free(&t);
}

/* The index keeps tokens of up to 8 bytes as their own zero-padded key:
 * a token and the same bytes with zeros after them, or a prefix, must
 * not be confused; nor tokens on either side of 8 bytes. */
TEST(lookup_finds_every_token_and_nothing_else)
{
    dsk_tokenizer t;
    tiny(&t);
    dsk_err err = {0};
    static const struct {
        const char *bytes;
        size_t len;
    } extra[] = {{"a\0", 2},      {"a\0\0", 3},        {"\0\0\0", 3},         {"abcdefg", 7},
                 {"abcdefgh", 8}, {"abcdefghi", 9},    {"abcdefgh\0", 9},     {"\0abcdefg", 8},
                 {"q\0q\0", 4},   {"longer than sixteen bytes", 25}, {"zz", 2}, {"zzz", 3}};
    uint32_t first = 400;
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        CHECK(dsk_tokenizer_add(&t, first + (uint32_t)i, extra[i].bytes, extra[i].len, &err) == 0);
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
        CHECK(dsk_tokenizer_lookup(&t, extra[i].bytes, extra[i].len) == first + i);
    for (uint32_t id = 0; id < t.n_vocab; id++) {
        size_t len;
        const char *b = dsk_tokenizer_bytes(&t, id, &len);
        if (len && !dsk_tokenizer_is_special(&t, id))
            CHECK(dsk_tokenizer_lookup(&t, b, len) == id);
    }
    static const struct {
        const char *bytes;
        size_t len;
    } absent[] = {{"\0\0", 2},  {"a\0\0\0", 4}, {"abcdef", 6},       {"abcdefghij", 10}, {"abcdefgh\0\0", 10},
                  {"q\0q", 3}, {"zzzz", 4},      {"longer than sixteen byte", 24}, {"", 0},
                  {"abcdefXY", 8}, {"abcdeXgh", 8},   {"Xbcdefgh", 8},     {"abcXefg", 7}};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        CHECK(dsk_tokenizer_lookup(&t, absent[i].bytes, absent[i].len) == DSK_BPE_NO_TOKEN);
    dsk_tokenizer_free(&t);
}

/* Pieces that merge into several tokens go through the encoder's cache:
 * more distinct pieces than it has slots, each encoded twice in a
 * scrambled order, must give what merging them afresh gives. */
TEST(piece_cache_agrees_with_merging)
{
    dsk_tokenizer t;
    tiny(&t);
    enum { PIECES = 40000 };
    dsk_bpe_encoder cached, fresh;
    dsk_bpe_encoder_init(&cached, &t);
    dsk_bpe_encoder_init(&fresh, &t);
    int same = 1;
    for (int pass = 0; pass < 2; pass++) {
        for (unsigned k = 0; k < PIECES; k++) {
            unsigned piece = pass ? (k * 7919u) % PIECES : k, state = piece * 2654435761u + 1;
            uint8_t buf[32];
            size_t n = 2 + piece % 29;
            random_piece(buf, n, &state);
            cached.n_ids = fresh.n_ids = 0;
            dsk_bpe_encode_piece(&t, &cached, buf, n);
            dsk_bpe_encode_piece_with(&t, &fresh, buf, n, 0);
            same &= same_ids(&cached, &fresh);
        }
    }
    CHECK(same);
    dsk_bpe_encoder_free(&cached);
    dsk_bpe_encoder_free(&fresh);
    dsk_tokenizer_free(&t);
}

TEST(decode_inverts_encode)
{
    dsk_tokenizer t;
    tiny(&t);
    dsk_bpe_encoder e;
    dsk_bpe_encoder_init(&e, &t);
    unsigned state = 7;
    int ok = 1;
    for (int iter = 0; iter < 500; iter++) {
        char s[200];
        size_t n = 0;
        while (n < (size_t)(iter % 60)) {  /* random valid UTF-8 */
            state = state * 1103515245u + 12345u;
            uint32_t cp = (state >> 8) % 5 == 0 ? 0x80 + (state >> 12) % 0x10000 : 32 + (state >> 16) % 95;
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 'x';
            n += dsk_utf8_encode(cp, s + n);
        }
        e.n_ids = 0;
        dsk_err err = {0};
        dsk_bpe_encode(&t, &e, s, n, 0, &err);
        dsk_buf out = {0};
        dsk_bpe_decode(&t, e.ids, e.n_ids, &out, &err);
        ok &= out.len == n && (n == 0 || memcmp(out.data, s, n) == 0);
        dsk_buf_free(&out);
    }
    CHECK(ok);
    dsk_bpe_encoder_free(&e);
    dsk_tokenizer_free(&t);
}

TEST(bad_vocabularies_are_refused)
{
    dsk_tokenizer t;
    dsk_err err = {0};
    dsk_tokenizer_init(&t);
    CHECK(dsk_tokenizer_add(&t, 0, "a", 1, &err) == 0);
    CHECK(dsk_tokenizer_add(&t, 1, "a", 1, &err) == EX_DATAERR);  /* same bytes twice */
    CHECK(dsk_tokenizer_add(&t, 0, "b", 1, &err) == EX_DATAERR);  /* same id twice */
    CHECK(dsk_tokenizer_add(&t, DSK_BPE_MAX_VOCAB, "c", 1, &err) == EX_DATAERR);
    CHECK(dsk_tokenizer_set_pattern(&t, "gpt2", &err) == 0);
    CHECK(dsk_tokenizer_finish(&t, &err) == EX_DATAERR);           /* bytes missing */
    CHECK(strstr(err.msg, "byte 0x00") != NULL);
    CHECK(dsk_tokenizer_set_pattern(&t, "(", &err) == EX_USAGE);
    dsk_tokenizer_free(&t);
}

TEST(byte_level_unicode_round_trip)
{
    dsk_buf u = {0}, b = {0};
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    dsk_bpe_bytes_to_unicode(all, 256, &u);
    CHECK(dsk_bpe_unicode_to_bytes(u.data, u.len, &b) == 0);
    CHECK(b.len == 256 && memcmp(b.data, all, 256) == 0);
    CHECK(dsk_bpe_byte_to_unicode(' ') == 0x120);  /* "Ġ" */
    CHECK(dsk_bpe_byte_to_unicode('A') == 'A');
    dsk_buf_clear(&b);
    CHECK(dsk_bpe_unicode_to_bytes("\xE4\xB8\xAD", 3, &b) == -1);  /* not byte-level */
    dsk_buf_free(&u);
    dsk_buf_free(&b);
}

TEST(merge_pairs_for_tokenizer_json)
{
    dsk_tokenizer t;
    tiny(&t);
    uint32_t l, r;
    CHECK(dsk_bpe_merge_pair(&t, 258, &l, &r) == 0 && l == 256 && r == 256);  /* aaaa = aa + aa */
    CHECK(dsk_bpe_merge_pair(&t, 263, &l, &r) == 0 && l == ' ' && r == 262);  /* " the" */
    CHECK(dsk_bpe_merge_pair(&t, 'a', &l, &r) == -1);
    dsk_tokenizer_free(&t);
}

/* The last pre-token: where the pattern's last match begins; a text
 * that goes on encodes the bytes before it alike. */
TEST(last_piece_is_the_last_match)
{
    dsk_tokenizer t;
    tiny(&t);
    dsk_bpe_encoder e;
    dsk_bpe_encoder_init(&e, &t);
    static const struct {
        const char *text;
        size_t last;
    } cases[] = {{"", 0}, {"the", 0}, {"ab the", 2}, {"{\"name\":\"", 6}, {"x  ", 1}, {"a\xc3\xa9 b", 3},
                 {"12345", 0}, {"it's", 2}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t got = dsk_bpe_last_piece(&t, &e, cases[i].text, strlen(cases[i].text));
        if (got != cases[i].last)
            printf("# %s: %zu, not %zu\n", cases[i].text, got, cases[i].last);
        CHECK(got == cases[i].last);
    }
    CHECK(dsk_bpe_last_piece(&t, &e, "ab\xff", 3) == 0);   /* invalid UTF-8 */
    /* the pieces before the last are those of the text gone on */
    static const char text[] = "abab the aa{\"name\":\"", more[] = "abab the aa{\"name\":\"weather\"}";
    size_t cut = dsk_bpe_last_piece(&t, &e, text, strlen(text));
    char *head = strndup(text, cut), *whole = ids_of(&t, more, 0), *start = ids_of(&t, head, 0);
    CHECK(cut > 0 && strncmp(whole, start, strlen(start)) == 0 && whole[strlen(start)] == ' ');
    free(head), free(whole), free(start);
    dsk_bpe_encoder_free(&e);
    dsk_tokenizer_free(&t);
}

RUN_TESTS(T(counting_an_empty_match_takes_a_character), T(invalid_utf8_is_refused), T(merges_lowest_id_first), T(specials_only_when_allowed), T(heap_and_scan_agree),
          T(lookup_finds_every_token_and_nothing_else), T(piece_cache_agrees_with_merging), T(decode_inverts_encode),
          T(bad_vocabularies_are_refused), T(byte_level_unicode_round_trip), T(merge_pairs_for_tokenizer_json),
          T(last_piece_is_the_last_match))
