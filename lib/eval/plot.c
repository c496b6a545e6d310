/* SVG plots: training curves from JSON Lines logs, and the A/B forest plot.
 *
 * The SVG is written by hand: a handful of elements (line, polyline, path,
 * rect, text) with coordinates rounded to 0.1 px, so files stay small and
 * the same input gives the same bytes.  Text from files and labels goes
 * through xml_text, which escapes it and keeps it valid UTF-8 XML. */
#include "eval/plot.h"

#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/json.h"
#include "core/reader.h"
#include "text/utf8.h"

#define MAX_LINE (64u << 20)   /* bytes in one log line; MoE lines are a few KiB */
#define MAX_DRAWN 2000         /* points drawn per series, after thinning */
#define MAX_MARKERS 300        /* above this a dashed line alone reads better */
#define MAX_AB_ROWS 5000
#define MAX_AB_FILE (64u << 20)
#define MIN_SIZE 300
#define MAX_SIZE 10000
#define CHAR_W 7.0             /* a generous width of one 12 px sans-serif character */

static const char *const default_keys[] = {"loss", "val_loss"};

/* Tableau 10: distinct, and readable on white. */
static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* ---- text ---- */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Characters in s, an invalid UTF-8 byte counting as one. */
static size_t text_chars(const char *s)
{
    size_t n = strlen(s), chars = 0;
    for (size_t i = 0; i < n; chars++) {
        size_t l = dsk_utf8_seq_len((const uint8_t *)s + i, n - i);
        i += l ? l : 1;
    }
    return chars;
}

/* Appends s as XML character data: & < > " ' escaped; invalid UTF-8 and
 * the characters XML 1.0 forbids become U+FFFD (tab and newlines a space);
 * more than max_chars characters are cut, an ellipsis marking the cut. */
static void xml_text(dsk_buf *b, const char *s, size_t max_chars)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    size_t n = strlen(s), total = text_chars(s);
    size_t keep = total <= max_chars ? total : max_chars > 0 ? max_chars - 1 : 0;
    const uint8_t *p = (const uint8_t *)s;
    for (size_t i = 0, c = 0; i < n && c < keep; c++) {
        size_t l = dsk_utf8_seq_len(p + i, n - i);
        if (l == 0) {
            dsk_buf_adds(b, replacement);
            i++;
            continue;
        }
        uint32_t cp = dsk_utf8_decode(p + i, &l);
        switch (cp) {
        case '&': dsk_buf_adds(b, "&amp;"); break;
        case '<': dsk_buf_adds(b, "&lt;"); break;
        case '>': dsk_buf_adds(b, "&gt;"); break;
        case '"': dsk_buf_adds(b, "&quot;"); break;
        case '\'': dsk_buf_adds(b, "&apos;"); break;
        case '\t': case '\n': case '\r': dsk_buf_addc(b, ' '); break;
        default:
            if (cp < 0x20 || cp == 0xFFFE || cp == 0xFFFF)
                dsk_buf_adds(b, replacement);
            else
                dsk_buf_add(b, p + i, l);
        }
        i += l;
    }
    if (keep < total)
        dsk_buf_adds(b, "\xE2\x80\xA6");
}

/* <text> at (x, y); attrs are this file's own constant attributes. */
static void svg_text(dsk_buf *b, double x, double y, const char *attrs, const char *s, size_t max_chars)
{
    dsk_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\"%s%s>", x, y, *attrs ? " " : "", attrs);
    xml_text(b, s, max_chars);
    dsk_buf_adds(b, "</text>\n");
}

static void svg_begin(dsk_buf *b, int w, int h, const char *title)
{
    dsk_buf_printf(b,
                   "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                   "font-family=\"sans-serif\" font-size=\"12\">\n<title>",
                   w, h, w, h);
    xml_text(b, title, SIZE_MAX);
    dsk_buf_printf(b, "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", w, h);
    svg_text(b, w / 2.0, 26, "text-anchor=\"middle\" font-size=\"16\"", title, (size_t)((w - 20) / 9.0));
}

static int check_size(int v, int dflt, const char *what, int *out, dsk_err *err)
{
    if (v == 0)
        v = dflt;
    if (v < MIN_SIZE || v > MAX_SIZE)
        return dsk_fail(err, EX_USAGE, "plot %s must be %d to %d pixels, not %d", what, MIN_SIZE, MAX_SIZE, v);
    *out = v;
    return 0;
}

/* ---- axes ---- */

typedef struct axis {
    int log;
    double lo, hi;   /* linear: the ends, multiples of step; log: decade exponents */
    double step;
} axis;

typedef struct tick {
    double frac;        /* where it falls, 0 at the low end and 1 at the high end */
    int labelled;
    char label[40];
} tick;

/* The 1-2-5 multiple of a power of ten at or above raw. */
static double nice_step(double raw)
{
    double p = pow(10, floor(log10(raw)));
    double f = raw / p;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/* About five 1-2-5 steps over [lo, hi]; the ends move out to whole steps
 * unless tight.  A range too narrow to tick (one value) is widened around
 * it.  Returns -1 if the ends overflow. */
static int linear_axis(double lo, double hi, int tight, axis *a)
{
    double mag = fmax(fabs(lo), fabs(hi));
    if (!(hi - lo > mag * 1e-9) || hi - lo < 1e-300) {
        double pad = mag > 1e-300 ? mag * 0.05 : 1;
        lo -= pad;
        hi += pad;
    }
    memset(a, 0, sizeof *a);
    if (!isfinite(hi - lo))
        return -1;
    a->step = nice_step((hi - lo) / 5);
    a->lo = tight ? lo : floor(lo / a->step) * a->step;
    a->hi = tight ? hi : ceil(hi / a->step) * a->step;
    return isfinite(a->lo) && isfinite(a->hi) && isfinite(a->hi - a->lo) && a->hi > a->lo ? 0 : -1;
}

/* log10 of [lo, hi], both above 0, a little wider when it is one value. */
static void log_axis(double lo, double hi, axis *a)
{
    memset(a, 0, sizeof *a);
    a->log = 1;
    a->lo = log10(lo);
    a->hi = log10(hi);
    if (a->hi - a->lo < 1e-9) {
        a->lo -= 0.1;
        a->hi += 0.1;
    }
}

/* Where v falls on the axis, 0 at lo and 1 at hi. */
static double axis_frac(const axis *a, double v)
{
    return a->log ? (log10(v) - a->lo) / (a->hi - a->lo) : (v - a->lo) / (a->hi - a->lo);
}

/* "1.2e+06" -> "1.2e6", "1e-05" -> "1e-5". */
static void compact_exponent(char *s)
{
    char *e = strchr(s, 'e');
    if (!e)
        return;
    char *d = e + 1;
    if (*d == '-')
        d++;
    char *digits = d;
    while (*digits == '+' || *digits == '0')
        digits++;
    if (!*digits)
        digits--;  /* keep one zero */
    memmove(d, digits, strlen(digits) + 1);
}

/* The tick label: as many decimals as the step needs; significant digits
 * and an exponent for very large or very small values. */
static void linear_label(char *out, size_t n, double v, const axis *a)
{
    double mag = fmax(fabs(a->lo), fabs(a->hi));
    int dec = a->step >= 1 ? 0 : (int)ceil(-log10(a->step) - 1e-9);
    if (mag < 1e6 && dec <= 4) {
        snprintf(out, n, "%.*f", dec, v);
        return;
    }
    int sig = (int)floor(log10(mag) + 1e-9) - (int)floor(log10(a->step) + 1e-9) + 1;
    sig = sig < 1 ? 1 : sig > 15 ? 15 : sig;
    snprintf(out, n, "%.*g", sig, v);
    compact_exponent(out);
}

/* m times 10^d, m in 1..9: "200", "0.05", "2e6". */
static void log_label(char *out, size_t n, int m, int d)
{
    if (d >= -4 && d <= 5)
        snprintf(out, n, "%.*f", d < 0 ? -d : 0, m * pow(10, d));
    else
        snprintf(out, n, "%de%d", m, d);
}

/* Fills t[0..max) with the axis' ticks and returns how many: every step on
 * a linear axis; on a log axis the decades (at most about ten) and, over
 * five decades or fewer, ticks at 2..9 times each, those at 2 and 5
 * labelled when fewer than two decades fall on the axis, all of them when
 * that still labels none.  Positions come
 * from exponents, as 10^-324 is 0 as a double. */
static int axis_ticks(const axis *a, tick *t, int max)
{
    int k = 0;
    if (!a->log) {
        long long i0 = (long long)ceil(a->lo / a->step - 1e-9), i1 = (long long)floor(a->hi / a->step + 1e-9);
        for (long long i = i0; i <= i1 && k < max; i++, k++) {
            double v = (double)i * a->step;
            t[k].frac = (v - a->lo) / (a->hi - a->lo);
            t[k].labelled = 1;
            linear_label(t[k].label, sizeof t[k].label, v, a);
        }
        return k;
    }
    const double eps = 1e-9;
    int d0 = (int)floor(a->lo), d1 = (int)ceil(a->hi), decades = d1 - d0;
    int every = (decades + 9) / 10;
    int label_minor = floor(a->hi + eps) - ceil(a->lo - eps) < 1;  /* under two decades on the axis */
    /* a second pass labels every tick when the first labelled none (a narrow axis) */
    for (int pass = 0, labelled = 0; pass < 2 && !labelled; pass++) {
        k = 0;
        for (int d = d0; d <= d1 && k < max; d++) {
            for (int m = 1; m <= 9 && k < max; m++) {
                double pos = d + log10(m);
                if (pos < a->lo - eps || pos > a->hi + eps || (m == 1 && (d - d0) % every != 0) ||
                    (m > 1 && decades > 5))
                    continue;
                t[k].frac = (pos - a->lo) / (a->hi - a->lo);
                t[k].labelled = m == 1 || pass == 1 || (label_minor && (m == 2 || m == 5));
                t[k].label[0] = '\0';
                if (t[k].labelled)
                    log_label(t[k].label, sizeof t[k].label, m, d);
                labelled += t[k].labelled;
                k++;
            }
        }
    }
    return k;
}

/* ---- reading logs ---- */

static void series_init(dsk_plot_series *s, const char *label, const char *const *keys, int n_keys)
{
    if (!keys || n_keys <= 0) {
        keys = default_keys;
        n_keys = 2;
    }
    memset(s, 0, sizeof *s);
    s->label = dsk_xstrdup(label);
    s->metrics = dsk_xcalloc((size_t)n_keys, sizeof *s->metrics);
    s->n_metrics = n_keys;
    for (int i = 0; i < n_keys; i++)
        s->metrics[i].key = dsk_xstrdup(keys[i]);
}

void dsk_plot_series_free(dsk_plot_series *s)
{
    for (int i = 0; i < s->n_metrics; i++) {
        free(s->metrics[i].key);
        free(s->metrics[i].pts);
    }
    free(s->metrics);
    free(s->label);
    memset(s, 0, sizeof *s);
}

/* A finite JSON number under key; null, strings and the rest do not count. */
static int get_number(struct json_object *o, const char *key, double *v)
{
    struct json_object *x;
    if (!json_object_object_get_ex(o, key, &x) ||
        !(json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double)))
        return 0;
    *v = json_object_get_double(x);
    return isfinite(*v);
}

static void add_point(dsk_plot_metric *m, double x, double y)
{
    /* a resumed run logs steps again from its checkpoint: the later values win */
    while (m->n > 0 && m->pts[m->n - 1].x >= x)
        m->n--;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 64;
        m->pts = dsk_xrealloc(m->pts, m->cap * sizeof *m->pts);
    }
    m->pts[m->n++] = (dsk_plot_point){x, y};
}

static int parse_line(const char *s, size_t len, const char *name, unsigned long long line_no,
                      dsk_plot_series *out, dsk_err *err)
{
    if (line_no == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {  /* a byte order mark */
        s += 3;
        len -= 3;
    }
    size_t b = 0, e = len;
    while (b < e && is_blank(s[b]))
        b++;
    while (e > b && is_blank(s[e - 1]))
        e--;
    /* json-c returns NULL for a null value, which is not an error here */
    if (b == e || (e - b == 4 && memcmp(s + b, "null", 4) == 0))
        return 0;
    char msg[256];
    struct json_object *o = dsk_json_parse(s, len, msg, sizeof msg);
    if (!o)
        return dsk_fail(err, EX_DATAERR, "%s:%llu: invalid JSON: %s", name, line_no, msg);
    double step, v;
    if (json_object_is_type(o, json_type_object) && get_number(o, "step", &step))
        for (int i = 0; i < out->n_metrics; i++)
            if (get_number(o, out->metrics[i].key, &v))
                add_point(&out->metrics[i], step, v);
    json_object_put(o);
    return 0;
}

static int check_points(const dsk_plot_series *s, const char *name, dsk_err *err)
{
    for (int i = 0; i < s->n_metrics; i++)
        if (s->metrics[i].n > 0)
            return 0;
    dsk_buf keys = {0};
    for (int i = 0; i < s->n_metrics; i++) {
        if (i > 0)
            dsk_buf_adds(&keys, i == s->n_metrics - 1 ? " or " : ", ");
        dsk_buf_printf(&keys, "'%s'", s->metrics[i].key);
    }
    int rc = dsk_fail(err, EX_DATAERR, "%s: no %s values", name, keys.data);
    dsk_buf_free(&keys);
    return rc;
}

int dsk_plot_parse_log(const char *text, size_t len, const char *name, const char *label,
                       const char *const *keys, int n_keys, dsk_plot_series *out, dsk_err *err)
{
    series_init(out, label ? label : name, keys, n_keys);
    unsigned long long line_no = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        int rc = parse_line(text + pos, end - pos, name, ++line_no, out, err);
        if (rc)
            return rc;
        pos = end + 1;
    }
    return check_points(out, name, err);
}

static int read_log(const char *path, const char *label, const dsk_plot_opts *o, dsk_plot_series *out,
                    dsk_err *err)
{
    series_init(out, label, o->metrics, o->n_metrics);
    dsk_reader r;
    int rc = dsk_reader_open(&r, path, MAX_LINE, err);
    if (rc)
        return rc;
    const char *rec;
    size_t len;
    while ((rc = dsk_reader_next(&r, '\n', &rec, &len, err)) == 1)
        if ((rc = parse_line(rec, len, r.name, r.record_no, out, err)) != 0)
            break;
    if (rc == 0)
        rc = check_points(out, r.name, err);
    dsk_reader_close(&r);
    return rc;
}

/* The file's base name without .jsonl (or .jsonl.zst). */
static char *default_label(const char *path)
{
    if (strcmp(path, "-") == 0)
        return dsk_xstrdup("stdin");
    const char *slash = strrchr(path, '/');
    const char *base = slash && slash[1] ? slash + 1 : path;
    size_t n = strlen(base);
    static const char *const suffixes[] = {".zst", ".jsonl"};
    for (int i = 0; i < 2; i++) {
        size_t l = strlen(suffixes[i]);
        if (n > l && memcmp(base + n - l, suffixes[i], l) == 0)
            n -= l;
    }
    return dsk_xstrndup(base, n);
}

int dsk_plot_curves(const char *const *paths, const char *const *labels, int n, const dsk_plot_opts *o,
                    dsk_buf *svg, dsk_err *err)
{
    static const dsk_plot_opts defaults;
    if (!o)
        o = &defaults;
    if (n <= 0)
        return dsk_fail(err, EX_USAGE, "no training logs to plot");
    dsk_plot_series *runs = dsk_xcalloc((size_t)n, sizeof *runs);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char *label = labels && labels[i] ? dsk_xstrdup(labels[i]) : default_label(paths[i]);
        rc = read_log(paths[i], label, o, &runs[i], err);
        free(label);
    }
    if (rc == 0)
        rc = dsk_plot_svg(runs, n, o, svg, err);
    for (int i = 0; i < n; i++)
        dsk_plot_series_free(&runs[i]);
    free(runs);
    return rc;
}

/* ---- training curves ---- */

typedef struct frame {
    double left, top, right, bottom;   /* the plot area */
    axis x, y;
} frame;

static double fx(const frame *f, double v) { return f->left + axis_frac(&f->x, v) * (f->right - f->left); }
static double fy(const frame *f, double v) { return f->bottom - axis_frac(&f->y, v) * (f->bottom - f->top); }

/* A metric's look: validation metrics dashed with markers, others solid;
 * the second and third metric of a kind get their own dash pattern. */
typedef struct style {
    const char *dash;   /* "" for a solid line */
    int markers;
} style;

static int is_val(const char *key) { return strncmp(key, "val_", 4) == 0; }

static style key_style(const char *const *keys, int nk, const char *key)
{
    static const char *const train_dash[] = {"", "2 3", "8 3 2 3"};
    static const char *const val_dash[] = {"6 4", "2 2", "10 3 3 3"};
    int val = is_val(key), same_kind = 0;
    for (int i = 0; i < nk && strcmp(keys[i], key) != 0; i++)
        same_kind += is_val(keys[i]) == val;
    return (style){val ? val_dash[same_kind % 3] : train_dash[same_kind % 3], val};
}

static void dash_attr(dsk_buf *b, const char *dash)
{
    if (*dash)
        dsk_buf_printf(b, " stroke-dasharray=\"%s\"", dash);
}

static void marker(dsk_buf *b, double x, double y)
{
    dsk_buf_printf(b, "M%.1f %.1fa2.5 2.5 0 1 0 5 0a2.5 2.5 0 1 0 -5 0", x - 2.5, y);
}

/* The axes: grid lines and tick labels, the frame, the axis titles. */
static void draw_axes(dsk_buf *b, const frame *f, const char *x_title, const char *y_title)
{
    tick t[64];
    int n = axis_ticks(&f->x, t, 64);
    for (int i = 0; i < n; i++) {
        double x = f->left + t[i].frac * (f->right - f->left);
        dsk_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x, f->top, x,
                       f->bottom, t[i].labelled ? "#dddddd" : "#eeeeee");
        if (t[i].labelled)
            svg_text(b, x, f->bottom + 16, "text-anchor=\"middle\"", t[i].label, SIZE_MAX);
    }
    n = axis_ticks(&f->y, t, 64);
    for (int i = 0; i < n; i++) {
        double y = f->bottom - t[i].frac * (f->bottom - f->top);
        dsk_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", f->left,
                       y, f->right, y);
        svg_text(b, f->left - 6, y + 4, "text-anchor=\"end\"", t[i].label, SIZE_MAX);
    }
    dsk_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#888888\"/>\n",
                   f->left, f->top, f->right - f->left, f->bottom - f->top);
    svg_text(b, (f->left + f->right) / 2, f->bottom + 38, "text-anchor=\"middle\"", x_title, SIZE_MAX);
    double cy = (f->top + f->bottom) / 2;
    char attrs[96];
    snprintf(attrs, sizeof attrs, "text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\"", 18.0, cy);
    svg_text(b, 18, cy, attrs, y_title, (size_t)((f->bottom - f->top) / CHAR_W));
}

/* After point i of n drawn every k-th: the next, or the last, or n when done. */
static size_t next_drawn(size_t i, size_t k, size_t n)
{
    if (i + k < n)
        return i + k;
    return i == n - 1 ? n : n - 1;
}

/* One metric of one run: a polyline through at most MAX_DRAWN points (every
 * k-th, and the last), markers where the style asks or a point is alone. */
static void draw_metric(dsk_buf *b, const frame *f, const dsk_plot_metric *m, const char *colour, style st,
                        dsk_plot_point *scratch)
{
    size_t nv = 0;
    for (size_t i = 0; i < m->n; i++)
        if (!f->x.log || m->pts[i].x > 0)
            scratch[nv++] = m->pts[i];
    if (nv == 0)
        return;
    size_t k = nv <= MAX_DRAWN ? 1 : (nv + MAX_DRAWN - 2) / (MAX_DRAWN - 1);
    size_t drawn = (nv + k - 1) / k + ((nv - 1) % k != 0);
    if (drawn > 1) {
        dsk_buf_printf(b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"", colour);
        dash_attr(b, st.dash);
        dsk_buf_adds(b, " points=\"");
        for (size_t i = 0; i < nv; i = next_drawn(i, k, nv))
            dsk_buf_printf(b, "%s%.1f,%.1f", i ? " " : "", fx(f, scratch[i].x), fy(f, scratch[i].y));
        dsk_buf_adds(b, "\"/>\n");
    }
    if ((st.markers && drawn <= MAX_MARKERS) || drawn == 1) {
        dsk_buf_printf(b, "<path fill=\"%s\" d=\"", colour);
        for (size_t i = 0; i < nv; i = next_drawn(i, k, nv))
            marker(b, fx(f, scratch[i].x), fy(f, scratch[i].y));
        dsk_buf_adds(b, "\"/>\n");
    }
}

static void legend_entry(dsk_buf *b, double x, double y, const char *colour, style st, const char *label,
                         size_t max_chars)
{
    dsk_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"", x, y,
                   x + 24, y, colour);
    dash_attr(b, st.dash);
    dsk_buf_adds(b, "/>\n");
    if (st.markers) {
        dsk_buf_printf(b, "<path fill=\"%s\" d=\"", colour);
        marker(b, x + 12, y);
        dsk_buf_adds(b, "\"/>\n");
    }
    svg_text(b, x + 30, y + 4, "", label, max_chars);
}

/* Runs in their colours, then the metrics in their line styles; what does
 * not fit the height is counted in a last line. */
static void draw_legend(dsk_buf *b, double x, double y, double bottom, const dsk_plot_series *runs, int n,
                        const char *const *keys, int nk, size_t max_chars)
{
    int total = n + nk, shown = 0;
    for (int i = 0; i < total; i++, shown++) {
        if (y + 18 > bottom && i < total - 1) {
            char more[48];
            snprintf(more, sizeof more, "+%d more", total - shown);
            svg_text(b, x, y + 4, "fill=\"#555555\"", more, SIZE_MAX);
            return;
        }
        if (i < n) {
            legend_entry(b, x, y, palette[i % 10], (style){"", 0}, runs[i].label, max_chars);
        } else {
            if (i == n)
                y += 8;  /* a gap between runs and metrics */
            const char *key = keys[i - n];
            legend_entry(b, x, y, "#444444", key_style(keys, nk, key), key, max_chars);
        }
        y += 18;
    }
}

int dsk_plot_svg(const dsk_plot_series *runs, int n, const dsk_plot_opts *o, dsk_buf *svg, dsk_err *err)
{
    static const dsk_plot_opts defaults;
    if (!o)
        o = &defaults;
    int w = 0, h = 0, rc;
    if ((rc = check_size(o->width, 800, "width", &w, err)) || (rc = check_size(o->height, 500, "height", &h, err)))
        return rc;
    if (n <= 0)
        return dsk_fail(err, EX_USAGE, "no runs to plot");

    /* the metrics with points in any run, each once, in the order first seen */
    int total_metrics = 0;
    for (int i = 0; i < n; i++)
        total_metrics += runs[i].n_metrics;
    const char **keys = dsk_xcalloc((size_t)total_metrics + 1, sizeof *keys);
    int nk = 0;
    size_t longest = 0, most_points = 0, count = 0;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++) {
        size_t l = text_chars(runs[i].label);
        longest = l > longest ? l : longest;
        for (int j = 0; j < runs[i].n_metrics; j++) {
            const dsk_plot_metric *m = &runs[i].metrics[j];
            int seen = 0;
            for (int q = 0; q < nk && !seen; q++)
                seen = strcmp(keys[q], m->key) == 0;
            if (!seen && m->n > 0) {
                keys[nk++] = m->key;
                l = text_chars(m->key);
                longest = l > longest ? l : longest;
            }
            most_points = m->n > most_points ? m->n : most_points;
            for (size_t p = 0; p < m->n; p++) {
                if (o->log_x && m->pts[p].x <= 0)
                    continue;
                xlo = fmin(xlo, m->pts[p].x);
                xhi = fmax(xhi, m->pts[p].x);
                ylo = fmin(ylo, m->pts[p].y);
                yhi = fmax(yhi, m->pts[p].y);
                count++;
            }
        }
    }
    frame f;
    if (count == 0)
        rc = dsk_fail(err, EX_DATAERR, o->log_x ? "nothing to plot: no step above 0 for a log-scaled step axis"
                                                : "nothing to plot");
    else if (o->log_x)
        log_axis(xlo, xhi, &f.x);
    else if (linear_axis(xlo, xhi, 1, &f.x))  /* tight: steps 0..10001 should not run to 12000 */
        rc = dsk_fail(err, EX_DATAERR, "steps too far apart to plot");
    if (rc == 0 && linear_axis(ylo, yhi, 0, &f.y))
        rc = dsk_fail(err, EX_DATAERR, "values too far apart to plot");
    if (rc) {
        free(keys);
        return rc;
    }

    /* the legend sits right of the plot, at most a third of the width */
    size_t legend_chars = longest < 32 ? longest : 32;
    if (legend_chars < 4)
        legend_chars = 4;
    if (40 + legend_chars * CHAR_W > w / 3.0)
        legend_chars = (size_t)((w / 3.0 - 40) / CHAR_W);
    f.left = 76;
    f.top = 44;
    f.right = w - (40 + legend_chars * CHAR_W) - 16;
    f.bottom = h - 52;

    dsk_buf y_title = {0};
    for (int q = 0; q < nk; q++) {
        if (q)
            dsk_buf_adds(&y_title, ", ");
        dsk_buf_adds(&y_title, keys[q]);
    }
    svg_begin(svg, w, h, o->title ? o->title : "Training curves");
    draw_axes(svg, &f, o->log_x ? "step (log scale)" : "step", y_title.data ? y_title.data : "");
    dsk_buf_free(&y_title);

    dsk_buf_printf(svg,
                   "<defs><clipPath id=\"plot-area\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
                   "</clipPath></defs>\n<g clip-path=\"url(#plot-area)\">\n",
                   f.left - 4, f.top - 4, f.right - f.left + 8, f.bottom - f.top + 8);
    dsk_plot_point *scratch = dsk_xmalloc((most_points ? most_points : 1) * sizeof *scratch);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < runs[i].n_metrics; j++)
            draw_metric(svg, &f, &runs[i].metrics[j], palette[i % 10], key_style(keys, nk, runs[i].metrics[j].key),
                        scratch);
    free(scratch);
    dsk_buf_adds(svg, "</g>\n");

    draw_legend(svg, f.right + 16, f.top + 8, h - 8, runs, n, keys, nk, legend_chars);
    dsk_buf_adds(svg, "</svg>\n");
    free(keys);
    return 0;
}

/* ---- A/B forest plot ---- */

/* B clearly better, clearly worse, no clear difference */
static const char *const ab_colours[] = {"#2a8a3e", "#c0392b", "#888888"};

static void fmt_value(char *out, size_t n, const char *fmt, double v)
{
    if (isfinite(v))
        snprintf(out, n, fmt, v);
    else
        snprintf(out, n, "n/a");
}

/* "B−A = +0.021 [+0.003, +0.04], p = 0.012" */
static void ab_label(char *out, size_t n, const dsk_ab_summary *r)
{
    char d[32], lo[32], hi[32], p[32];
    fmt_value(d, sizeof d, "%+.3g", r->diff);
    fmt_value(lo, sizeof lo, "%+.3g", r->lo);
    fmt_value(hi, sizeof hi, "%+.3g", r->hi);
    if (!isfinite(r->p))
        snprintf(p, sizeof p, "= n/a");
    else if (r->p < 0.001)
        snprintf(p, sizeof p, "< 0.001");
    else
        snprintf(p, sizeof p, "= %.3f", r->p);
    if (isfinite(r->lo) && isfinite(r->hi))
        snprintf(out, n, "B\xE2\x88\x92" "A = %s [%s, %s], p %s", d, lo, hi, p);
    else
        snprintf(out, n, "B\xE2\x88\x92" "A = %s [n/a], p %s", d, p);
}

int dsk_plot_ab(const dsk_ab_summary *rows, int n, const dsk_plot_opts *o, dsk_buf *svg, dsk_err *err)
{
    static const dsk_plot_opts defaults;
    if (!o)
        o = &defaults;
    if (n <= 0)
        return dsk_fail(err, EX_DATAERR, "no A/B results to plot");
    if (n > MAX_AB_ROWS)
        return dsk_fail(err, EX_DATAERR, "%d A/B results, more than the %d a plot can show", n, MAX_AB_ROWS);
    const double row_h = 34, top = 48, below = 56;
    int w = 0, h = 0, rc;
    int need = (int)(top + n * row_h + below);
    if ((rc = check_size(o->width, 800, "width", &w, err)) ||
        (o->height && (rc = check_size(o->height, 500, "height", &h, err))))
        return rc;
    h = o->height > need ? o->height : need;

    double lo = 0, hi = 0;  /* zero is always on the axis */
    for (int i = 0; i < n; i++) {
        const dsk_ab_summary *r = &rows[i];
        if (!isfinite(r->diff))
            return dsk_fail(err, EX_DATAERR, "%s: the difference B-A is not a number", r->name ? r->name : "");
        lo = fmin(lo, r->diff);
        hi = fmax(hi, r->diff);
        if (isfinite(r->lo) && isfinite(r->hi)) {
            lo = fmin(lo, fmin(r->lo, r->hi));
            hi = fmax(hi, fmax(r->lo, r->hi));
        }
    }
    frame f;
    if (linear_axis(lo, hi, 0, &f.x))
        return dsk_fail(err, EX_DATAERR, "differences too far apart to plot");
    f.left = w * 0.26;
    f.right = w * 0.60;   /* room for "B−A = -0.0167 [-0.0833, +0.0333], p = 0.760" at 800 wide */
    f.top = top;
    f.bottom = top + n * row_h;

    /* The title names the intervals' level when every row has the same one. */
    char title[96];
    double level = rows[0].confidence;
    for (int i = 1; i < n; i++)
        if (rows[i].confidence != level)
            level = 0;
    if (level > 0 && level < 1)
        snprintf(title, sizeof title, "B \xE2\x88\x92 A with %.6g%% confidence intervals", level * 100);
    else
        snprintf(title, sizeof title, "B \xE2\x88\x92 A with confidence intervals");
    svg_begin(svg, w, h, o->title ? o->title : title);
    for (int i = 1; i < n; i += 2)  /* banded rows guide the eye across */
        dsk_buf_printf(svg, "<rect x=\"0\" y=\"%.1f\" width=\"%d\" height=\"%.1f\" fill=\"#f4f4f4\"/>\n",
                       top + i * row_h, w, row_h);
    tick t[64];
    int nt = axis_ticks(&f.x, t, 64);
    for (int i = 0; i < nt; i++) {
        double x = f.left + t[i].frac * (f.right - f.left);
        dsk_buf_printf(svg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", x, f.top,
                       x, f.bottom);
        svg_text(svg, x, f.bottom + 16, "text-anchor=\"middle\"", t[i].label, SIZE_MAX);
    }
    double x0 = fx(&f, 0);
    dsk_buf_printf(svg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", x0,
                   f.top - 6, x0, f.bottom);
    dsk_buf_printf(svg, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888888\"/>\n", f.left,
                   f.bottom, f.right, f.bottom);
    svg_text(svg, (f.left + f.right) / 2, f.bottom + 38, "text-anchor=\"middle\"",
             "B \xE2\x88\x92 A (difference of means)", SIZE_MAX);

    size_t name_chars = (size_t)((f.left - 20) / CHAR_W), label_chars = (size_t)((w - f.right - 16) / 6.5);
    for (int i = 0; i < n; i++) {
        const dsk_ab_summary *r = &rows[i];
        double y = top + (i + 0.5) * row_h;
        int has_ci = isfinite(r->lo) && isfinite(r->hi);
        int clear = has_ci && (r->lo > 0 || r->hi < 0);
        int b_better = r->higher_better ? r->diff > 0 : r->diff < 0;
        const char *colour = !clear ? ab_colours[2] : b_better ? ab_colours[0] : ab_colours[1];
        char buf[160], a[32], b[32];
        svg_text(svg, 12, y - 2, "", r->name ? r->name : "", name_chars);
        fmt_value(a, sizeof a, "%.4g", r->mean_a);
        fmt_value(b, sizeof b, "%.4g", r->mean_b);
        if (r->n > 0)
            snprintf(buf, sizeof buf, "A %s, B %s, n %ld", a, b, r->n);
        else
            snprintf(buf, sizeof buf, "A %s, B %s", a, b);
        svg_text(svg, 12, y + 11, "font-size=\"10\" fill=\"#666666\"", buf, name_chars + 2);
        if (has_ci) {
            double x1 = fx(&f, r->lo), x2 = fx(&f, r->hi);
            dsk_buf_printf(svg,
                           "<path stroke=\"%s\" stroke-width=\"2\" fill=\"none\" "
                           "d=\"M%.1f %.1fH%.1fM%.1f %.1fv8M%.1f %.1fv8\"/>\n",
                           colour, x1, y, x2, x1, y - 4, x2, y - 4);
        }
        dsk_buf_printf(svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/>\n", fx(&f, r->diff), y,
                       colour);
        ab_label(buf, sizeof buf, r);
        svg_text(svg, f.right + 12, y + 4, "font-size=\"11\"", buf, label_chars);
    }
    /* the key to the colours, under the labels */
    static const char *const key[] = {"B better", "B worse", "CI includes 0"};
    double kx = f.right + 12;
    for (int i = 0; i < 3; i++) {
        dsk_buf_printf(svg, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", kx + 4, f.bottom + 16,
                       ab_colours[i]);
        svg_text(svg, kx + 12, f.bottom + 20, "font-size=\"10\"", key[i], SIZE_MAX);
        kx += 12 + text_chars(key[i]) * 6.0 + 12;
    }
    dsk_buf_adds(svg, "</svg>\n");
    return 0;
}

/* ---- reading A/B results ---- */

/* A JSON number under key, NaN if absent, null or not a number. */
static double json_number(struct json_object *o, const char *key)
{
    struct json_object *x;
    if (!json_object_object_get_ex(o, key, &x) ||
        !(json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double)))
        return NAN;
    return json_object_get_double(x);
}

/* The "results" array of an ab result object, or NULL. */
static struct json_object *ab_results(struct json_object *o)
{
    struct json_object *r, *cmd = o ? dsk_json_get_string(o, "command") : NULL;
    if (!dsk_json_is(o, json_type_object) || (cmd && strcmp(json_object_get_string(cmd), "ab") != 0) ||
        !json_object_object_get_ex(o, "results", &r) || !dsk_json_is(r, json_type_array))
        return NULL;
    return r;
}

void dsk_plot_ab_rows_free(dsk_ab_summary *rows, int n)
{
    for (int i = 0; rows && i < n; i++)
        free((char *)rows[i].name);
    free(rows);
}

/* The rows of an ab result object (its "results"), each with the object's
 * "confidence" (0 when missing or not in (0, 1)). */
static int ab_rows(struct json_object *doc, const char *name, dsk_ab_summary **rows, int *n, dsk_err *err)
{
    struct json_object *results = ab_results(doc);
    double confidence = json_number(doc, "confidence");
    if (!(confidence > 0 && confidence < 1))
        confidence = 0;
    size_t count = json_object_array_length(results);
    if (count == 0)
        return dsk_fail(err, EX_DATAERR, "%s: no A/B results", name);
    if (count > MAX_AB_ROWS)
        return dsk_fail(err, EX_DATAERR, "%s: %zu A/B results, more than the %d a plot can show", name, count,
                        MAX_AB_ROWS);
    *rows = dsk_xcalloc(count, sizeof **rows);
    *n = (int)count;
    for (size_t i = 0; i < count; i++) {
        struct json_object *r = json_object_array_get_idx(results, i), *hb;
        if (!dsk_json_is(r, json_type_object))
            return dsk_fail(err, EX_DATAERR, "%s: results[%zu] is not an object", name, i);
        struct json_object *task = dsk_json_get_string(r, "task"), *metric = dsk_json_get_string(r, "metric");
        dsk_buf label = {0};
        dsk_buf_adds(&label, task ? json_object_get_string(task) : "");
        if (task && metric)
            dsk_buf_addc(&label, ' ');
        dsk_buf_adds(&label, metric ? json_object_get_string(metric) : "");
        dsk_ab_summary *s = &(*rows)[i];
        s->name = label.data ? label.data : dsk_xstrdup("");
        s->mean_a = json_number(r, "mean_a");
        s->mean_b = json_number(r, "mean_b");
        s->diff = json_number(r, "diff");
        s->lo = json_number(r, "lo");
        s->hi = json_number(r, "hi");
        s->p = json_number(r, "p");
        s->confidence = confidence;
        double items = json_number(r, "n");
        s->n = items >= 0 && items < 1e15 ? (long)items : 0;
        s->higher_better = !(json_object_object_get_ex(r, "higher_is_better", &hb) &&
                             dsk_json_is(hb, json_type_boolean) && !json_object_get_boolean(hb));
    }
    return 0;
}

int dsk_plot_ab_parse(const char *text, size_t len, const char *name, dsk_ab_summary **rows, int *n,
                      dsk_err *err)
{
    *rows = NULL;
    *n = 0;
    if (!text)
        text = "";
    size_t b = 0, e = len;
    while (b < e && is_blank(text[b]))
        b++;
    while (e > b && is_blank(text[e - 1]))
        e--;
    char msg[256];
    /* the whole text as one JSON value: the output of --json, compact or pretty */
    struct json_object *doc = dsk_json_parse(text + b, e - b, msg, sizeof msg);
    if (doc || !memchr(text + b, '\n', e - b)) {
        struct json_object *results = ab_results(doc);
        int rc = !doc      ? dsk_fail(err, EX_DATAERR, "%s: invalid JSON: %s", name, msg)
                 : results ? ab_rows(doc, name, rows, n, err)
                           : dsk_fail(err, EX_DATAERR, "%s: not the JSON of 'dsk-eval ab --json'", name);
        json_object_put(doc);
        return rc;
    }
    /* else JSON Lines (a --log file): the last ab line */
    struct json_object *last = NULL;
    unsigned long long line_no = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len, lb = pos;
        line_no++;
        while (lb < end && is_blank(text[lb]))
            lb++;
        if (lb < end) {
            struct json_object *o = dsk_json_parse(text + lb, end - lb, msg, sizeof msg);
            if (!o) {
                json_object_put(last);
                return dsk_fail(err, EX_DATAERR, "%s:%llu: invalid JSON: %s", name, line_no, msg);
            }
            if (ab_results(o) && dsk_json_get_string(o, "command")) {
                json_object_put(last);
                last = o;
            } else {
                json_object_put(o);
            }
        }
        pos = end + 1;
    }
    int rc = last ? ab_rows(last, name, rows, n, err)
                  : dsk_fail(err, EX_DATAERR, "%s: no {\"command\":\"ab\"} line", name);
    json_object_put(last);
    return rc;
}

int dsk_plot_ab_file(const char *path, const dsk_plot_opts *o, dsk_buf *svg, dsk_err *err)
{
    dsk_buf text = {0};
    dsk_ab_summary *rows = NULL;
    int n = 0;
    int rc = dsk_read_file(path, MAX_AB_FILE, &text, err);
    if (rc == 0)
        rc = dsk_plot_ab_parse(text.data ? text.data : "", text.len, path, &rows, &n, err);
    if (rc == 0)
        rc = dsk_plot_ab(rows, n, o, svg, err);
    dsk_plot_ab_rows_free(rows, n);
    dsk_buf_free(&text);
    return rc;
}
