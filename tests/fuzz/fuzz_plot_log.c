/* libFuzzer target: the training-log and A/B-result readers and the SVG
 * they make, on arbitrary bytes.  Reading fails cleanly or yields rows that
 * plot (linear and log step axes) to SVG that is valid UTF-8, has balanced
 * markup and known entities only, and no NaN or infinite coordinate. */
#include <stdlib.h>
#include <string.h>

#include "eval/plot.h"
#include "text/utf8.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int entity(const char *s)
{
    static const char *const known[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (int i = 0; i < 5; i++)
        if (strncmp(s, known[i], strlen(known[i])) == 0)
            return 1;
    return 0;
}

/* numbers_only: the text came from this target alone, so "nan" or "inf"
 * can only be a bad number. */
static void check_svg(const dsk_buf *b, int numbers_only)
{
    size_t open = 0, close = 0;
    if (dsk_utf8_find_invalid(b->data, b->len) != b->len)
        __builtin_trap();
    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        open += c == '<';
        close += c == '>';
        if (((unsigned char)c < 0x20 && c != '\n') || (c == '&' && !entity(b->data + i)))
            __builtin_trap();
    }
    if (open != close || b->len < 8 || strcmp(b->data + b->len - 7, "</svg>\n") != 0)
        __builtin_trap();
    if (numbers_only && (strstr(b->data, "nan") || strstr(b->data, "inf")))
        __builtin_trap();
}

static void plot_log(const char *text, size_t size, const char *label)
{
    static const char *const keys[] = {"loss", "val_loss", "grad_norm"};
    dsk_plot_series s;
    dsk_err err;
    if (dsk_plot_parse_log(text, size, "fuzz", label, keys, 3, &s, &err) == 0) {
        for (int log_x = 0; log_x < 2; log_x++) {
            dsk_plot_opts o = {0};
            o.log_x = log_x;
            o.title = label;
            dsk_buf b = {0};
            if (dsk_plot_svg(&s, 1, &o, &b, &err) == 0)
                check_svg(&b, strcmp(label, "run") == 0);
            dsk_buf_free(&b);
        }
    }
    dsk_plot_series_free(&s);
}

static void plot_ab(const char *text, size_t size)
{
    dsk_ab_summary *rows;
    int n;
    dsk_err err;
    if (dsk_plot_ab_parse(text, size, "fuzz", &rows, &n, &err) == 0) {
        dsk_buf b = {0};
        if (dsk_plot_ab(rows, n, NULL, &b, &err) == 0)
            check_svg(&b, 0);
        dsk_buf_clear(&b);
        for (int i = 0; i < n; i++) {  /* the same rows without their names */
            free((char *)rows[i].name);
            rows[i].name = dsk_xstrdup("row");
        }
        if (dsk_plot_ab(rows, n, NULL, &b, &err) == 0)
            check_svg(&b, 1);
        dsk_buf_free(&b);
    }
    dsk_plot_ab_rows_free(rows, n);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *text = (const char *)data;
    /* the first line, up to 40 bytes, as a label: escaping on any bytes */
    char label[41];
    size_t l = 0;
    for (; l < size && l < 40 && data[l] != '\n'; l++)
        label[l] = data[l] ? (char)data[l] : ' ';
    label[l] = '\0';
    plot_log(text, size, "run");
    plot_log(text, size, label);
    plot_ab(text, size);
    return 0;
}
