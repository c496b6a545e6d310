#include "clean/rules.h"
#include "test.h"
#include <unistd.h>

/* The stat name of the rule that drops text, NULL to keep it. */
static const char *verdict(const dsk_rules *r, dsk_rules_matcher *m, const char *text)
{
    const char *name = "(unset)";
    dsk_err err = {0};
    CHECK(dsk_rules_verdict(r, m, text, strlen(text), &name, &err) == 0);
    return name;
}

TEST(drop_keep_and_replace)
{
    dsk_rules r = {0};
    dsk_err err = {0};
    CHECK(dsk_rules_add(&r, DSK_RULE_DROP, "(?i)viagra", "--drop", &err) == 0);
    CHECK(dsk_rules_add(&r, DSK_RULE_REPLACE, "<[^>]+>=", "--replace", &err) == 0);
    CHECK(dsk_rules_add(&r, DSK_RULE_REPLACE, "[\\w.+-]+@[\\w-]+\\.[\\w.]+=<EMAIL>", "--replace", &err) == 0);
    dsk_rules_matcher m;
    dsk_rules_matcher_init(&m);
    dsk_buf t = {0};
    dsk_buf_adds(&t, "<p>Write to bob.smith@example.org</p> or <b>alice@ex.co</b>");
    CHECK(dsk_rules_replace(&r, &m, &t, &err) == 6);
    CHECK_STR(t.data, "Write to <EMAIL> or <EMAIL>");
    CHECK_STR(verdict(&r, &m, "Buy VIAGRA now"), "regex.drop:(?i)viagra");
    CHECK(verdict(&r, &m, "fine text") == NULL);
    /* keep: a document must match at least one keep rule */
    CHECK(dsk_rules_add(&r, DSK_RULE_KEEP, "^Chapter \\d+", "--keep", &err) == 0);
    CHECK(verdict(&r, &m, "Intro\nChapter 1\ntext") == NULL); /* multiline ^ */
    CHECK_STR(verdict(&r, &m, "no chapters"), "regex.keep:^Chapter \\d+");
    dsk_buf_free(&t);
    dsk_rules_matcher_free(&m);
    dsk_rules_free(&r);
}

TEST(replacement_groups_and_escaped_equals)
{
    dsk_rules r = {0};
    dsk_err err = {0};
    CHECK(dsk_rules_add(&r, DSK_RULE_REPLACE, "(\\w+)\\=(\\w+)=$2:$1", "--replace", &err) == 0);
    dsk_rules_matcher m;
    dsk_rules_matcher_init(&m);
    dsk_buf t = {0};
    dsk_buf_adds(&t, "key=value and a=b");
    CHECK(dsk_rules_replace(&r, &m, &t, &err) == 2);
    CHECK_STR(t.data, "value:key and b:a");
    /* output far longer than the input forces a second, sized pass */
    dsk_rules_free(&r);
    CHECK(dsk_rules_add(&r, DSK_RULE_REPLACE, "x=0123456789012345678901234567890123456789", "--replace", &err) == 0);
    dsk_buf_clear(&t);
    dsk_buf_adds(&t, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    CHECK(dsk_rules_replace(&r, &m, &t, &err) == 40);
    CHECK(t.len == 1600);
    dsk_buf_free(&t);
    dsk_rules_matcher_free(&m);
    dsk_rules_free(&r);
}

/* One matcher serves every document of a thread: its scratch buffer must
 * not grow with the number of documents (it doubled at each one and asked
 * for 64 GiB at the 46th). */
TEST(many_documents_keep_the_scratch_bounded)
{
    dsk_rules r = {0};
    dsk_err err = {0};
    CHECK(dsk_rules_add(&r, DSK_RULE_REPLACE, "x=y", "--replace", &err) == 0);
    dsk_rules_matcher m;
    dsk_rules_matcher_init(&m);
    dsk_buf t = {0};
    for (int i = 0; i < 1000; i++) {
        dsk_buf_clear(&t);
        dsk_buf_adds(&t, i % 2 ? "ab line with an x" : "ab line");
        CHECK(dsk_rules_replace(&r, &m, &t, &err) == i % 2);
    }
    CHECK_STR(t.data, "ab line with an y");
    CHECK(m.tmp.cap <= 4096 && t.cap <= 4096);
    dsk_buf_free(&t);
    dsk_rules_matcher_free(&m);
    dsk_rules_free(&r);
}

/* A rule PCRE2 gives up on (its match limit) is an error, not a miss: a
 * --drop that gave up kept what it exists to drop. */
TEST(a_match_limit_is_an_error)
{
    dsk_rules r = {0};
    dsk_err err = {0};
    CHECK(dsk_rules_add(&r, DSK_RULE_DROP, "(a+)+b|xyz", "--drop", &err) == 0);
    dsk_rules_matcher m;
    dsk_rules_matcher_init(&m);
    CHECK_STR(verdict(&r, &m, "aaaa xyz"), "regex.drop:(a+)+b|xyz");
    char text[64];
    memset(text, 'a', 40);
    strcpy(text + 40, " xyz");
    const char *name = NULL;
    CHECK(dsk_rules_verdict(&r, &m, text, strlen(text), &name, &err) == -1);
    CHECK(err.code == EX_DATAERR && strstr(err.msg, "drop '(a+)+b|xyz'") && strstr(err.msg, "limit"));
    dsk_rules_matcher_free(&m);
    dsk_rules_free(&r);
}

TEST(bad_regex_names_the_offset)
{
    dsk_rules r = {0};
    dsk_err err = {0};
    CHECK(dsk_rules_add(&r, DSK_RULE_DROP, "ab(c", "--drop", &err) == EX_USAGE);
    CHECK(strstr(err.msg, "--drop") && strstr(err.msg, "offset 4"));
    CHECK(dsk_rules_add(&r, DSK_RULE_REPLACE, "no separator", "--replace", &err) == EX_USAGE);
    CHECK(r.n == 0);
}

TEST(rules_file)
{
    char path[] = "/tmp/dsk-rules-XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fputs("# comment\n\ndrop   spam\nkeep \\w\n  replace \\s+= \nbogus x\n", f);
    fclose(f);
    dsk_rules r = {0};
    dsk_err err = {0};
    CHECK(dsk_rules_load_file(&r, path, &err) == EX_USAGE);
    CHECK(strstr(err.msg, ":6:") != NULL);  /* names the line */
    CHECK(r.n == 3);
    dsk_rules_free(&r);
    CHECK(dsk_rules_load_file(&r, "/nonexistent/rules", &err) == EX_NOINPUT);
    unlink(path);
}

RUN_TESTS(T(drop_keep_and_replace), T(replacement_groups_and_escaped_equals), T(many_documents_keep_the_scratch_bounded), T(a_match_limit_is_an_error),
          T(bad_regex_names_the_offset),
          T(rules_file))
