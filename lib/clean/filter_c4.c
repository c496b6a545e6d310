/* C4's rules (Raffel et al. 2020) as datatrove's C4QualityFilter applies
 * them: a line filter (lines without enough words, with a word over
 * max_word_length characters, mentioning javascript or a cookie/terms
 * policy, optionally without terminal punctuation, are removed; wiki
 * citation marks are stripped) and a document filter ("lorem ipsum", a
 * curly bracket, or fewer than min_sentences sentences drop it).  Words
 * are counted as in words.h, so CJK lines have words too. */
#include <string.h>

#include "clean/filters.h"

static const char *const policy_phrases[] = {"terms of use",  "privacy policy", "cookie policy",
                                             "uses cookies",  "use of cookies", "use cookies"};

static int contains(const char *s, size_t n, const char *pat)
{
    return memmem(s, n, pat, strlen(pat)) != NULL;
}

/* Appends line to out without "[12]", "[]", "[edit]" and "[citation needed]". */
static void strip_citations(const char *s, size_t n, dsk_buf *out)
{
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

/* Sentences in a line: terminal marks followed by a space or the end,
 * CJK full stops anywhere; a line without any is one sentence. */
static size_t count_sentences(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if ((c == '.' || c == '!' || c == '?') && (i + 1 == n || s[i + 1] == ' ') && i > 0 && s[i - 1] != c)
            count++;
        else if (n - i >= 3 && ((uint8_t)c == 0xE3 || (uint8_t)c == 0xEF) &&
                 (memcmp(s + i, "\xE3\x80\x82", 3) == 0 || memcmp(s + i, "\xEF\xBC\x81", 3) == 0 ||
                  memcmp(s + i, "\xEF\xBC\x9F", 3) == 0))
            count++;
    }
    return count ? count : 1;
}

static void lowercase_ascii(const char *s, size_t n, dsk_buf *out)
{
    dsk_buf_clear(out);
    dsk_buf_reserve(out, n);
    for (size_t i = 0; i < n; i++)
        out->data[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    out->len = n;
    out->data[n] = '\0';
}

const char *dsk_filter_c4(const dsk_text_view *v, const dsk_filter_params *p, dsk_filter_scratch *s,
                          dsk_buf *out, size_t *lines_removed)
{
    dsk_buf_clear(out);
    *lines_removed = 0;
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
        if (!drop_line) {
            lowercase_ascii(kept, kept_len, &s->line);
            if (p->c4_lorem_ipsum && contains(s->line.data, kept_len, "lorem ipsum"))
                return "c4.lorem_ipsum";
            if (p->c4_javascript && contains(s->line.data, kept_len, "javascript"))
                drop_line = 1;
            else if (p->c4_curly_bracket && memchr(kept, '{', kept_len))
                return "c4.curly_bracket";
            else if (p->c4_policy)
                for (size_t k = 0; k < sizeof policy_phrases / sizeof policy_phrases[0]; k++)
                    if (contains(s->line.data, kept_len, policy_phrases[k])) {
                        drop_line = 1;
                        break;
                    }
        }
        if (drop_line) {
            out->len = mark;
            out->data[mark] = '\0';
            ++*lines_removed;
            continue;
        }
        sentences += count_sentences(kept, kept_len);
        dsk_buf_addc(out, '\n');
    }
    if ((double)sentences < p->c4_min_sentences)
        return "c4.min_sentences";
    if (out->len && out->data[out->len - 1] == '\n')
        out->data[--out->len] = '\0';
    if (out->len == 0)
        return "c4.empty";
    return NULL;
}
