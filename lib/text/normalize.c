#include "text/normalize.h"

#include <stdlib.h>
#include <utf8proc.h>

#include "core/err.h"
#include "text/utf8.h"

static int has_non_ascii(const char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return 1;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] & 0x80)
            return 1;
    return 0;
}

/* Length of the escape sequence starting with ESC at s[0]. */
static size_t escape_len(const uint8_t *s, size_t n)
{
    if (n < 2)
        return 1;
    uint8_t c = s[1];
    size_t i = 2;
    if (c == '[') {  /* CSI: parameters, intermediates, one final byte */
        while (i < n && s[i] >= 0x30 && s[i] <= 0x3F) i++;
        while (i < n && s[i] >= 0x20 && s[i] <= 0x2F) i++;
        if (i < n && s[i] >= 0x40 && s[i] <= 0x7E) i++;
        return i;
    }
    if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
        /* string sequences end at BEL or ESC '\'; a line break ends them too,
         * so a broken sequence cannot swallow the rest of a document */
        while (i < n && s[i] != 0x07 && s[i] != '\n' && !(s[i] == 0x1B && i + 1 < n && s[i + 1] == '\\'))
            i++;
        if (i < n && s[i] == 0x07) i++;
        else if (i < n && s[i] == 0x1B) i += 2;
        return i;
    }
    while (i - 1 < n && s[i - 1] >= 0x20 && s[i - 1] <= 0x2F && i < n) i++;  /* nF intermediates */
    return s[i - 1] >= 0x30 && s[i - 1] <= 0x7E ? i : i - 1;
}

/* Unicode spaces other than U+0020 that are turned into U+0020. */
static int is_exotic_space(uint32_t cp)
{
    return cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000 || cp == 0x1680;
}

/* Whitespace tidying state: line breaks, indentation and inner spaces are
 * held back until the next visible character, so trailing whitespace and
 * blank-line runs never reach the output. */
typedef struct ws_state {
    int tidy;
    int at_line_start;
    int any_content;
    size_t newlines;        /* pending line breaks */
    size_t pending_spaces;  /* pending inner run, emitted as one space */
    dsk_buf indent;         /* pending indentation of the current line */
} ws_state;

static void emit_newline(ws_state *w, dsk_buf *out)
{
    if (!w->tidy) {
        dsk_buf_addc(out, '\n');
        return;
    }
    w->indent.len = 0;
    w->pending_spaces = 0;
    if (w->any_content)
        w->newlines++;
    w->at_line_start = 1;
}

static void emit_space(ws_state *w, dsk_buf *out, char c)
{
    if (!w->tidy)
        dsk_buf_addc(out, c);
    else if (!w->at_line_start)
        w->pending_spaces++;
    else if (w->any_content)  /* the document's own leading blanks are trimmed */
        dsk_buf_addc(&w->indent, c);
}

static void emit_bytes(ws_state *w, dsk_buf *out, const char *p, size_t n)
{
    if (w->tidy) {
        if (w->newlines) {
            dsk_buf_add(out, "\n\n", w->newlines > 2 ? 2 : w->newlines);
            w->newlines = 0;
        }
        if (w->indent.len) {
            dsk_buf_add(out, w->indent.data, w->indent.len);
            w->indent.len = 0;
        }
        if (w->pending_spaces) {
            dsk_buf_addc(out, ' ');
            w->pending_spaces = 0;
        }
        w->any_content = 1;
        w->at_line_start = 0;
    }
    dsk_buf_add(out, p, n);
}

static void clean_pass(const char *str, size_t n, int tidy, dsk_buf *out, dsk_normalize_counts *c)
{
    const uint8_t *s = (const uint8_t *)str;
    ws_state w = {.tidy = tidy, .at_line_start = 1};
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i];
        if (b >= 0x21 && b < 0x7F) {  /* run of visible ASCII */
            size_t j = i + 1;
            while (j < n && s[j] >= 0x21 && s[j] < 0x7F)
                j++;
            emit_bytes(&w, out, str + i, j - i);
            i = j;
            continue;
        }
        if (b == ' ' || b == '\t') {
            emit_space(&w, out, (char)b);
            i++;
            continue;
        }
        if (b == '\n' || b == '\r') {
            emit_newline(&w, out);
            i += (b == '\r' && i + 1 < n && s[i + 1] == '\n') ? 2 : 1;
            continue;
        }
        if (b == 0x1B) {
            i += escape_len(s + i, n - i);
            c->escapes_removed++;
            continue;
        }
        if (b < 0x80) {  /* other C0 controls and DEL; form feed and VT break lines */
            if (b == '\f' || b == '\v')
                emit_newline(&w, out);
            c->controls_removed++;
            i++;
            continue;
        }
        size_t len;
        uint32_t cp = dsk_utf8_decode(s + i, &len);
        if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) {  /* NEL, line and paragraph separators */
            emit_newline(&w, out);
        } else if ((cp >= 0x80 && cp <= 0x9F) || cp == 0xFEFF) {
            c->controls_removed++;
        } else if (tidy && is_exotic_space(cp)) {
            emit_space(&w, out, ' ');
        } else {
            emit_bytes(&w, out, str + i, len);
        }
        i += len;
    }
    dsk_buf_free(&w.indent);
    if (out->data)
        out->data[out->len] = '\0';
}

void dsk_normalize_text(const char *s, size_t n, const dsk_normalize_opts *o, dsk_buf *out,
                        dsk_buf *scratch, dsk_normalize_counts *counts)
{
    dsk_buf_clear(out);
    dsk_buf_reserve(out, n);
    if (o->form == DSK_NORM_NONE || !has_non_ascii(s, n)) {
        clean_pass(s, n, o->tidy_whitespace, out, counts);
        return;
    }
    /* remove controls first so utf8proc never sees them, then normalize */
    dsk_buf_clear(scratch);
    dsk_buf_reserve(scratch, n);
    clean_pass(s, n, 0, scratch, counts);
    utf8proc_uint8_t *norm = NULL;
    int flags = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (o->form == DSK_NORM_NFKC ? UTF8PROC_COMPAT : 0);
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)scratch->data, (utf8proc_ssize_t)scratch->len,
                                      &norm, (utf8proc_option_t)flags);
    if (m < 0)  /* cannot happen on valid UTF-8 except for allocation failure */
        dsk_die(EX_SOFTWARE, "utf8proc: %s", utf8proc_errmsg(m));
    dsk_normalize_counts ignore = {0};
    clean_pass((const char *)norm, (size_t)m, o->tidy_whitespace, out, &ignore);
    free(norm);
}
