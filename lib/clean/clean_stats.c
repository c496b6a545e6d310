#include "clean/clean_stats.h"

#include "core/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

dsk_clean_stats *clean_stats_new(const dsk_clean_config *c)
{
    dsk_clean_stats *s = dsk_xcalloc(1, sizeof *s);
    s->threads = c->threads;
    return s;
}

void dsk_clean_stats_free(dsk_clean_stats *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_dropped; i++)
        free(s->dropped[i].name);
    free(s->dropped);
    free(s);
}

static void count_drop(dsk_clean_stats *s, const char *rule)
{
    for (size_t i = 0; i < s->n_dropped; i++)
        if (strcmp(s->dropped[i].name, rule) == 0) {
            s->dropped[i].count++;
            return;
        }
    if (s->n_dropped == s->cap_dropped) {
        s->cap_dropped = s->cap_dropped ? s->cap_dropped * 2 : 16;
        s->dropped = dsk_xrealloc(s->dropped, s->cap_dropped * sizeof *s->dropped);
    }
    s->dropped[s->n_dropped++] = (rule_count){dsk_xstrdup(rule), 1};
}

void clean_stats_count(dsk_clean_stats *s, const doc_slot *d, size_t raw_len, const char *late_rule)
{
    s->docs_in++;
    s->bytes_in += raw_len;
    s->utf8_repaired += d->utf8_repaired;
    s->escapes_removed += d->escapes;
    s->controls_removed += d->controls;
    s->c4_lines_removed += d->c4_lines;
    s->replacements += d->replacements;
    if (d->status == DOC_FAIL) {
        s->malformed++;
        count_drop(s, "malformed");
        return;
    }
    s->by_kind[d->kind]++;
    if (d->status == DOC_DROP) {
        count_drop(s, late_rule ? late_rule : d->rule);
        return;
    }
    s->docs_out++;
    s->bytes_out += d->text_bytes;
    s->by_split[d->split]++;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const rule_count *)a)->name, ((const rule_count *)b)->name);
}

static struct json_object *u64(uint64_t v) { return json_object_new_uint64(v); }

int dsk_clean_stats_write_json(const dsk_clean_stats *s, FILE *f)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "docs_in", u64(s->docs_in));
    json_object_object_add(o, "docs_out", u64(s->docs_out));
    json_object_object_add(o, "docs_dropped", u64(s->docs_in - s->docs_out));
    json_object_object_add(o, "bytes_in", u64(s->bytes_in));
    json_object_object_add(o, "bytes_out", u64(s->bytes_out));
    rule_count *sorted = dsk_xcalloc(s->n_dropped + 1, sizeof *sorted);
    if (s->n_dropped) {
        memcpy(sorted, s->dropped, s->n_dropped * sizeof *sorted);
        qsort(sorted, s->n_dropped, sizeof *sorted, by_name);
    }
    struct json_object *dropped = json_object_new_object();
    for (size_t i = 0; i < s->n_dropped; i++)
        json_object_object_add(dropped, sorted[i].name, u64(sorted[i].count));
    free(sorted);
    json_object_object_add(o, "dropped", dropped);
    struct json_object *kinds = json_object_new_object();
    json_object_object_add(kinds, "plain", u64(s->by_kind[0]));
    json_object_object_add(kinds, "chat", u64(s->by_kind[1]));
    json_object_object_add(kinds, "preference", u64(s->by_kind[2]));
    json_object_object_add(o, "kinds", kinds);
    struct json_object *splits = json_object_new_object();
    for (int i = 0; i < 3; i++)
        json_object_object_add(splits, dsk_split_names[i], u64(s->by_split[i]));
    json_object_object_add(o, "splits", splits);
    struct json_object *fixes = json_object_new_object();
    json_object_object_add(fixes, "utf8_repaired_docs", u64(s->utf8_repaired));
    json_object_object_add(fixes, "escape_sequences_removed", u64(s->escapes_removed));
    json_object_object_add(fixes, "control_chars_removed", u64(s->controls_removed));
    json_object_object_add(fixes, "c4_lines_removed", u64(s->c4_lines_removed));
    json_object_object_add(fixes, "regex_replacements", u64(s->replacements));
    json_object_object_add(o, "modified", fixes);
    json_object_object_add(o, "malformed_skipped", u64(s->malformed));
    json_object_object_add(o, "dedup_memory_bytes", u64(s->dedup_memory_bytes));
    const char *text =
        json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
    int rc = fprintf(f, "%s\n", text) < 0 ? -1 : 0;
    json_object_put(o);
    return rc;
}

void dsk_clean_stats_print_summary(const dsk_clean_stats *s, FILE *f)
{
    double mb = (double)s->bytes_in / 1e6;
    fprintf(f, "dsk-clean: %llu docs in, %llu out (%.1f%%), %.1f MB in %.2f s (%.1f MB/s, %d thread%s)\n",
            (unsigned long long)s->docs_in, (unsigned long long)s->docs_out,
            s->docs_in ? 100.0 * (double)s->docs_out / (double)s->docs_in : 0.0, mb, s->seconds,
            s->seconds > 0 ? mb / s->seconds : 0.0, s->threads, s->threads == 1 ? "" : "s");
    if (s->n_dropped) {
        rule_count *sorted = dsk_xcalloc(s->n_dropped, sizeof *sorted);
        memcpy(sorted, s->dropped, s->n_dropped * sizeof *sorted);
        qsort(sorted, s->n_dropped, sizeof *sorted, by_name);
        fprintf(f, "  dropped:");
        for (size_t i = 0; i < s->n_dropped; i++)
            fprintf(f, "%s %s %llu", i ? "," : "", sorted[i].name, (unsigned long long)sorted[i].count);
        fputc('\n', f);
        free(sorted);
    }
    if (s->utf8_repaired || s->escapes_removed || s->controls_removed || s->c4_lines_removed || s->replacements)
        fprintf(f, "  modified: %llu docs with invalid UTF-8, %llu escape sequences, %llu control chars, "
                   "%llu C4 lines, %llu regex replacements\n",
                (unsigned long long)s->utf8_repaired, (unsigned long long)s->escapes_removed,
                (unsigned long long)s->controls_removed, (unsigned long long)s->c4_lines_removed,
                (unsigned long long)s->replacements);
    if (s->dedup_memory_bytes)
        fprintf(f, "  dedup index: %.1f MiB in memory\n", (double)s->dedup_memory_bytes / 1048576.0);
}
