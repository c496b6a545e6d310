#include "serve/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

typedef struct series {
    char *labels;         /* rendered label pairs, `a="x",b="y"`, "" for none: also the lookup key */
    double value;         /* counter, gauge; histogram: sum */
    unsigned long long count;
    unsigned long long *buckets;   /* histogram: observations per bucket, not cumulative; [n_buckets + 1] */
} series;

typedef struct family {
    char *name, *help;
    dsk_metric_type type;
    char **label_names;
    int n_labels;
    double *bounds;
    int n_buckets;
    series *s;
    int n_series, cap_series;
} family;

struct dsk_metrics {
    pthread_mutex_t lock;
    family *f;
    int n, cap;
};

static void add_std(dsk_metrics *m, const char *name, dsk_metric_type t, const char *help, const char *const *labels,
                    const double *b, int nb)
{
    dsk_metrics_define(m, name, t, help, labels, b, nb);
}

dsk_metrics *dsk_metrics_new(void)
{
    dsk_metrics *m = dsk_xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    /* the bucket bounds vLLM uses, so its dashboards read the same */
    static const double ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                  1.0, 2.5, 5.0, 7.5, 10.0};
    static const double tpot[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5};
    static const double e2e[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0};
    static const char *const endpoint_status[] = {"endpoint", "status", NULL};
    static const char *const finished[] = {"finished_reason", NULL};
#define N(a) (int)(sizeof a / sizeof *a)
    add_std(m, DSK_M_REQUESTS, DSK_METRIC_COUNTER, "HTTP requests answered, by endpoint and status.",
            endpoint_status, NULL, 0);
    add_std(m, DSK_M_REQUEST_SUCCESS, DSK_METRIC_COUNTER, "Generation requests finished, by finish reason.",
            finished, NULL, 0);
    add_std(m, DSK_M_PROMPT_TOKENS, DSK_METRIC_COUNTER, "Prompt tokens processed.", NULL, NULL, 0);
    add_std(m, DSK_M_GENERATION_TOKENS, DSK_METRIC_COUNTER, "Tokens generated.", NULL, NULL, 0);
    add_std(m, DSK_M_RUNNING, DSK_METRIC_GAUGE, "Requests in the running batch.", NULL, NULL, 0);
    add_std(m, DSK_M_WAITING, DSK_METRIC_GAUGE, "Requests waiting for a batch slot.", NULL, NULL, 0);
    add_std(m, DSK_M_KV_USAGE, DSK_METRIC_GAUGE, "KV-cache usage, 1 means full.", NULL, NULL, 0);
    add_std(m, DSK_M_PREFIX_QUERIES, DSK_METRIC_COUNTER,
            "Prompt tokens of requests that may take a beginning from another slot's KV cache.", NULL, NULL, 0);
    add_std(m, DSK_M_PREFIX_HITS, DSK_METRIC_COUNTER,
            "Prompt tokens copied from another slot's KV cache (running or kept), not computed.", NULL, NULL, 0);
    add_std(m, DSK_M_SPEC_DRAFTED, DSK_METRIC_COUNTER, "Draft tokens (prompt lookup) fed for the model to check.",
            NULL, NULL, 0);
    add_std(m, DSK_M_SPEC_ACCEPTED, DSK_METRIC_COUNTER, "Draft tokens the model drew too (each a step saved).", NULL,
            NULL, 0);
    add_std(m, DSK_M_JUMP_TOKENS, DSK_METRIC_COUNTER,
            "Tokens of JSON answers and tool calls taken undrawn, where the grammar allowed one byte only.", NULL,
            NULL, 0);
    add_std(m, DSK_M_TTFT, DSK_METRIC_HISTOGRAM, "Time to first token in seconds.", NULL, ttft, N(ttft));
    add_std(m, DSK_M_TPOT, DSK_METRIC_HISTOGRAM, "Time per output token in seconds.", NULL, tpot, N(tpot));
    add_std(m, DSK_M_E2E, DSK_METRIC_HISTOGRAM, "End-to-end request latency in seconds.", NULL, e2e, N(e2e));
#undef N
    return m;
}

static void free_family(family *f)
{
    for (int i = 0; i < f->n_series; i++) {
        free(f->s[i].labels);
        free(f->s[i].buckets);
    }
    free(f->s);
    for (int i = 0; i < f->n_labels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->bounds);
    free(f->name);
    free(f->help);
}

void dsk_metrics_free(dsk_metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        free_family(&m->f[i]);
    free(m->f);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int name_ok(const char *s, int colon)
{
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              (colon && c == ':')))
            return 0;
    }
    return 1;
}

static family *find(dsk_metrics *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->f[i].name, name) == 0)
            return &m->f[i];
    return NULL;
}

/* Label values escape backslash, double quote and newline (0.0.4). */
static void escape_value(dsk_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            dsk_buf_adds(b, "\\\\");
        else if (*s == '"')
            dsk_buf_adds(b, "\\\"");
        else if (*s == '\n')
            dsk_buf_adds(b, "\\n");
        else
            dsk_buf_addc(b, *s);
    }
}

/* The series of f for these label values, created on first use; NULL
 * past the cap.  Called with the lock held. */
static series *get_series(family *f, const char *const *labels)
{
    dsk_buf key = {0};
    dsk_buf_adds(&key, "");
    for (int i = 0; i < f->n_labels; i++) {
        if (!labels || !labels[i]) {
            dsk_buf_free(&key);
            return NULL;
        }
        dsk_buf_printf(&key, "%s%s=\"", i ? "," : "", f->label_names[i]);
        escape_value(&key, labels[i]);
        dsk_buf_addc(&key, '"');
    }
    for (int i = 0; i < f->n_series; i++)
        if (strcmp(f->s[i].labels, key.data) == 0) {
            dsk_buf_free(&key);
            return &f->s[i];
        }
    if (f->n_series == DSK_METRICS_MAX_SERIES) {
        dsk_buf_free(&key);
        return NULL;
    }
    if (f->n_series == f->cap_series) {
        f->cap_series = f->cap_series ? 2 * f->cap_series : 4;
        f->s = dsk_xrealloc(f->s, (size_t)f->cap_series * sizeof *f->s);
    }
    series *s = &f->s[f->n_series++];
    memset(s, 0, sizeof *s);
    s->labels = key.data;  /* the buffer becomes the key */
    if (f->type == DSK_METRIC_HISTOGRAM)
        s->buckets = dsk_xcalloc((size_t)f->n_buckets + 1, sizeof *s->buckets);
    return s;
}

int dsk_metrics_define(dsk_metrics *m, const char *name, dsk_metric_type type, const char *help,
                       const char *const *label_names, const double *buckets, int n_buckets)
{
    if (!name_ok(name, 1))
        return -1;
    int n_labels = 0;
    for (; label_names && label_names[n_labels]; n_labels++) {
        const char *l = label_names[n_labels];
        if (!name_ok(l, 0) || strncmp(l, "__", 2) == 0 || strcmp(l, "le") == 0)
            return -1;
    }
    if (type == DSK_METRIC_HISTOGRAM) {
        if (n_buckets < 0 || (n_buckets && !buckets))
            return -1;
        for (int i = 0; i < n_buckets; i++)
            if (!isfinite(buckets[i]) || (i && !(buckets[i] > buckets[i - 1])))
                return -1;
    }
    pthread_mutex_lock(&m->lock);
    if (find(m, name)) {
        pthread_mutex_unlock(&m->lock);
        return -1;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->f = dsk_xrealloc(m->f, (size_t)m->cap * sizeof *m->f);
    }
    family *f = &m->f[m->n++];
    memset(f, 0, sizeof *f);
    f->name = dsk_xstrdup(name);
    f->help = dsk_xstrdup(help ? help : "");
    f->type = type;
    f->n_labels = n_labels;
    f->label_names = dsk_xcalloc((size_t)n_labels + 1, sizeof *f->label_names);
    for (int i = 0; i < n_labels; i++)
        f->label_names[i] = dsk_xstrdup(label_names[i]);
    if (type == DSK_METRIC_HISTOGRAM) {
        f->n_buckets = n_buckets;
        f->bounds = dsk_xmalloc(((size_t)n_buckets + 1) * sizeof *f->bounds);
        if (n_buckets)
            memcpy(f->bounds, buckets, (size_t)n_buckets * sizeof *buckets);
    }
    if (!n_labels)
        get_series(f, NULL);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

enum { OP_INC, OP_SET, OP_OBSERVE };

static int update(dsk_metrics *m, const char *name, const char *const *labels, double v, int op)
{
    if (isnan(v))
        return -1;
    pthread_mutex_lock(&m->lock);
    int rc = -1;
    family *f = find(m, name);
    series *s;
    if (!f)
        goto out;
    if (op == OP_INC && (f->type == DSK_METRIC_HISTOGRAM || (f->type == DSK_METRIC_COUNTER && v < 0)))
        goto out;
    /* a counter or a histogram's sum at infinity would stay there: only gauges take one */
    if (isinf(v) && f->type != DSK_METRIC_GAUGE)
        goto out;
    if (op == OP_SET && f->type == DSK_METRIC_HISTOGRAM)
        goto out;
    if (op == OP_OBSERVE && f->type != DSK_METRIC_HISTOGRAM)
        goto out;
    if (!(s = get_series(f, labels)))
        goto out;
    if (op == OP_INC) {
        s->value += v;
    } else if (op == OP_SET) {
        if (f->type == DSK_METRIC_COUNTER && v < s->value)
            goto out;   /* a counter never goes down */
        s->value = v;
    } else {
        int b = 0;
        while (b < f->n_buckets && v > f->bounds[b])  /* le: upper bounds are inclusive */
            b++;
        s->buckets[b]++;
        s->count++;
        s->value += v;
    }
    rc = 0;
out:
    pthread_mutex_unlock(&m->lock);
    return rc;
}

int dsk_metrics_inc(dsk_metrics *m, const char *name, const char *const *labels, double v)
{
    return update(m, name, labels, v, OP_INC);
}

int dsk_metrics_set(dsk_metrics *m, const char *name, const char *const *labels, double v)
{
    return update(m, name, labels, v, OP_SET);
}

int dsk_metrics_observe(dsk_metrics *m, const char *name, const char *const *labels, double v)
{
    return update(m, name, labels, v, OP_OBSERVE);
}

/* Shortest text that reads back as the same double; Prometheus spells
 * infinities +Inf and -Inf. */
static void add_number(dsk_buf *b, double v)
{
    if (isinf(v)) {
        dsk_buf_adds(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (isnan(v)) {
        dsk_buf_adds(b, "NaN");
        return;
    }
    char s[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v)
            break;
    }
    dsk_buf_adds(b, s);
}

/* HELP text escapes backslash and newline. */
static void add_help(dsk_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            dsk_buf_adds(b, "\\\\");
        else if (*s == '\n')
            dsk_buf_adds(b, "\\n");
        else
            dsk_buf_addc(b, *s);
    }
}

/* name{labels[,extra]} */
static void add_sample_name(dsk_buf *b, const char *name, const char *suffix, const char *labels, const char *extra)
{
    dsk_buf_adds(b, name);
    dsk_buf_adds(b, suffix);
    if (*labels || extra) {
        dsk_buf_addc(b, '{');
        dsk_buf_adds(b, labels);
        if (extra) {
            if (*labels)
                dsk_buf_addc(b, ',');
            dsk_buf_adds(b, extra);
        }
        dsk_buf_addc(b, '}');
    }
    dsk_buf_addc(b, ' ');
}

void dsk_metrics_render(dsk_metrics *m, dsk_buf *out)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < m->n; i++) {
        family *f = &m->f[i];
        dsk_buf_printf(out, "# HELP %s ", f->name);
        add_help(out, f->help);
        dsk_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
        for (int j = 0; j < f->n_series; j++) {
            series *s = &f->s[j];
            if (f->type != DSK_METRIC_HISTOGRAM) {
                add_sample_name(out, f->name, "", s->labels, NULL);
                add_number(out, s->value);
                dsk_buf_addc(out, '\n');
                continue;
            }
            unsigned long long cum = 0;
            for (int b = 0; b <= f->n_buckets; b++) {
                dsk_buf le = {0};
                dsk_buf_adds(&le, "le=\"");
                if (b < f->n_buckets)
                    add_number(&le, f->bounds[b]);
                else
                    dsk_buf_adds(&le, "+Inf");
                dsk_buf_addc(&le, '"');
                cum += s->buckets[b];
                add_sample_name(out, f->name, "_bucket", s->labels, le.data);
                dsk_buf_printf(out, "%llu\n", cum);
                dsk_buf_free(&le);
            }
            add_sample_name(out, f->name, "_sum", s->labels, NULL);
            add_number(out, s->value);
            dsk_buf_addc(out, '\n');
            add_sample_name(out, f->name, "_count", s->labels, NULL);
            dsk_buf_printf(out, "%llu\n", s->count);
        }
    }
    pthread_mutex_unlock(&m->lock);
}
