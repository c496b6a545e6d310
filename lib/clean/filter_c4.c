/* C4's rules (Raffel et al. 2020) as datatrove's C4QualityFilter applies
 * them: a line filter (lines without enough words, with a word over
 * max_word_length characters, mentioning javascript or a cookie/terms
 * policy, optionally without terminal punctuation, are removed; wiki
 * citation marks are stripped) and a document filter ("lorem ipsum", a
 * curly bracket, or fewer than min_sentences sentences drop it).  Words
 * are counted as in words.h, so CJK lines have words too. */
#include <stdint.h>
#include <string.h>

#include "clean/filters.h"

enum { FOUND_LOREM = 1, FOUND_JAVASCRIPT = 2, FOUND_POLICY = 4 };

static int starts_with_ci(const char *s, size_t n, const char *lower)
{
    size_t i = 0;
    for (; lower[i]; i++) {
        if (i == n)
            return 0;
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return 0;
    }
    return 1;
}

/* Bytes where something can start: a phrase's first letter (either case),
 * sentence punctuation, a curly bracket, or the lead byte of a CJK stop. */
static const uint8_t interesting[256] = {
    ['l'] = 1, ['L'] = 1, ['j'] = 1, ['J'] = 1, ['t'] = 1, ['T'] = 1, ['p'] = 1, ['P'] = 1,
    ['c'] = 1, ['C'] = 1, ['u'] = 1, ['U'] = 1, ['.'] = 1, ['!'] = 1, ['?'] = 1, ['{'] = 1,
    [0xE3] = 1, [0xEF] = 1,
};

typedef struct line_scan {
    int found;         /* FOUND_* phrases */
    int curly;         /* the line has a '{' */
    size_t sentences;  /* at least 1 */
} line_scan;

/* One pass over a line for C4's phrases ("lorem ipsum", "javascript", the
 * cookie and terms-of-use phrases, case-insensitively), curly brackets, and
 * sentences: terminal marks followed by a space or the end (not a run such
 * as "..."), CJK full stops anywhere. */
static line_scan scan_line(const char *s, size_t n)
{
    static const char *const policy[] = {"terms of use", "privacy policy", "cookie policy", "uses cookies",
                                         "use of cookies", "use cookies"};
    line_scan r = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        while (i < n && !interesting[(uint8_t)s[i]])
            i++;
        if (i == n)
            break;
        const char *p = s + i;
        size_t left = n - i;
        switch ((uint8_t)s[i]) {
        case '.': case '!': case '?':
            if ((i + 1 == n || s[i + 1] == ' ') && i > 0 && s[i - 1] != s[i])
                r.sentences++;
            break;
        case '{': r.curly = 1; break;
        case 0xE3: case 0xEF:
            if (left >= 3 && (memcmp(p, "\xE3\x80\x82", 3) == 0 || memcmp(p, "\xEF\xBC\x81", 3) == 0 ||
                              memcmp(p, "\xEF\xBC\x9F", 3) == 0))
                r.sentences++;
            break;
        case 'l': case 'L': if (starts_with_ci(p, left, "lorem ipsum")) r.found |= FOUND_LOREM; break;
        case 'j': case 'J': if (starts_with_ci(p, left, "javascript")) r.found |= FOUND_JAVASCRIPT; break;
        case 't': case 'T': if (starts_with_ci(p, left, policy[0])) r.found |= FOUND_POLICY; break;
        case 'p': case 'P': if (starts_with_ci(p, left, policy[1])) r.found |= FOUND_POLICY; break;
        case 'c': case 'C': if (starts_with_ci(p, left, policy[2])) r.found |= FOUND_POLICY; break;
        default: /* u, U */
            if (starts_with_ci(p, left, policy[3]) || starts_with_ci(p, left, policy[4]) ||
                starts_with_ci(p, left, policy[5]))
                r.found |= FOUND_POLICY;
            break;
        }
    }
    if (r.sentences == 0)
        r.sentences = 1;
    return r;
}

/* Appends line to out without "[12]", "[]", "[edit]" and "[citation needed]". */
static void strip_citations(const char *s, size_t n, dsk_buf *out)
{
    if (!memchr(s, '[', n)) {
        dsk_buf_add(out, s, n);
        return;
    }
    size_t i = 0;
    while (i < n) {
        if (s[i] == '[') {
            size_t j = i + 1;
            while (j < n && s[j] >= '0' && s[j] <= '9')
                j++;
            if (j < n && s[j] == ']') {
                i = j + 1;
                continue;
            }
            if (n - i >= 6 && memcmp(s + i, "[edit]", 6) == 0) {
                i += 6;
                continue;
            }
            if (n - i >= 17 && memcmp(s + i, "[citation needed]", 17) == 0) {
                i += 17;
                continue;
            }
        }
        dsk_buf_addc(out, s[i++]);
    }
}

const char *dsk_filter_c4(const dsk_text_view *v, const dsk_filter_params *p, dsk_filter_scratch *s,
                          dsk_buf *out, size_t *lines_removed, dsk_text_view *out_view, int *out_view_ok)
{
    dsk_buf_clear(out);
    *lines_removed = 0;
    int view_ok = out_view != NULL;
    if (out_view)
        dsk_text_view_begin(out_view, v->n_words);
    size_t sentences = 0, w = 0;
    for (size_t li = 0; li < v->n_lines; li++) {
        const dsk_span *l = &v->lines[li];
        /* the words of this line, and the line without surrounding blanks */
        size_t first_word = w, longest = 0;
        while (w < v->n_words && v->words[w].off < l->off + l->len) {
            if (v->words[w].nchars > longest)
                longest = v->words[w].nchars;
            w++;
        }
        size_t n_words = w - first_word;
        if (n_words == 0) {  /* blank lines carry nothing; they are not counted as removed */
            continue;
        }
        const dsk_word *fw = &v->words[first_word], *lw = &v->words[w - 1];
        const char *line = v->text + fw->off;
        size_t len = lw->off + lw->len - fw->off;

        if (p->c4_max_word_len && (double)longest > p->c4_max_word_len) {
            ++*lines_removed;
            continue;
        }
        size_t mark = out->len;
        if (p->c4_remove_citations)
            strip_citations(line, len, out);
        else
            dsk_buf_add(out, line, len);
        const char *kept = out->data + mark;
        size_t kept_len = out->len - mark;
        int drop_line = 0;
        if (p->c4_terminal_punct && (!dsk_ends_with_terminal_punct(kept, kept_len) ||
                                     (kept_len >= 3 && memcmp(kept + kept_len - 3, "...", 3) == 0)))
            drop_line = 1;
        else if ((double)n_words < p->c4_min_words_per_line)
            drop_line = 1;
        line_scan scan = {0, 0, 0};
        if (!drop_line) {
            scan = scan_line(kept, kept_len);
            if (p->c4_lorem_ipsum && (scan.found & FOUND_LOREM))
                return "c4.lorem_ipsum";
            if (p->c4_javascript && (scan.found & FOUND_JAVASCRIPT))
                drop_line = 1;
            else if (p->c4_curly_bracket && scan.curly)
                return "c4.curly_bracket";
            else if (p->c4_policy && (scan.found & FOUND_POLICY))
                drop_line = 1;
        }
        if (drop_line) {
            out->len = mark;
            out->data[mark] = '\0';
            ++*lines_removed;
            continue;
        }
        sentences += scan.sentences;
        if (view_ok && kept_len == len)
            dsk_text_view_add_line(out_view, v, first_word, w, mark);
        else
            view_ok = 0;  /* a citation was cut: word offsets moved */
        dsk_buf_addc(out, '\n');
    }
    if ((double)sentences < p->c4_min_sentences)
        return "c4.min_sentences";
    if (out->len && out->data[out->len - 1] == '\n')
        out->data[--out->len] = '\0';
    if (out->len == 0)
        return "c4.empty";
    if (view_ok)
        dsk_text_view_finish(out_view, out->data, out->len);
    if (out_view_ok)
        *out_view_ok = view_ok;
    return NULL;
}
