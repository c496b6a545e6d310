#include "clean/filters.h"
#include "test.h"

static dsk_filter_params P;
static dsk_filter_scratch S;

static const char GOOD[] =
    "The committee met on Tuesday to review the budget for the coming year. Members agreed that the "
    "library should have longer opening hours, and that the proposal to repair the roof of the town hall "
    "would be discussed with the contractors next month.\n\n"
    "Several residents spoke about the state of the roads. One of them asked whether the council had a plan "
    "to deal with the potholes on Main Street, and the chair promised to report back with an answer. The meeting closed at nine.";

static dsk_text_view V;

static dsk_text_view *view(const char *s)
{
    dsk_text_view_build(&V, s, strlen(s));
    return &V;
}

static const char *gq(const char *s) { return dsk_filter_gopher_quality(view(s), &P); }
static const char *gr(const char *s) { return dsk_filter_gopher_repetition(view(s), &P, &S); }
static const char *fw(const char *s) { return dsk_filter_fineweb(view(s), &P, &S); }

static char *repeat(const char *unit, int times, const char *sep)
{
    dsk_buf b = {0};
    for (int i = 0; i < times; i++) {
        if (i)
            dsk_buf_adds(&b, sep);
        dsk_buf_adds(&b, unit);
    }
    return b.data;
}

TEST(good_prose_passes_every_filter)
{
    CHECK(gq(GOOD) == NULL);
    CHECK(gr(GOOD) == NULL);
    CHECK(fw(GOOD) == NULL);
    dsk_buf out = {0};
    size_t removed;
    CHECK(dsk_filter_c4(view(GOOD), &P, &S, &out, &removed, NULL, NULL) == NULL);
    CHECK(removed == 0);
    dsk_buf_free(&out);
}

TEST(gopher_quality_rules)
{
    CHECK_STR(gq("Too short to be a document."), "gopher_quality.min_words");
    /* each row: a unit repeated into a document that trips exactly one rule */
    static const struct {
        const char *unit, *sep;
        int times;
        const char *rule;
    } cases[] = {
        {"a an of to is at by it on we", " ", 6, "gopher_quality.min_mean_word_length"},
        {"internationalization telecommunications the of", " ", 15, "gopher_quality.max_mean_word_length"},
        {"#tag the word and more", " ", 15, "gopher_quality.hash_ratio"},
        {"the story goes on and then...", " ", 12, "gopher_quality.ellipsis_ratio"},
        {"- the item of the list here with words", "\n", 10, "gopher_quality.bullet_lines"},
        {"1234 5678 9012 3456 7890 the and", " ", 10, "gopher_quality.alpha_words"},
        {"Quick brown foxes jump over lazy dogs daily", " ", 8, "gopher_quality.stop_words"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = repeat(cases[i].unit, cases[i].times, cases[i].sep);
        CHECK_STR(gq(s), cases[i].rule);
        free(s);
    }
    /* two different stop words, not one twice (datatrove, and Gopher's "at least two of") */
    char *one = repeat("the cat sits on the mat near green trees", 8, " ");
    CHECK_STR(gq(one), "gopher_quality.stop_words");
    free(one);
    char *two = repeat("the cat sits on the mat near green trees", 7, " ");
    two = realloc(two, strlen(two) + 32);
    strcat(two, " and the dog sleeps");
    CHECK(gq(two) == NULL);
    free(two);
    P.gq_min_stop_words = 0; /* switched off by --set */
    char *s = repeat("Quick brown foxes jump over lazy dogs daily", 8, " ");
    CHECK(gq(s) == NULL);
    free(s);
    dsk_filter_params_default(&P);
}

TEST(gopher_quality_is_script_aware)
{
    /* 60 Han characters: words of one character, no English stop words */
    char *s = repeat("\xE6\x98\xA5\xE7\x9C\xA0\xE4\xB8\x8D\xE8\xA7\x89\xE6\x99\x93\xE3\x80\x82", 15, "");
    CHECK(gq(s) == NULL);
    free(s);
}

TEST(gopher_repetition_rules)
{
    char *s = repeat("the same paragraph again and again", 5, "\n\n");
    CHECK_STR(gr(s), "gopher_repetition.dup_para_frac");
    free(s);
    char *u = malloc(4096);
    snprintf(u, 4096, "%s\nrepeated line here\nrepeated line here\nrepeated line here", GOOD);
    CHECK_STR(gr(u), "gopher_repetition.dup_line_frac");
    snprintf(u, 4096, "%s %s", GOOD, "buy now buy now buy now buy now buy now buy now buy now buy now buy now "
                                   "buy now buy now buy now buy now buy now buy now buy now buy now buy now");
    CHECK_STR(gr(u), "gopher_repetition.top_2gram");
    /* a block of 5-grams repeated across the text */
    snprintf(u, 4096, "%s alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
                      "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
                      "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron",
             "Short intro.");
    P.gr_top_ngram_frac[2] = P.gr_top_ngram_frac[3] = P.gr_top_ngram_frac[4] = 0;
    CHECK_STR(gr(u), "gopher_repetition.dup_5gram");
    dsk_filter_params_default(&P);
    /* a bigram seen once is not repetition (datatrove would drop this) */
    CHECK(gr("Hello world") == NULL);
    /* the top n-gram is the most frequent one ("aa bb", 3 x 5 of 155 characters, under 0.20), not the
     * one covering most ("extraordinarily unbelievable", 2 x 28, over it): as datatrove's */
    CHECK(gr("one aa bb two extraordinarily unbelievable three four aa bb five six seven extraordinarily "
             "unbelievable eight nine aa bb ten eleven twelve thirteen fourteen fifteen sixteen") == NULL);
    /* of two as frequent, the first seen: here the long one, which trips the rule */
    CHECK_STR(gr("extraordinarily unbelievable one aa bb two three extraordinarily unbelievable four five aa bb "
                 "six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen"),
              "gopher_repetition.top_2gram");
    free(u);
}

TEST(c4_rules)
{
    dsk_buf out = {0};
    size_t removed;
    char *s = malloc(4096);
    snprintf(s, 4096, "%s\nClick here\nThis site uses cookies to improve the experience.\n"
                      "Enable javascript to view the page properly.\nSee the notes[1] and more[edit].",
             GOOD);
    CHECK(dsk_filter_c4(view(s), &P, &S, &out, &removed, NULL, NULL) == NULL);
    CHECK(removed == 3);
    CHECK(strstr(out.data, "Click") == NULL && strstr(out.data, "cookies") == NULL);
    CHECK(strstr(out.data, "See the notes and more.") != NULL);
    snprintf(s, 4096, "%s\nLorem ipsum dolor sit amet, consectetur.", GOOD);
    CHECK_STR(dsk_filter_c4(view(s), &P, &S, &out, &removed, NULL, NULL), "c4.lorem_ipsum");
    snprintf(s, 4096, "%s\nint main() { return 0; }", GOOD);
    CHECK_STR(dsk_filter_c4(view(s), &P, &S, &out, &removed, NULL, NULL), "c4.curly_bracket");
    CHECK_STR(dsk_filter_c4(view("One sentence only, with enough words."), &P, &S, &out, &removed, NULL, NULL),
              "c4.min_sentences");
    P.c4_terminal_punct = 1;
    CHECK(dsk_filter_c4(view("Title line without punctuation\nThe first sentence is here. The second one too. "
                             "A third. A fourth. And a fifth."),
                        &P, &S, &out, &removed, NULL, NULL) == NULL);
    CHECK(removed == 1);
    dsk_filter_params_default(&P);
    free(s);
    dsk_buf_free(&out);
}

/* The view C4 derives from the input's words equals a fresh scan of its output. */
TEST(c4_view_matches_a_fresh_scan)
{
    static const char *const pieces[] = {"The cat sat on the mat.", "  indented line with words here.", "short",
                                         "Enable javascript now please.", "\xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96"
                                         "\xE7\x95\x8C\xE3\x80\x82\xE5\x86\x8D\xE8\xA7\x81\xE3\x80\x82",
                                         "Words, (punctuated) -- here!", "caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 ok.",
                                         "", "One more sentence. And another. Third one here."};
    unsigned state = 5;
    int compared = 0, same = 1;
    dsk_text_view out_view = {0}, fresh = {0};
    dsk_buf out = {0}, text = {0};
    P.c4_min_sentences = 0;
    for (int iter = 0; iter < 300; iter++) {
        dsk_buf_clear(&text);
        for (int l = 0; l < 12; l++) {
            state = state * 1103515245u + 12345u;
            if (l)
                dsk_buf_addc(&text, '\n');
            dsk_buf_adds(&text, pieces[(state >> 16) % (sizeof pieces / sizeof pieces[0])]);
        }
        size_t removed;
        int ok;
        if (dsk_filter_c4(view(text.data), &P, &S, &out, &removed, &out_view, &ok) || !ok)
            continue;
        dsk_text_view_build(&fresh, out.data, out.len);
        compared++;
        same &= fresh.nchars == out_view.nchars && fresh.n_words == out_view.n_words &&
                fresh.n_lines == out_view.n_lines && fresh.n_letters == out_view.n_letters &&
                fresh.n_cjk == out_view.n_cjk &&
                memcmp(fresh.words, out_view.words, fresh.n_words * sizeof *fresh.words) == 0 &&
                memcmp(fresh.lines, out_view.lines, fresh.n_lines * sizeof *fresh.lines) == 0;
    }
    CHECK(compared > 100);
    CHECK(same);
    dsk_filter_params_default(&P);
    dsk_text_view_free(&out_view);
    dsk_text_view_free(&fresh);
    dsk_buf_free(&out);
    dsk_buf_free(&text);
}

TEST(fineweb_rules)
{
    CHECK_STR(fw("no punctuation at the end of this line\nnor here either at all my friend\n"
                 "and none on this long line of text either"),
              "fineweb.line_punct_ratio");
    CHECK_STR(fw("Short.\nLines.\nEverywhere.\nThe only long line here is this one, it has punctuation."),
              "fineweb.short_line_ratio");
    char *s = malloc(4096);
    snprintf(s, 4096, "%s\nThis line is duplicated within the document.\nThis line is duplicated within the document.",
             GOOD);
    CHECK_STR(fw(s), "fineweb.char_dup_ratio");
    free(s);
    /* blank lines are not lines to the line rules (datatrove drops them): paragraphs of long lines and
     * short headings, a blank line between each, pass, as they do with single line breaks */
    static const char PARAS[] = "A long line of prose that ends with a full stop, as prose does.\n\nHeading one\n\n"
                                "Another long line of prose, also ending with a full stop here.\n\nHeading two\n\n"
                                "A third line of prose, long enough, and with its full stop too.\n\nHeading three";
    CHECK(fw(PARAS) == NULL);
    CHECK_STR(fw("\n \n\t\n"), "fineweb.line_punct_ratio");   /* nothing but blank lines */
    P.fw_short_line_ratio = 0;
    CHECK_STR(fw("Item one.\nTwo.\nThree.\nFour.\nFive."), "fineweb.newline_ratio");
    dsk_filter_params_default(&P);
}

TEST(parameters_are_named_and_checked)
{
    char msg[256];
    CHECK(dsk_filter_params_set(&P, "gopher_quality.min_words=5", msg, sizeof msg) == 0);
    CHECK(P.gq_min_words == 5);
    CHECK(dsk_filter_params_set(&P, "gopher_repetition.dup_7gram_frac=0.5", msg, sizeof msg) == 0);
    CHECK(P.gr_dup_ngram_frac[7] == 0.5);
    CHECK(dsk_filter_params_set(&P, "nope=1", msg, sizeof msg) == -1);
    CHECK(strstr(msg, "unknown parameter") != NULL);
    CHECK(dsk_filter_params_set(&P, "c4.min_sentences=abc", msg, sizeof msg) == -1);
    CHECK(dsk_filter_params_set(&P, "c4.min_sentences", msg, sizeof msg) == -1);
    dsk_filter_params_default(&P);
    /* each value of its kind: a switch 0 or 1, a count whole, a fraction at most 1 */
    char why[160];
    CHECK(dsk_filter_params_set(&P, "c4.terminal_punct=5", why, sizeof why) == -1 && strstr(why, "0 or 1"));
    CHECK(dsk_filter_params_set(&P, "c4.min_sentences=2.5", why, sizeof why) == -1 && strstr(why, "whole"));
    CHECK(dsk_filter_params_set(&P, "fineweb.short_line_ratio=1.5", why, sizeof why) == -1);
    CHECK(dsk_filter_params_set(&P, "fineweb.newline_ratio=1.5", why, sizeof why) == 0);   /* per word: may pass 1 */
    CHECK(dsk_filter_params_set(&P, "c4.terminal_punct=1", why, sizeof why) == 0);
    dsk_filter_params_default(&P);
}

int main(void)
{
    dsk_filter_params_default(&P);
    static const test_case cases[] = {T(good_prose_passes_every_filter), T(gopher_quality_rules),
                                      T(gopher_quality_is_script_aware), T(gopher_repetition_rules),
                                      T(c4_rules), T(c4_view_matches_a_fresh_scan), T(fineweb_rules), T(parameters_are_named_and_checked)};
    int rc = run_tests(cases, sizeof cases / sizeof cases[0]);
    dsk_text_view_free(&V);
    dsk_filter_scratch_free(&S);
    return rc;
}
