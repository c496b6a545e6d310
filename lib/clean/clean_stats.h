/* dsk-clean's accounting: every document in is either out or dropped by a
 * named rule; the counts go to --stats as JSON and to stderr as a summary. */
#ifndef DSK_CLEAN_STATS_H
#define DSK_CLEAN_STATS_H

#include <stdint.h>

#include "clean/clean_internal.h"

typedef struct rule_count {
    char *name;
    uint64_t count;
} rule_count;

struct dsk_clean_stats {
    uint64_t docs_in, docs_out, bytes_in, bytes_out;
    uint64_t malformed, utf8_repaired, escapes_removed, controls_removed, c4_lines_removed, replacements;
    uint64_t by_kind[3], by_split[3];
    rule_count *dropped;
    size_t n_dropped, cap_dropped;
    uint64_t dedup_memory_bytes;
    double seconds;
    int threads;
};

dsk_clean_stats *clean_stats_new(const dsk_clean_config *c);
/* late_rule: set when the in-order stage dropped a kept document. */
void clean_stats_count(dsk_clean_stats *s, const doc_slot *d, size_t raw_len, const char *late_rule);

#endif
