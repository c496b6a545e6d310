#include "test.h"
#include "text/normalize.h"

static char *norm(const char *s, dsk_norm_form form, int tidy, dsk_normalize_counts *c)
{
    dsk_normalize_opts o = {form, tidy};
    dsk_buf out = {0}, scratch = {0};
    dsk_normalize_counts ignore = {0};
    dsk_normalize_text(s, strlen(s), &o, &out, &scratch, c ? c : &ignore);
    dsk_buf_free(&scratch);
    return out.data ? out.data : strdup("");
}

#define CHECK_NORM(in, form, tidy, want)        \
    do {                                        \
        char *got_ = norm(in, form, tidy, NULL); \
        CHECK_STR(got_, want);                  \
        free(got_);                             \
    } while (0)

TEST(ansi_escapes_are_removed)
{
    dsk_normalize_counts c = {0};
    /* as in fortunes-zh: colour on, text, colour off */
    char *s = norm("\x1b[32m\xE3\x80\x8A\xE6\x84\x9F\xE9\x81\x87\xE3\x80\x8B\x1b[m\nnext", DSK_NORM_NFC, 1, &c);
    CHECK_STR(s, "\xE3\x80\x8A\xE6\x84\x9F\xE9\x81\x87\xE3\x80\x8B\nnext");
    CHECK(c.escapes_removed == 2);
    free(s);
    CHECK_NORM("a\x1b]0;title\x07z", DSK_NORM_NFC, 1, "az");     /* OSC with BEL */
    CHECK_NORM("a\x1b]0;title\x1b\\z", DSK_NORM_NFC, 1, "az");   /* OSC with ST */
    CHECK_NORM("a\x1b(Bz", DSK_NORM_NFC, 1, "az");               /* charset designation */
    CHECK_NORM("a\x1b[1;31;40mb\x1b[0m", DSK_NORM_NONE, 1, "ab");
    CHECK_NORM("end\x1b", DSK_NORM_NONE, 1, "end");
}

TEST(controls_are_removed_and_line_ends_unified)
{
    dsk_normalize_counts c = {0};
    char *s = norm("a\x01" "b\x7f" "c\r\nd\re\xC2\x85" "f\xEF\xBB\xBFg", DSK_NORM_NFC, 0, &c);
    CHECK_STR(s, "abc\nd\ne\nfg");
    CHECK(c.controls_removed == 3);
    free(s);
    CHECK_NORM("x\xC2\x9By", DSK_NORM_NONE, 0, "xy"); /* C1 control */
    /* UTF-8 read as Latin-1 (mojibake: U+2019 as \u00e2\u0080\u0099, U+201D ending in
     * U+009D): a C1 character there is not an 8-bit escape: it goes, and only it */
    CHECK_NORM("a \xC3\xA2\xC2\x80\xC2\x9D; you can say\nb", DSK_NORM_NONE, 0, "a \xC3\xA2; you can say\nb");
    CHECK_NORM("\xC3\xA2\xC2\x80\xC2\x98quoted", DSK_NORM_NONE, 0, "\xC3\xA2quoted");
}

TEST(unicode_normal_forms)
{
    CHECK_NORM("cafe\xCC\x81", DSK_NORM_NFC, 0, "caf\xC3\xA9");         /* e + combining acute */
    CHECK_NORM("cafe\xCC\x81", DSK_NORM_NONE, 0, "cafe\xCC\x81");
    CHECK_NORM("\xEF\xAC\x81" "ne", DSK_NORM_NFC, 0, "\xEF\xAC\x81" "ne"); /* ligature kept by NFC */
    CHECK_NORM("\xEF\xAC\x81" "ne", DSK_NORM_NFKC, 0, "fine");
    CHECK_NORM("\xEF\xBC\xA1\xEF\xBC\x91", DSK_NORM_NFKC, 0, "A1");     /* full-width */
}

TEST(whitespace_is_tidied)
{
    CHECK_NORM("  hello   world  \n", DSK_NORM_NFC, 1, "hello world");
    CHECK_NORM("a\n\n\n\n\nb", DSK_NORM_NFC, 1, "a\n\nb");
    CHECK_NORM("a\n  \n\t\n  \nb", DSK_NORM_NFC, 1, "a\n\nb");
    CHECK_NORM("poem:\n    indented line\n\t\t-- Author", DSK_NORM_NFC, 1,
               "poem:\n    indented line\n\t\t-- Author");
    CHECK_NORM("x\xC2\xA0\xC2\xA0y\xE3\x80\x80z", DSK_NORM_NFC, 1, "x y z"); /* NBSP, ideographic space */
    CHECK_NORM("\n\n  \n", DSK_NORM_NFC, 1, "");
    CHECK_NORM("a  b\r\n", DSK_NORM_NFC, 0, "a  b\n");  /* keep: only line ends change */
}

RUN_TESTS(T(ansi_escapes_are_removed), T(controls_are_removed_and_line_ends_unified), T(unicode_normal_forms),
          T(whitespace_is_tidied))
