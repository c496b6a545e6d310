/* dsk-serve's Prometheus registry, read back with a small parser of the
 * text exposition format 0.0.4 written here: every sample must belong to
 * a family declared by # TYPE, label values must unescape to what was
 * given, and histograms must be cumulative and add up. */
#include <pthread.h>

#include "core/err.h"
#include "serve/metrics.h"
#include "test.h"

#define MAX_SAMPLES 512
#define MAX_LABELS 4

typedef struct sample {
    char name[96];
    int n_labels;
    char key[MAX_LABELS][32];
    char value[MAX_LABELS][128];
    double v;
} sample;

typedef struct exposition {
    sample s[MAX_SAMPLES];
    int n;
    char family[64][96];
    char type[64][16];
    char help[64][128];
    int n_families;
} exposition;

static int family_of(const exposition *x, const char *sample_name)
{
    for (int i = 0; i < x->n_families; i++) {
        size_t fl = strlen(x->family[i]);
        if (strncmp(sample_name, x->family[i], fl) != 0)
            continue;
        const char *rest = sample_name + fl;
        if (!*rest)
            return i;
        if (strcmp(x->type[i], "histogram") == 0 &&
            (!strcmp(rest, "_bucket") || !strcmp(rest, "_sum") || !strcmp(rest, "_count")))
            return i;
    }
    return -1;
}

/* Parses text; returns 0, or the 1-based line that is malformed. */
static int parse_exposition(const char *text, exposition *x)
{
    memset(x, 0, sizeof *x);
    int line = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *eol = strchr(p, '\n');
        if (!eol)
            return line;  /* every line ends with \n, the last one too */
        char buf[1024];
        size_t n = (size_t)(eol - p);
        if (n >= sizeof buf)
            return line;
        memcpy(buf, p, n);
        buf[n] = '\0';
        p = eol + 1;
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            char name[96], rest[200];
            if (sscanf(buf + 7, "%95s %199[^\n]", name, rest) != 2)
                return line;
            int f = -1;
            for (int i = 0; i < x->n_families; i++)
                if (!strcmp(x->family[i], name))
                    f = i;
            if (f < 0) {
                if (x->n_families == 64)
                    return line;
                f = x->n_families++;
                snprintf(x->family[f], sizeof x->family[f], "%s", name);
            }
            if (buf[2] == 'T') {
                if (strcmp(rest, "counter") && strcmp(rest, "gauge") && strcmp(rest, "histogram"))
                    return line;
                if (x->type[f][0])
                    return line;  /* declared twice */
                snprintf(x->type[f], sizeof x->type[f], "%.15s", rest);
            } else {
                snprintf(x->help[f], sizeof x->help[f], "%.127s", rest);
            }
            continue;
        }
        if (buf[0] == '#' || x->n == MAX_SAMPLES)
            return line;
        sample *s = &x->s[x->n++];
        char *q = buf;
        size_t nl = strcspn(q, "{ ");
        if (nl == 0 || nl >= sizeof s->name)
            return line;
        memcpy(s->name, q, nl);
        s->name[nl] = '\0';
        q += nl;
        if (*q == '{') {
            q++;
            while (*q != '}') {
                if (s->n_labels == MAX_LABELS)
                    return line;
                size_t kl = strcspn(q, "=");
                if (kl == 0 || kl >= 32 || q[kl] != '=' || q[kl + 1] != '"')
                    return line;
                memcpy(s->key[s->n_labels], q, kl);
                s->key[s->n_labels][kl] = '\0';
                q += kl + 2;
                size_t vl = 0;
                char *val = s->value[s->n_labels];
                for (; *q != '"'; q++) {
                    if (!*q || vl + 1 >= 128)
                        return line;
                    if (*q == '\\') {
                        q++;
                        if (*q == 'n')
                            val[vl++] = '\n';
                        else if (*q == '\\' || *q == '"')
                            val[vl++] = *q;
                        else
                            return line;  /* no other escape exists */
                    } else {
                        val[vl++] = *q;
                    }
                }
                val[vl] = '\0';
                q++;
                s->n_labels++;
                if (*q == ',')
                    q++;
                else if (*q != '}')
                    return line;
            }
            q++;
        }
        if (*q != ' ')
            return line;
        q++;
        char *end;
        if (!strcmp(q, "+Inf"))
            s->v = INFINITY;
        else if (!strcmp(q, "-Inf"))
            s->v = -INFINITY;
        else {
            s->v = strtod(q, &end);
            if (end == q || *end)
                return line;
        }
        int f = family_of(x, s->name);
        if (f < 0 || !x->type[f][0])
            return line;  /* a sample before its # TYPE */
    }
    return 0;
}

static const char *label(const sample *s, const char *key)
{
    for (int i = 0; i < s->n_labels; i++)
        if (!strcmp(s->key[i], key))
            return s->value[i];
    return NULL;
}

/* The value of the sample with this name whose labels include key=value
 * (key NULL: the first of that name); NAN if none. */
static double value_of(const exposition *x, const char *name, const char *key, const char *value)
{
    for (int i = 0; i < x->n; i++)
        if (!strcmp(x->s[i].name, name) && (!key || (label(&x->s[i], key) && !strcmp(label(&x->s[i], key), value))))
            return x->s[i].v;
    return NAN;
}

static exposition ex;  /* large: not on the stack */

static void render_and_parse(dsk_metrics *m)
{
    dsk_buf b = {0};
    dsk_metrics_render(m, &b);
    int bad = parse_exposition(b.data ? b.data : "", &ex);
    if (bad)
        printf("#   malformed line %d in:\n%s", bad, b.data);
    CHECK(bad == 0);
    dsk_buf_free(&b);
}

/* Each histogram series: le strictly increasing and ending +Inf, counts
 * cumulative, +Inf equal to _count.  Returns the number of series seen. */
static int check_histogram(const exposition *x, const char *name)
{
    char bucket[128], count[128];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(count, sizeof count, "%s_count", name);
    int series = 0;
    for (int i = 0; i < x->n; i++) {
        if (strcmp(x->s[i].name, bucket) != 0)
            continue;
        /* the first bucket of a series: walk its run */
        if (i > 0 && !strcmp(x->s[i - 1].name, bucket))
            continue;
        series++;
        double prev_le = -INFINITY, prev_c = 0;
        int j = i;
        for (; j < x->n && !strcmp(x->s[j].name, bucket); j++) {
            const char *le = label(&x->s[j], "le");
            CHECK(le != NULL);
            double l = le && !strcmp(le, "+Inf") ? INFINITY : le ? strtod(le, NULL) : 0;
            CHECK(l > prev_le);
            CHECK(x->s[j].v >= prev_c);
            prev_le = l;
            prev_c = x->s[j].v;
        }
        CHECK(prev_le == INFINITY);
        CHECK(j + 1 < x->n && !strcmp(x->s[j + 1].name, count));
        if (j + 1 < x->n)
            CHECK(x->s[j + 1].v == prev_c);
    }
    return series;
}

TEST(standard_families_exported_from_the_start)
{
    dsk_metrics *m = dsk_metrics_new();
    render_and_parse(m);
    static const char *names[] = {DSK_M_REQUESTS, DSK_M_REQUEST_SUCCESS, DSK_M_PROMPT_TOKENS, DSK_M_GENERATION_TOKENS,
                                  DSK_M_RUNNING, DSK_M_WAITING, DSK_M_KV_USAGE, DSK_M_PREFIX_QUERIES,
                                  DSK_M_PREFIX_HITS, DSK_M_SPEC_DRAFTED, DSK_M_SPEC_ACCEPTED, DSK_M_JUMP_TOKENS,
                                  DSK_M_TTFT, DSK_M_TPOT, DSK_M_E2E};
    static const char *types[] = {"counter", "counter", "counter", "counter", "gauge",     "gauge",     "gauge",    "counter",
                                  "counter", "counter", "counter", "counter", "histogram", "histogram", "histogram"};
    CHECK(ex.n_families == 15);
    for (int i = 0; i < 15 && i < ex.n_families; i++) {
        CHECK_STR(ex.family[i], names[i]);
        CHECK_STR(ex.type[i], types[i]);
        CHECK(ex.help[i][0] != '\0');
        CHECK(strncmp(ex.family[i], "dsk:", 4) == 0);
    }
    /* label-less families show 0; labelled ones nothing yet */
    CHECK(value_of(&ex, DSK_M_PROMPT_TOKENS, NULL, NULL) == 0);
    CHECK(value_of(&ex, DSK_M_RUNNING, NULL, NULL) == 0);
    CHECK(isnan(value_of(&ex, DSK_M_REQUESTS, NULL, NULL)));
    CHECK(value_of(&ex, DSK_M_TTFT "_count", NULL, NULL) == 0);
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "0.001") == 0);
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "+Inf") == 0);
    CHECK(check_histogram(&ex, DSK_M_TTFT) == 1);
    dsk_metrics_free(m);
}

TEST(counters_gauges_and_misuse)
{
    dsk_metrics *m = dsk_metrics_new();
    const char *ok[] = {"/v1/chat/completions", "200"}, *bad[] = {"/v1/completions", "400"};
    CHECK(dsk_metrics_inc(m, DSK_M_REQUESTS, ok, 1) == 0);
    CHECK(dsk_metrics_inc(m, DSK_M_REQUESTS, ok, 2) == 0);
    CHECK(dsk_metrics_inc(m, DSK_M_REQUESTS, bad, 1) == 0);
    CHECK(dsk_metrics_inc(m, DSK_M_PROMPT_TOKENS, NULL, 1234567) == 0);
    CHECK(dsk_metrics_set(m, DSK_M_RUNNING, NULL, 3) == 0);
    CHECK(dsk_metrics_inc(m, DSK_M_WAITING, NULL, 2) == 0);
    CHECK(dsk_metrics_inc(m, DSK_M_WAITING, NULL, -1) == 0);  /* gauges go down */
    CHECK(dsk_metrics_set(m, DSK_M_KV_USAGE, NULL, 0.125) == 0);
    /* misuse is refused and changes nothing */
    CHECK(dsk_metrics_inc(m, DSK_M_PROMPT_TOKENS, NULL, -1) == -1);
    CHECK(dsk_metrics_inc(m, DSK_M_PROMPT_TOKENS, NULL, NAN) == -1);
    CHECK(dsk_metrics_set(m, DSK_M_PROMPT_TOKENS, NULL, 5) == -1);   /* a counter never goes down */
    CHECK(dsk_metrics_set(m, DSK_M_PREFIX_HITS, NULL, 7) == 0);        /* but follows a total kept elsewhere */
    CHECK(dsk_metrics_set(m, DSK_M_PREFIX_HITS, NULL, 3) == -1);
    CHECK(dsk_metrics_set(m, DSK_M_PREFIX_HITS, NULL, INFINITY) == -1);   /* counters stay finite */
    CHECK(dsk_metrics_inc(m, DSK_M_PROMPT_TOKENS, NULL, INFINITY) == -1);
    CHECK(dsk_metrics_observe(m, DSK_M_TTFT, NULL, INFINITY) == -1);
    CHECK(dsk_metrics_set(m, DSK_M_TTFT, NULL, 3) == -1);
    CHECK(dsk_metrics_observe(m, DSK_M_RUNNING, NULL, 1) == -1);
    CHECK(dsk_metrics_inc(m, DSK_M_TTFT, NULL, 1) == -1);
    CHECK(dsk_metrics_inc(m, "dsk:nope", NULL, 1) == -1);
    CHECK(dsk_metrics_inc(m, DSK_M_REQUESTS, NULL, 1) == -1);  /* labels missing */
    const char *half[] = {"/x", NULL};
    CHECK(dsk_metrics_inc(m, DSK_M_REQUESTS, half, 1) == -1);
    CHECK(dsk_metrics_define(m, DSK_M_RUNNING, DSK_METRIC_GAUGE, "again", NULL, NULL, 0) == -1);
    CHECK(dsk_metrics_define(m, "9bad", DSK_METRIC_GAUGE, "h", NULL, NULL, 0) == -1);
    CHECK(dsk_metrics_define(m, "bad-name", DSK_METRIC_GAUGE, "h", NULL, NULL, 0) == -1);
    const char *le[] = {"le", NULL}, *colon[] = {"a:b", NULL}, *dunder[] = {"__x", NULL};
    CHECK(dsk_metrics_define(m, "x1", DSK_METRIC_COUNTER, "h", le, NULL, 0) == -1);
    CHECK(dsk_metrics_define(m, "x2", DSK_METRIC_COUNTER, "h", colon, NULL, 0) == -1);
    CHECK(dsk_metrics_define(m, "x3", DSK_METRIC_COUNTER, "h", dunder, NULL, 0) == -1);
    const double down[] = {1, 0.5}, nan_b[] = {NAN};
    CHECK(dsk_metrics_define(m, "h1", DSK_METRIC_HISTOGRAM, "h", NULL, down, 2) == -1);
    CHECK(dsk_metrics_define(m, "h2", DSK_METRIC_HISTOGRAM, "h", NULL, nan_b, 1) == -1);

    render_and_parse(m);
    CHECK(value_of(&ex, DSK_M_REQUESTS, "endpoint", "/v1/chat/completions") == 3);
    CHECK(value_of(&ex, DSK_M_REQUESTS, "status", "400") == 1);
    CHECK(value_of(&ex, DSK_M_PROMPT_TOKENS, NULL, NULL) == 1234567);
    CHECK(value_of(&ex, DSK_M_RUNNING, NULL, NULL) == 3);
    CHECK(value_of(&ex, DSK_M_WAITING, NULL, NULL) == 1);
    CHECK(value_of(&ex, DSK_M_KV_USAGE, NULL, NULL) == 0.125);
    CHECK(value_of(&ex, DSK_M_PREFIX_HITS, NULL, NULL) == 7);
    CHECK(ex.n_families == 15);  /* the refused definitions left nothing */
    dsk_metrics_free(m);
}

TEST(label_escaping)
{
    dsk_metrics *m = dsk_metrics_new();
    const char *names[] = {"path", NULL};
    CHECK(dsk_metrics_define(m, "dsk:test_total", DSK_METRIC_COUNTER, "Help with \\ and\nnewline.", names, NULL,
                             0) == 0);
    const char *v1[] = {"a\"b"}, *v2[] = {"c\\d"}, *v3[] = {"e\nf"}, *v4[] = {"\\\"\n\\n"}, *v5[] = {""};
    CHECK(dsk_metrics_inc(m, "dsk:test_total", v1, 1) == 0);
    CHECK(dsk_metrics_inc(m, "dsk:test_total", v2, 2) == 0);
    CHECK(dsk_metrics_inc(m, "dsk:test_total", v3, 3) == 0);
    CHECK(dsk_metrics_inc(m, "dsk:test_total", v4, 4) == 0);
    CHECK(dsk_metrics_inc(m, "dsk:test_total", v5, 5) == 0);
    dsk_buf b = {0};
    dsk_metrics_render(m, &b);
    CHECK(strstr(b.data, "# HELP dsk:test_total Help with \\\\ and\\nnewline.\n") != NULL);
    CHECK(strstr(b.data, "dsk:test_total{path=\"a\\\"b\"} 1\n") != NULL);
    CHECK(strstr(b.data, "dsk:test_total{path=\"c\\\\d\"} 2\n") != NULL);
    CHECK(strstr(b.data, "dsk:test_total{path=\"e\\nf\"} 3\n") != NULL);
    dsk_buf_free(&b);
    render_and_parse(m);
    CHECK(value_of(&ex, "dsk:test_total", "path", "a\"b") == 1);
    CHECK(value_of(&ex, "dsk:test_total", "path", "c\\d") == 2);
    CHECK(value_of(&ex, "dsk:test_total", "path", "e\nf") == 3);
    CHECK(value_of(&ex, "dsk:test_total", "path", "\\\"\n\\n") == 4);
    CHECK(value_of(&ex, "dsk:test_total", "path", "") == 5);
    dsk_metrics_free(m);
}

TEST(histograms_add_up)
{
    dsk_metrics *m = dsk_metrics_new();
    const double obs[] = {0.0005, 0.001, 0.003, 0.1, 0.1, 0.7, 9.0, 11.0, 1e9};
    double sum = 0;
    for (size_t i = 0; i < sizeof obs / sizeof *obs; i++) {
        CHECK(dsk_metrics_observe(m, DSK_M_TTFT, NULL, obs[i]) == 0);
        sum += obs[i];
    }
    /* a labelled histogram of our own: two series */
    const double bounds[] = {1, 2.5, 10};
    const char *names[] = {"model", NULL};
    CHECK(dsk_metrics_define(m, "dsk:batch_size", DSK_METRIC_HISTOGRAM, "Batch sizes.", names, bounds, 3) == 0);
    const char *a[] = {"a"}, *bb[] = {"b"};
    for (int i = 0; i < 12; i++)
        CHECK(dsk_metrics_observe(m, "dsk:batch_size", i % 3 ? a : bb, i) == 0);
    render_and_parse(m);
    CHECK(check_histogram(&ex, DSK_M_TTFT) == 1);
    CHECK(check_histogram(&ex, DSK_M_TPOT) == 1);
    CHECK(check_histogram(&ex, "dsk:batch_size") == 2);
    /* upper bounds are inclusive: 0.001 and 0.1 fall in their own buckets */
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "0.001") == 2);
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "0.005") == 3);
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "0.1") == 5);
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "10") == 7);
    CHECK(value_of(&ex, DSK_M_TTFT "_bucket", "le", "+Inf") == 9);
    CHECK(value_of(&ex, DSK_M_TTFT "_count", NULL, NULL) == 9);
    CHECK_NEAR(value_of(&ex, DSK_M_TTFT "_sum", NULL, NULL), sum, sum * 1e-15);
    /* series b saw 0, 3, 6, 9: le=1 -> 1, le=2.5 -> 1, le=10 -> 4 */
    int seen = 0;
    for (int i = 0; i < ex.n; i++) {
        const sample *s = &ex.s[i];
        if (strcmp(s->name, "dsk:batch_size_bucket") || strcmp(label(s, "model"), "b"))
            continue;
        const char *le = label(s, "le");
        double want = !strcmp(le, "1") ? 1 : !strcmp(le, "2.5") ? 1 : 4;
        CHECK(s->v == want);
        seen++;
    }
    CHECK(seen == 4);
    CHECK(value_of(&ex, "dsk:batch_size_sum", "model", "b") == 18);
    CHECK(value_of(&ex, "dsk:batch_size_count", "model", "a") == 8);
    dsk_metrics_free(m);
}

TEST(series_cap)
{
    dsk_metrics *m = dsk_metrics_new();
    char v[32];
    const char *labels[] = {v, "200"};
    int refused = 0;
    for (int i = 0; i < DSK_METRICS_MAX_SERIES + 10; i++) {
        snprintf(v, sizeof v, "/p%d", i);
        refused += dsk_metrics_inc(m, DSK_M_REQUESTS, labels, 1) != 0;
    }
    CHECK(refused == 10);
    snprintf(v, sizeof v, "/p0");
    CHECK(dsk_metrics_inc(m, DSK_M_REQUESTS, labels, 1) == 0);  /* existing series still count */
    dsk_metrics_free(m);
}

static void *hammer(void *arg)
{
    dsk_metrics *m = arg;
    const char *l[] = {"/v1/completions", "200"};
    for (int i = 0; i < 20000; i++) {
        dsk_metrics_inc(m, DSK_M_GENERATION_TOKENS, NULL, 1);
        dsk_metrics_inc(m, DSK_M_REQUESTS, l, 1);
        dsk_metrics_observe(m, DSK_M_TPOT, NULL, 0.02);
        if (i % 1000 == 0) {
            dsk_buf b = {0};
            dsk_metrics_render(m, &b);
            dsk_buf_free(&b);
        }
    }
    return NULL;
}

TEST(threads)
{
    dsk_metrics *m = dsk_metrics_new();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, m);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    render_and_parse(m);
    CHECK(value_of(&ex, DSK_M_GENERATION_TOKENS, NULL, NULL) == 80000);
    CHECK(value_of(&ex, DSK_M_REQUESTS, "endpoint", "/v1/completions") == 80000);
    CHECK(value_of(&ex, DSK_M_TPOT "_count", NULL, NULL) == 80000);
    CHECK(value_of(&ex, DSK_M_TPOT "_bucket", "le", "0.01") == 0);
    CHECK(value_of(&ex, DSK_M_TPOT "_bucket", "le", "0.025") == 80000);
    dsk_metrics_free(m);
}

RUN_TESTS(T(standard_families_exported_from_the_start), T(counters_gauges_and_misuse), T(label_escaping),
          T(histograms_add_up), T(series_cap), T(threads))
