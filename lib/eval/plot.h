/* Self-contained SVG plots for dsk-eval plot: training curves from
 * dsk-train's JSON Lines logs, and an A/B forest plot of per-task
 * differences.  The SVG is standalone UTF-8 XML (no script, no external
 * fonts or files), and the same input gives the same bytes. */
#ifndef DSK_EVAL_PLOT_H
#define DSK_EVAL_PLOT_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "eval/ab.h"

typedef struct dsk_plot_opts {
    const char *title;            /* NULL: a default title */
    int log_x;                    /* curves: log-scaled step axis; steps <= 0 are left out */
    const char *const *metrics;   /* curves: keys to plot; NULL or n_metrics 0: loss, val_loss */
    int n_metrics;
    int width, height;            /* pixels, 0: default (800 x 500; A/B height fits the rows) */
} dsk_plot_opts;

/* ---- training curves ---- */

typedef struct dsk_plot_point {
    double x, y;                  /* step, value */
} dsk_plot_point;

typedef struct dsk_plot_metric {
    char *key;
    dsk_plot_point *pts;          /* in increasing step order */
    size_t n, cap;
} dsk_plot_metric;

/* One run: one dsk_plot_metric per requested key, in the order asked. */
typedef struct dsk_plot_series {
    char *label;
    dsk_plot_metric *metrics;
    int n_metrics;
} dsk_plot_series;

/* Reads a log from text[0..len).  A line is a JSON object with a numeric
 * "step"; each requested key with a finite number becomes a point.  Blank
 * lines, lines without a step, non-objects and null / non-numeric values
 * are skipped; a line that is not JSON is EX_DATAERR "NAME:LINE: ...".  A
 * step not after the previous point of the same key (a resumed run)
 * replaces that key's points from that step on.  No point at all is
 * EX_DATAERR "NAME: no 'loss' or 'val_loss' values".  keys NULL or
 * n_keys 0: loss and val_loss.  On success *out holds label (copied) and
 * the points; free it with dsk_plot_series_free, also after an error. */
int dsk_plot_parse_log(const char *text, size_t len, const char *name, const char *label,
                       const char *const *keys, int n_keys, dsk_plot_series *out, dsk_err *err);
void dsk_plot_series_free(dsk_plot_series *s);

/* Appends the SVG of runs overlaid: one colour per run; metrics named
 * "val_*" dashed with markers, others solid; a legend; 1-2-5 ticks (decades
 * on a log step axis).  Series over 2000 points are thinned to every k-th
 * point, the last kept. */
int dsk_plot_svg(const dsk_plot_series *runs, int n, const dsk_plot_opts *o, dsk_buf *svg, dsk_err *err);

/* Reads each log (a path, "-" for stdin; zstd-compressed is fine) and plots
 * them with dsk_plot_svg.  labels NULL, or a NULL entry: the file's base
 * name without ".jsonl".  A missing file is EX_NOINPUT. */
int dsk_plot_curves(const char *const *paths, const char *const *labels, int n, const dsk_plot_opts *o,
                    dsk_buf *svg, dsk_err *err);

/* ---- A/B comparison ---- */

/* Appends a forest plot of rows (dsk_ab_summary from eval/ab.h): one row per
 * measure, the difference B - A as a dot with its interval as a bar, a line
 * at zero, and "B−A = x [lo, hi], p = ..." beside each row.  A row whose
 * interval excludes zero is green where B is better (by higher_better) and
 * red where it is worse, grey otherwise.  lo, hi, p, the means may be NaN
 * (shown as n/a); a non-finite diff is EX_DATAERR.  Height 0: fit the rows. */
int dsk_plot_ab(const dsk_ab_summary *rows, int n, const dsk_plot_opts *o, dsk_buf *svg, dsk_err *err);

/* The rows of the JSON that 'dsk-eval ab --json' prints, from text[0..len):
 * that object, or the last {"command":"ab",...} line of a JSON Lines log
 * (--log).  A row is named "TASK METRIC"; null numbers become NaN.  Free
 * *rows with dsk_plot_ab_rows_free, also after an error. */
int dsk_plot_ab_parse(const char *text, size_t len, const char *name, dsk_ab_summary **rows, int *n,
                      dsk_err *err);
void dsk_plot_ab_rows_free(dsk_ab_summary *rows, int n);

/* dsk_plot_ab_parse on a file, then dsk_plot_ab. */
int dsk_plot_ab_file(const char *path, const dsk_plot_opts *o, dsk_buf *svg, dsk_err *err);

#endif
