#include "test.h"
#include "text/utf8.h"

static char *repair(const char *s, size_t n, size_t *replaced)
{
    dsk_buf b = {0};
    *replaced = dsk_utf8_repair(s, n, &b);
    return b.data ? b.data : strdup("");
}

TEST(valid_text_is_valid)
{
    const char *s = "plain ASCII, caf\xC3\xA9, \xE4\xB8\xAD\xE6\x96\x87, \xF0\x9F\x98\x80";
    CHECK(dsk_utf8_find_invalid(s, strlen(s)) == strlen(s));
}

TEST(invalid_forms_are_found)
{
    CHECK(dsk_utf8_find_invalid("ab\x80", 3) == 2);          /* lone continuation */
    CHECK(dsk_utf8_find_invalid("\xC0\xAF", 2) == 0);        /* overlong */
    CHECK(dsk_utf8_find_invalid("\xE0\x80\xAF", 3) == 0);    /* overlong 3-byte */
    CHECK(dsk_utf8_find_invalid("\xED\xA0\x80", 3) == 0);    /* surrogate D800 */
    CHECK(dsk_utf8_find_invalid("\xF4\x90\x80\x80", 4) == 0); /* above U+10FFFF */
    CHECK(dsk_utf8_find_invalid("x\xE4\xB8", 3) == 1);       /* truncated */
    CHECK(dsk_utf8_find_invalid("\xFF", 1) == 0);
}

TEST(repair_uses_maximal_subparts)
{
    size_t r;
    char *s = repair("a\xE4\xB8z", 4, &r); /* truncated 3-byte: one replacement */
    CHECK_STR(s, "a\xEF\xBF\xBDz");
    CHECK(r == 1);
    free(s);
    s = repair("\xE0\x80", 2, &r); /* E0 80 is two maximal subparts */
    CHECK_STR(s, "\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(r == 2);
    free(s);
    s = repair("\xF0\x9F\x98", 3, &r); /* truncated emoji */
    CHECK_STR(s, "\xEF\xBF\xBD");
    free(s);
}

TEST(repair_output_is_always_valid)
{
    unsigned state = 12345;
    for (int iter = 0; iter < 2000; iter++) {
        char in[64];
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            state = state * 1103515245u + 12345u;
            in[i] = (char)(state >> 16);
        }
        size_t r;
        dsk_buf b = {0};
        r = dsk_utf8_repair(in, n, &b);
        CHECK(dsk_utf8_find_invalid(b.data ? b.data : "", b.len) == b.len);
        if (dsk_utf8_find_invalid(in, n) == n)
            CHECK(r == 0 && b.len == n && memcmp(b.data ? b.data : "", in, n) == 0);
        dsk_buf_free(&b);
    }
}

TEST(encode_decode_round_trip)
{
    static const uint32_t cps[] = {0, 0x41, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof cps[0]; i++) {
        char buf[4];
        size_t n = dsk_utf8_encode(cps[i], buf), m;
        CHECK(dsk_utf8_seq_len((const uint8_t *)buf, n) == n);
        CHECK(dsk_utf8_decode((const uint8_t *)buf, &m) == cps[i]);
        CHECK(m == n);
    }
}

/* Characters of the repaired text before each byte: a valid sequence and
 * a maximal invalid subpart count one each, and a character an offset
 * falls inside is not counted yet. */
TEST(char_offsets_count_the_repaired_text)
{
    /* "a", U+00E9 (2 bytes), a lone continuation byte, "x", a cut 3-byte form, "z" */
    const char s[] = "a\xC3\xA9\x80x\xE4\xB8z";
    size_t n = sizeof s - 1, at[] = {0, 1, 2, 3, 4, 5, 6, 7, 8}, out[9];
    size_t pos = 0, count = 0;
    dsk_utf8_char_offsets(s, n, at, 9, out, &pos, &count);
    static const size_t want[] = {0, 1, 1, 2, 3, 4, 4, 5, 6};
    for (int i = 0; i < 9; i++)
        CHECK(out[i] == want[i]);
    /* The same counted a byte at a time, as a stream grows its text: a cut
     * sequence at the end is not taken for a whole character. */
    pos = 0, count = 0;
    for (size_t len = 1; len <= n; len++) {
        size_t one;
        dsk_utf8_char_offsets(s, len, &at[len - 1], 1, &one, &pos, &count);
        CHECK(one == want[len - 1]);
    }
    dsk_buf b = {0};
    dsk_utf8_repair(s, n, &b);   /* the same count of characters as the repaired text has */
    size_t chars = 0;
    for (size_t i = 0; i < b.len; i++)
        chars += ((unsigned char)b.data[i] & 0xC0) != 0x80;
    CHECK(chars == out[8]);
    dsk_buf_free(&b);
}

/* A cut inside a character moves back to its lead byte; a whole one, a
 * byte that leads nothing, or a lead before from stays. */
TEST(whole_stops_before_an_unfinished_character)
{
    static const char s[] = "a\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80";   /* 1, 2, 3 and 4 bytes */
    CHECK(dsk_utf8_whole(s, 0, 0) == 0);
    CHECK(dsk_utf8_whole(s, 0, 1) == 1);
    CHECK(dsk_utf8_whole(s, 0, 2) == 1);    /* half the e-acute */
    CHECK(dsk_utf8_whole(s, 0, 3) == 3);
    CHECK(dsk_utf8_whole(s, 0, 4) == 3);    /* one byte of three */
    CHECK(dsk_utf8_whole(s, 0, 5) == 3);
    CHECK(dsk_utf8_whole(s, 0, 6) == 6);
    CHECK(dsk_utf8_whole(s, 0, 9) == 6);    /* three bytes of four */
    CHECK(dsk_utf8_whole(s, 0, 10) == 10);
    CHECK(dsk_utf8_whole(s, 4, 5) == 5);    /* the lead byte is before from */
    CHECK(dsk_utf8_whole("\x80\x80", 0, 2) == 2);   /* no lead byte */
    CHECK(dsk_utf8_whole("a\xff", 0, 2) == 2);       /* a byte that leads nothing */
    /* nor do overlong leads and those past U+10FFFF */
    CHECK(dsk_utf8_whole("a\xc0", 0, 2) == 2 && dsk_utf8_whole("a\xc1", 0, 2) == 2);
    CHECK(dsk_utf8_whole("a\xf5", 0, 2) == 2 && dsk_utf8_whole("a\xf7\x80", 0, 3) == 3);
    CHECK(dsk_utf8_whole("a\xc2", 0, 2) == 1 && dsk_utf8_whole("a\xf4\x80", 0, 3) == 1);
}

RUN_TESTS(T(valid_text_is_valid), T(invalid_forms_are_found), T(repair_uses_maximal_subparts), T(whole_stops_before_an_unfinished_character),
          T(repair_output_is_always_valid), T(encode_decode_round_trip), T(char_offsets_count_the_repaired_text))
