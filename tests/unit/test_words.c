#include "test.h"
#include "text/words.h"

static dsk_text_view view(const char *s)
{
    dsk_text_view v = {0};
    dsk_text_view_build(&v, s, strlen(s));
    return v;
}

TEST(words_split_on_whitespace)
{
    dsk_text_view v = view("Hello,  world!\n(quoted) -- 42");
    CHECK(v.n_words == 5);
    CHECK(v.n_lines == 2);
    CHECK(v.words[0].len == 6 && v.words[0].core_len == 5); /* "Hello," -> "Hello" */
    CHECK(v.words[2].core_len == 6 && v.words[2].core_nchars == 6); /* "(quoted)" */
    CHECK(v.words[3].flags & DSK_WORD_PUNCT_ONLY);             /* "--" */
    CHECK(!(v.words[4].flags & DSK_WORD_HAS_ALPHA));            /* "42" */
    CHECK(v.words[0].flags & DSK_WORD_HAS_ALPHA);
    CHECK(v.nchars == strlen("Hello,  world!\n(quoted) -- 42"));
    dsk_text_view_free(&v);
}

TEST(cjk_characters_are_words)
{
    /* 你好，世界 = 4 Han characters and a full-width comma */
    dsk_text_view v = view("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C abc");
    CHECK(v.n_words == 5);
    CHECK(v.n_cjk == 4);
    CHECK(v.n_letters == 7);
    CHECK(v.words[0].nchars == 1 && (v.words[0].flags & DSK_WORD_CJK));
    CHECK(v.words[1].nchars == 2 && v.words[1].core_nchars == 1); /* 好 with the comma */
    CHECK(v.words[4].len == 3 && !(v.words[4].flags & DSK_WORD_CJK));
    CHECK(v.nchars == 9);
    dsk_text_view_free(&v);
    /* 《诗》: brackets attach to the character; a letter after CJK starts a word */
    v = view("\xE3\x80\x8A\xE8\xAF\x97\xE3\x80\x8Bx");
    CHECK(v.n_words == 2);
    CHECK(v.words[0].nchars == 3 && v.words[0].core_nchars == 1 && (v.words[0].flags & DSK_WORD_CJK));
    dsk_text_view_free(&v);
}

TEST(lines_count_characters)
{
    dsk_text_view v = view("caf\xC3\xA9\n\nend");
    CHECK(v.n_lines == 3);
    CHECK(v.lines[0].nchars == 4 && v.lines[0].len == 5);
    CHECK(v.lines[1].len == 0);
    CHECK(v.lines[2].off == 7);
    dsk_text_view_free(&v);
}

RUN_TESTS(T(words_split_on_whitespace), T(cjk_characters_are_words), T(lines_count_characters))
