/* SVG plots: the training-log parser on known points, the SVG checked for
 * well-formed XML by a small checker, escaping, the log step axis, thinning,
 * and the A/B forest plot with its reader. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/plot.h"
#include "text/utf8.h"
#include "test.h"

/* ---- a minimal XML well-formedness check ---- */

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == ':' || c == '.';
}

/* An entity at s: one of the five XML predefines.  Returns its length or 0. */
static size_t entity(const char *s)
{
    static const char *const known[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (strncmp(s, known[i], strlen(known[i])) == 0)
            return strlen(known[i]);
    return 0;
}

/* Returns NULL if svg is one well-formed <svg> element (after an optional
 * declaration): tags nest and match, attributes are quoted, text and values
 * have no raw < or > and only known entities, all is valid UTF-8 without
 * control characters but newlines.  Else what is wrong. */
static const char *xml_problem(const char *svg, size_t len)
{
    static char why[160];
    if (dsk_utf8_find_invalid(svg, len) != len)
        return "invalid UTF-8";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)svg[i] < 0x20 && svg[i] != '\n')
            return "a control character";
    const char *p = svg, *end = svg + len;
    if (strncmp(p, "<?xml ", 6) == 0) {
        p = strstr(p, "?>");
        if (!p)
            return "unterminated declaration";
        p += 2;
    }
    char stack[64][32];
    int depth = 0, roots = 0;
    while (p < end) {
        if (*p != '<') {  /* character data */
            if (*p == '>')
                return "a raw > in text";
            if (*p == '&' && !entity(p))
                return "an unknown entity in text";
            if (depth == 0 && *p != '\n')
                return "text outside the root";
            p++;
            continue;
        }
        p++;
        int closing = *p == '/';
        if (closing)
            p++;
        char name[32];
        size_t n = 0;
        while (p < end && name_char(*p) && n < sizeof name - 1)
            name[n++] = *p++;
        name[n] = '\0';
        if (n == 0)
            return "a tag without a name";
        if (closing) {
            if (depth == 0 || strcmp(stack[depth - 1], name) != 0) {
                snprintf(why, sizeof why, "</%s> does not close <%s>", name, depth ? stack[depth - 1] : "");
                return why;
            }
            if (*p++ != '>')
                return "junk in a closing tag";
            depth--;
            continue;
        }
        for (;;) {  /* attributes */
            while (*p == ' ')
                p++;
            if (*p == '>' || (*p == '/' && p[1] == '>'))
                break;
            size_t an = 0;
            while (name_char(*p))
                p++, an++;
            if (an == 0 || *p++ != '=' || *p++ != '"')
                return "a malformed attribute";
            while (p < end && *p != '"') {
                if (*p == '<' || *p == '>')
                    return "a raw < or > in an attribute";
                if (*p == '&' && !entity(p))
                    return "an unknown entity in an attribute";
                p++;
            }
            if (p++ >= end)
                return "an unterminated attribute";
        }
        if (*p == '/') {
            p += 2;
            if (depth == 0)
                roots++;
            continue;
        }
        p++;
        if (depth == 0)
            roots++;
        if (depth == 64)
            return "nested too deep";
        strcpy(stack[depth++], name);
    }
    if (depth != 0)
        return "unclosed elements";
    if (roots != 1)
        return "not exactly one root element";
    return strncmp(svg, "<?xml", 5) == 0 || strncmp(svg, "<svg", 4) == 0 ? NULL : "no <svg> root";
}

#define CHECK_XML(b)                                                                    \
    do {                                                                                \
        const char *why_ = xml_problem((b).data, (b).len);                              \
        if (why_)                                                                       \
            printf("#   not well-formed: %s\n", why_);                                  \
        CHECK(why_ == NULL);                                                            \
    } while (0)

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* ---- the checker itself must catch what it is for ---- */

TEST(checker_rejects_bad_xml)
{
    static const char *const bad[] = {
        "<svg><g></svg>",  "<svg>a<b</svg>", "<svg>&nbsp;</svg>", "<svg x=1/>", "<svg/><svg/>",
        "<svg>\x01</svg>", "<svg>\xff</svg>", "<svg x=\"<\"/>",   "<svg>a>b</svg>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(xml_problem(bad[i], strlen(bad[i])) != NULL);
    const char *good = "<?xml version=\"1.0\"?>\n<svg a=\"&amp;\"><text>x &lt; y</text><g/></svg>\n";
    CHECK(xml_problem(good, strlen(good)) == NULL);
}

/* ---- the log parser ---- */

static const char demo_log[] =
    "{\"step\":10,\"loss\":8.5,\"lr\":0.001,\"grad_norm\":1.25,\"tokens\":20480}\n"
    "\n"
    "{\"step\":20,\"loss\":null,\"skipped\":1}\n"
    "{\"step\":30,\"loss\":7.25,\"grad_norm\":0.5,\"moe\":[{\"layer\":1,\"load\":[0.5,0.5]}]}\r\n"
    "{\"step\":30,\"val_loss\":7.5,\"val_bpb\":3.25,\"val_tokens\":16376}\n"
    "{\"step\":30,\"sample\":\"<|endoftext|>hi\"}\n"
    "[1,2,3]\n"
    "{\"note\":\"no step here\",\"loss\":1}\n"
    "{\"step\":40,\"loss\":\"7\"}\n"
    "{\"step\":50,\"loss\":6.75}";  /* no final newline */

TEST(parse_finds_known_points)
{
    dsk_plot_series s;
    dsk_err err = {0};
    CHECK(dsk_plot_parse_log(demo_log, strlen(demo_log), "demo.jsonl", NULL, NULL, 0, &s, &err) == 0);
    CHECK_STR(s.label, "demo.jsonl");
    CHECK(s.n_metrics == 2);
    CHECK_STR(s.metrics[0].key, "loss");
    CHECK_STR(s.metrics[1].key, "val_loss");
    CHECK(s.metrics[0].n == 3);
    if (s.metrics[0].n == 3) {
        CHECK(s.metrics[0].pts[0].x == 10 && s.metrics[0].pts[0].y == 8.5);
        CHECK(s.metrics[0].pts[1].x == 30 && s.metrics[0].pts[1].y == 7.25);
        CHECK(s.metrics[0].pts[2].x == 50 && s.metrics[0].pts[2].y == 6.75);
    }
    CHECK(s.metrics[1].n == 1);
    if (s.metrics[1].n == 1)
        CHECK(s.metrics[1].pts[0].x == 30 && s.metrics[1].pts[0].y == 7.5);
    dsk_plot_series_free(&s);
}

TEST(parse_other_keys)
{
    const char *keys[] = {"val_bpb", "grad_norm"};
    dsk_plot_series s;
    dsk_err err = {0};
    CHECK(dsk_plot_parse_log(demo_log, strlen(demo_log), "demo.jsonl", "run A", keys, 2, &s, &err) == 0);
    CHECK_STR(s.label, "run A");
    CHECK(s.metrics[0].n == 1 && s.metrics[0].pts[0].y == 3.25);
    CHECK(s.metrics[1].n == 2 && s.metrics[1].pts[1].x == 30 && s.metrics[1].pts[1].y == 0.5);
    dsk_plot_series_free(&s);
}

TEST(parse_resumed_run_replaces_steps)
{
    const char *log = "{\"step\":10,\"loss\":3}\n{\"step\":20,\"loss\":2}\n{\"step\":30,\"loss\":1}\n"
                      "{\"step\":20,\"loss\":2.5}\n{\"step\":30,\"loss\":1.5}\n";
    dsk_plot_series s;
    dsk_err err = {0};
    CHECK(dsk_plot_parse_log(log, strlen(log), "r", NULL, NULL, 0, &s, &err) == 0);
    CHECK(s.metrics[0].n == 3);
    if (s.metrics[0].n == 3)
        CHECK(s.metrics[0].pts[1].y == 2.5 && s.metrics[0].pts[2].y == 1.5);
    dsk_plot_series_free(&s);
}

TEST(parse_errors_name_file_and_line)
{
    dsk_plot_series s;
    dsk_err err = {0};
    const char *bad = "{\"step\":1,\"loss\":2}\n\n{\"step\":2,\"loss\":\n";
    CHECK(dsk_plot_parse_log(bad, strlen(bad), "x.jsonl", NULL, NULL, 0, &s, &err) == EX_DATAERR);
    CHECK(strncmp(err.msg, "x.jsonl:3: invalid JSON", 23) == 0);
    dsk_plot_series_free(&s);

    CHECK(dsk_plot_parse_log("", 0, "empty.jsonl", NULL, NULL, 0, &s, &err) == EX_DATAERR);
    CHECK_STR(err.msg, "empty.jsonl: no 'loss' or 'val_loss' values");
    dsk_plot_series_free(&s);

    const char *none = "{\"step\":1,\"loss\":null}\n{\"step\":2,\"sample\":\"x\"}\n";
    const char *keys[] = {"a", "b", "c"};
    CHECK(dsk_plot_parse_log(none, strlen(none), "n.jsonl", NULL, keys, 3, &s, &err) == EX_DATAERR);
    CHECK_STR(err.msg, "n.jsonl: no 'a', 'b' or 'c' values");
    dsk_plot_series_free(&s);
}

/* ---- curves ---- */

static dsk_plot_series parsed(const char *log, const char *label)
{
    dsk_plot_series s;
    dsk_err err = {0};
    if (dsk_plot_parse_log(log, strlen(log), "t", label, NULL, 0, &s, &err) != 0)
        printf("#   %s\n", err.msg);
    return s;
}

TEST(curves_svg_is_well_formed)
{
    dsk_plot_series runs[2] = {parsed(demo_log, "dense"), parsed(demo_log, "moe")};
    dsk_plot_opts o = {0};
    o.title = "Loss & more";
    dsk_buf b = {0}, again = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_svg(runs, 2, &o, &b, &err) == 0);
    CHECK_XML(b);
    CHECK(strstr(b.data, "xmlns=\"http://www.w3.org/2000/svg\"") != NULL);
    CHECK(strstr(b.data, "viewBox=\"0 0 800 500\"") != NULL);
    CHECK(strstr(b.data, "<title>Loss &amp; more</title>") != NULL);
    CHECK(strstr(b.data, ">dense</text>") && strstr(b.data, ">moe</text>"));
    CHECK(strstr(b.data, ">val_loss</text>") != NULL);
    CHECK(count(b.data, "<polyline") == 2);        /* train loss of each; val_loss is one point */
    CHECK(strstr(b.data, "stroke=\"#1f77b4\"") && strstr(b.data, "stroke=\"#ff7f0e\""));
    CHECK(count(b.data, "stroke-dasharray=\"6 4\"") == 1);   /* the legend's val_loss */
    CHECK(!strstr(b.data, "nan") && !strstr(b.data, "inf"));
    CHECK(!strstr(b.data, "<script"));
    /* 1-2-5 ticks: loss 6.75..8.5 gives 6.5, 7.0, ... 8.5 */
    CHECK(strstr(b.data, ">7.0</text>") && strstr(b.data, ">8.5</text>"));
    CHECK(dsk_plot_svg(runs, 2, &o, &again, &err) == 0);
    CHECK(b.len == again.len && memcmp(b.data, again.data, b.len) == 0);
    dsk_buf_free(&b);
    dsk_buf_free(&again);
    dsk_plot_series_free(&runs[0]);
    dsk_plot_series_free(&runs[1]);
}

TEST(labels_are_escaped)
{
    dsk_plot_series run = parsed(demo_log, "a<b>&c\"d'e \x01\xff");
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_svg(&run, 1, NULL, &b, &err) == 0);
    CHECK_XML(b);
    CHECK(strstr(b.data, ">a&lt;b&gt;&amp;c&quot;d&apos;e \xEF\xBF\xBD\xEF\xBF\xBD</text>") != NULL);
    CHECK(!strstr(b.data, "a<b"));
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);
}

TEST(log_x_skips_steps_at_or_below_zero)
{
    const char *log = "{\"step\":-5,\"loss\":9}\n{\"step\":0,\"loss\":8}\n{\"step\":10,\"loss\":4}\n"
                      "{\"step\":100,\"loss\":2}\n{\"step\":1000,\"loss\":1}\n";
    dsk_plot_series run = parsed(log, "r");
    dsk_plot_opts o = {0};
    o.log_x = 1;
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == 0);
    CHECK_XML(b);
    CHECK(strstr(b.data, ">10</text>") && strstr(b.data, ">100</text>") && strstr(b.data, ">1000</text>"));
    CHECK(strstr(b.data, "step (log scale)") != NULL);
    /* the y axis reaches 4 but not 8 or 9: those steps were left out */
    CHECK(strstr(b.data, ">4</text>") && !strstr(b.data, ">8</text>"));
    CHECK(!strstr(b.data, "nan") && !strstr(b.data, "inf"));
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);

    /* within one decade the ticks at 2 and 5 times it are labelled; on a narrower axis, all */
    run = parsed("{\"step\":20,\"loss\":2}\n{\"step\":80,\"loss\":1}\n", "r");
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == 0);
    CHECK(strstr(b.data, ">20</text>") && strstr(b.data, ">50</text>") && !strstr(b.data, ">30</text>"));
    dsk_buf_clear(&b);
    dsk_plot_series_free(&run);
    run = parsed("{\"step\":70,\"loss\":2}\n", "r");
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == 0);
    CHECK(strstr(b.data, ">70</text>") != NULL);
    CHECK_XML(b);
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);

    const char *nonpositive = "{\"step\":0,\"loss\":8}\n{\"step\":-1,\"val_loss\":7}\n";
    run = parsed(nonpositive, "z");
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "log-scaled") != NULL);
    o.log_x = 0;
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == 0);  /* fine on a linear axis */
    CHECK_XML(b);
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);
}

TEST(long_series_are_thinned_keeping_the_last)
{
    dsk_buf log = {0};
    for (int i = 1; i <= 10001; i++)
        dsk_buf_printf(&log, "{\"step\":%d,\"loss\":%g}\n", i, 10.0 / i + (i == 10001 ? 5 : 0));
    dsk_plot_series run = parsed(log.data, "long");
    CHECK(run.metrics[0].n == 10001);
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_svg(&run, 1, NULL, &b, &err) == 0);
    CHECK_XML(b);
    const char *pts = strstr(b.data, "points=\"");
    CHECK(pts != NULL);
    if (pts) {
        const char *endq = strchr(pts + 8, '"');
        size_t n = 0;
        for (const char *p = pts + 8; p < endq; p++)
            n += *p == ',';
        CHECK(n > 1000 && n <= 2000);
        /* the last point (step 10001, the jump to 5) is drawn at the right end */
        const char *last = endq;
        while (last > pts && last[-1] != ' ')
            last--;
        double x = atof(last);
        CHECK(x > 700);
    }
    CHECK(b.len < 60000);
    dsk_buf_free(&b);
    dsk_buf_free(&log);
    dsk_plot_series_free(&run);
}

TEST(one_point_and_constant_values_plot)
{
    dsk_plot_series run = parsed("{\"step\":5,\"loss\":2}\n", "one");
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_svg(&run, 1, NULL, &b, &err) == 0);
    CHECK_XML(b);
    CHECK(strstr(b.data, "<path fill=\"#1f77b4\"") != NULL);  /* a lone point gets a marker */
    CHECK(!strstr(b.data, "nan") && !strstr(b.data, "inf"));
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);

    run = parsed("{\"step\":1,\"loss\":1e300}\n{\"step\":2,\"loss\":-1e300}\n{\"step\":3,\"loss\":1.7e308}\n", "huge");
    CHECK(dsk_plot_svg(&run, 1, NULL, &b, &err) == EX_DATAERR);
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);
}

TEST(bad_sizes_are_usage_errors)
{
    dsk_plot_series run = parsed(demo_log, "r");
    dsk_plot_opts o = {0};
    o.width = 10;
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == EX_USAGE);
    o.width = 1200;
    o.height = 700;
    CHECK(dsk_plot_svg(&run, 1, &o, &b, &err) == 0);
    CHECK(strstr(b.data, "viewBox=\"0 0 1200 700\"") != NULL);
    dsk_buf_free(&b);
    dsk_plot_series_free(&run);
}

TEST(curves_from_files)
{
    char dir[] = "/tmp/dsk-plot-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64], empty[64], missing[64];
    snprintf(path, sizeof path, "%s/run-1.jsonl", dir);
    snprintf(empty, sizeof empty, "%s/empty.jsonl", dir);
    snprintf(missing, sizeof missing, "%s/missing.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs(demo_log, f);
    fclose(f);
    f = fopen(empty, "w");
    fputs("{\"step\":1,\"sample\":\"x\"}\n", f);
    fclose(f);

    dsk_buf b = {0};
    dsk_err err = {0};
    const char *one[] = {path};
    CHECK(dsk_plot_curves(one, NULL, 1, NULL, &b, &err) == 0);
    CHECK_XML(b);
    CHECK(strstr(b.data, ">run-1</text>") != NULL);
    dsk_buf_clear(&b);
    const char *labels[] = {"mine"};
    CHECK(dsk_plot_curves(one, labels, 1, NULL, &b, &err) == 0);
    CHECK(strstr(b.data, ">mine</text>") && !strstr(b.data, ">run-1</text>"));

    const char *two[] = {path, empty};
    CHECK(dsk_plot_curves(two, NULL, 2, NULL, &b, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "empty.jsonl: no 'loss' or 'val_loss' values") != NULL);
    const char *gone[] = {path, missing};
    CHECK(dsk_plot_curves(gone, NULL, 2, NULL, &b, &err) == EX_NOINPUT);
    CHECK(strstr(err.msg, "missing.jsonl") != NULL);
    dsk_buf_free(&b);
    unlink(path);
    unlink(empty);
    rmdir(dir);
}

/* ---- A/B ---- */

TEST(ab_forest_plot)
{
    dsk_ab_summary rows[3] = {
        {"hellaswag <acc>", 0.41, 0.43, 0.02, 0.004, 0.036, 0.975, 0.0004, 500, 1},
        {"arc & co", 0.55, 0.54, -0.01, -0.03, 0.01, 0.975, 0.33, 800, 1},
        {"val loss", 3.2, 3.0, -0.2, NAN, NAN, 0.975, NAN, 0, 0},
    };
    dsk_buf b = {0};
    dsk_err err = {0};
    CHECK(dsk_plot_ab(rows, 3, NULL, &b, &err) == 0);
    CHECK_XML(b);
    CHECK(strstr(b.data, ">hellaswag &lt;acc&gt;</text>") && strstr(b.data, ">arc &amp; co</text>"));
    CHECK(strstr(b.data, "B\xE2\x88\x92" "A = +0.02 [+0.004, +0.036], p &lt; 0.001") != NULL);
    CHECK(strstr(b.data, "B\xE2\x88\x92" "A = -0.01 [-0.03, +0.01], p = 0.330") != NULL);
    CHECK(strstr(b.data, "B\xE2\x88\x92" "A = -0.2 [n/a], p = n/a") != NULL);
    CHECK(count(b.data, "<circle") == 3 + 3);  /* the rows and the colour key */
    /* the intervals' level in the title (it said 95% whatever they were) */
    CHECK(strstr(b.data, "A with 97.5% confidence intervals</") != NULL);
    CHECK(strstr(b.data, "fill=\"#2a8a3e\"") != NULL);  /* row 1: B clearly better */
    CHECK(!strstr(b.data, "nan") && !strstr(b.data, "inf"));

    CHECK(dsk_plot_ab(rows, 0, NULL, &b, &err) == EX_DATAERR);
    rows[1].diff = NAN;
    CHECK(dsk_plot_ab(rows, 3, NULL, &b, &err) == EX_DATAERR);
    CHECK(strstr(err.msg, "arc & co") != NULL);
    dsk_buf_free(&b);
}

TEST(ab_results_are_read)
{
    const char *json = "{\"command\":\"ab\",\"a\":\"x\",\"results\":["
                       "{\"task\":\"t1\",\"metric\":\"acc\",\"higher_is_better\":true,\"n\":10,"
                       "\"mean_a\":0.5,\"mean_b\":0.6,\"diff\":0.1,\"lo\":0.02,\"hi\":0.18,\"p\":0.01},"
                       "{\"task\":\"t2\",\"metric\":\"loss\",\"higher_is_better\":false,\"n\":10,"
                       "\"mean_a\":2,\"mean_b\":1.5,\"diff\":-0.5,\"lo\":null,\"hi\":null,\"p\":null}]}\n";
    dsk_ab_summary *rows;
    int n;
    dsk_err err = {0};
    CHECK(dsk_plot_ab_parse(json, strlen(json), "ab.json", &rows, &n, &err) == 0);
    CHECK(n == 2);
    if (n == 2)
        CHECK(rows[0].confidence == 0);   /* none in the object: the title names no level */
    if (n == 2) {
        CHECK_STR(rows[0].name, "t1 acc");
        CHECK(rows[0].diff == 0.1 && rows[0].lo == 0.02 && rows[0].n == 10 && rows[0].higher_better == 1);
        CHECK(rows[1].higher_better == 0 && isnan(rows[1].lo) && isnan(rows[1].p));
    }
    dsk_plot_ab_rows_free(rows, n);

    /* a --log file: the last ab line wins */
    dsk_buf log = {0};
    dsk_buf_adds(&log, "{\"command\":\"ppl\",\"loss\":3}\n");
    dsk_buf_adds(&log, json);
    dsk_buf_adds(&log, "{\"command\":\"ab\",\"results\":[{\"task\":\"only\",\"diff\":1}]}\n\n");
    CHECK(dsk_plot_ab_parse(log.data, log.len, "log", &rows, &n, &err) == 0);
    CHECK(n == 1 && rows && strcmp(rows[0].name, "only") == 0);
    dsk_plot_ab_rows_free(rows, n);
    dsk_buf_adds(&log, "{oops\n");
    CHECK(dsk_plot_ab_parse(log.data, log.len, "log", &rows, &n, &err) == EX_DATAERR);
    CHECK(strncmp(err.msg, "log:5: invalid JSON", 19) == 0);
    dsk_plot_ab_rows_free(rows, n);
    dsk_buf_free(&log);

    const char *not_ab = "{\"command\":\"ppl\",\"loss\":3}";
    CHECK(dsk_plot_ab_parse(not_ab, strlen(not_ab), "p.json", &rows, &n, &err) == EX_DATAERR);
    dsk_plot_ab_rows_free(rows, n);
    CHECK(dsk_plot_ab_file("/nonexistent/ab.json", NULL, &log, &err) == EX_NOINPUT);
}

RUN_TESTS(T(checker_rejects_bad_xml), T(parse_finds_known_points), T(parse_other_keys),
          T(parse_resumed_run_replaces_steps), T(parse_errors_name_file_and_line), T(curves_svg_is_well_formed),
          T(labels_are_escaped), T(log_x_skips_steps_at_or_below_zero), T(long_series_are_thinned_keeping_the_last),
          T(one_point_and_constant_values_plot), T(bad_sizes_are_usage_errors), T(curves_from_files),
          T(ab_forest_plot), T(ab_results_are_read))
