/* libFuzzer target: the whole dsk-clean document path on JSONL input
 * (reader, JSON parsing, UTF-8 repair, normalization, rules, every filter,
 * MinHash and dedup), with malformed lines skipped rather than fatal. */
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clean/clean.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static FILE *devnull;
    static dsk_clean_config c;
    static int init;
    if (!init) {
        devnull = fopen("/dev/null", "w");
        dsk_clean_config_default(&c);
        c.quiet = 1;
        c.skip_errors = 1;
        c.dedup = DSK_DEDUP_EXACT | DSK_DEDUP_MINHASH;
        c.max_record = 1 << 16;
        dsk_filter_params_set(&c.params, "gopher_quality.min_words=3", (char[64]){0}, 64);
        dsk_err err;
        dsk_rules_add(&c.rules, DSK_RULE_REPLACE, "<[^>]*>=", "fuzz", &err);
        init = 1;
    }
    int fd = memfd_create("fuzz", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        return 0;
    lseek(fd, 0, SEEK_SET);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    const char *inputs[] = {path, NULL};
    dsk_clean_stats *stats = NULL;
    dsk_err err = {0};
    c.threads = size % 2 ? 2 : 1;
    dsk_clean_run(&c, inputs, devnull, devnull, &stats, NULL, NULL, &err);
    dsk_clean_stats_free(stats);
    close(fd);
    return 0;
}
