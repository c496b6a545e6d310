#include <zstd.h>

#include "core/reader.h"
#include "test.h"
#include <unistd.h>
#include "text/records.h"

/* Splits data with the given --records spec into "rec|rec|..." with line
 * numbers, records of at most max bytes, then "ERROR message" if one failed. */
static char *split_max(const char *spec_arg, const char *data, size_t n, size_t max)
{
    dsk_records_spec spec;
    dsk_err err = {0};
    if (dsk_records_spec_parse(&spec, spec_arg, &err))
        return strdup(err.msg);
    dsk_reader r;
    dsk_reader_open_mem(&r, "mem", data, n, max, &err);
    dsk_records rs;
    dsk_records_init(&rs, &spec, &r);
    dsk_buf out = {0};
    const char *t;
    size_t len;
    uint64_t line;
    int rc;
    while ((rc = dsk_records_next(&rs, &t, &len, &line, &err)) == 1) {
        dsk_buf_printf(&out, "%llu:", (unsigned long long)line);
        dsk_buf_add(&out, t, len);
        dsk_buf_addc(&out, '|');
    }
    if (rc)
        dsk_buf_printf(&out, "ERROR %s", err.msg);
    dsk_records_free(&rs);
    dsk_reader_close(&r);
    dsk_records_spec_free(&spec);
    return out.data ? out.data : strdup("");
}

static char *split(const char *spec_arg, const char *data, size_t n) { return split_max(spec_arg, data, n, 1 << 20); }

#define CHECK_SPLIT(spec, data, want)                         \
    do {                                                      \
        char *got_ = split(spec, data, sizeof(data) - 1);     \
        CHECK_STR(got_, want);                                \
        free(got_);                                           \
    } while (0)

TEST(lines_and_nul)
{
    CHECK_SPLIT("lines", "one\ntwo\n\n  \nthree", "1:one|2:two|5:three|");
    /* A NUL-terminated record is numbered by the line it starts on; one of
     * blank lines is a separator. */
    CHECK_SPLIT("nul", "a b\0c\0\0d", "1:a b|1:c|1:d|");
    CHECK_SPLIT("nul", "a\nb\n\0 \n\t\n\0c\0\nd\0", "1:a\nb\n|5:c|5:\nd|");
    CHECK_SPLIT("jsonl", "{}\n\n{\"a\":1}\n", "1:{}|3:{\"a\":1}|");
}

TEST(paragraphs)
{
    CHECK_SPLIT("paragraphs", "\n\np1 line1\np1 line2\n\n \n\np2\n", "3:p1 line1\np1 line2|8:p2|");
    CHECK_SPLIT("paragraphs", "", "");
}

TEST(regex_separators)
{
    CHECK_SPLIT("regex:^%$", "first\nfortune\n%\nsecond\n%\n%\n", "1:first\nfortune|4:second|");
    CHECK_SPLIT("regex:^%$", "crlf\r\n%\r\nnext\r\n", "1:crlf\r|3:next\r|");
    CHECK_SPLIT("regex:^---+$", "a\n----\nb\n--\nc", "1:a|3:b\n--\nc|");
}

TEST(bad_specs)
{
    char *s = split("regex:(", "x", 1);
    CHECK(strstr(s, "bad regex") != NULL);
    free(s);
    s = split("words", "x", 1);
    CHECK(strstr(s, "expected jsonl") != NULL);
    free(s);
}

TEST(record_limit)
{
    char *s = split_max("paragraphs", "aaaa\nbbbb\ncccc\n", 15, 8);
    CHECK_STR(s, "ERROR mem:1: record longer than the 8-byte limit");
    free(s);
    /* A NUL-terminated record is named by its number, not as FILE:LINE. */
    s = split_max("nul", "ok\0aaaaaaaaaaaa\0", 16, 8);
    CHECK_STR(s, "1:ok|ERROR mem: record 2 is longer than the 8-byte limit");
    free(s);
}

TEST(reader_handles_long_lines_and_zstd)
{
    /* a 3 MB line spans several buffer refills; then the same data zstd-compressed */
    size_t n = 3u << 20;
    char *data = malloc(n + 8);
    memset(data, 'x', n);
    memcpy(data + n, "\nshort\n", 7);
    char path[] = "/tmp/dsk-reader-XXXXXX";
    for (int compressed = 0; compressed < 2; compressed++) {
        int fd = mkstemp(path);
        FILE *f = fdopen(fd, "wb");
        if (compressed) {
            size_t cap = ZSTD_compressBound(n + 7);
            char *z = malloc(cap);
            size_t zn = ZSTD_compress(z, cap, data, n + 7, 3);
            fwrite(z, 1, zn, f);
            free(z);
        } else {
            fwrite(data, 1, n + 7, f);
        }
        fclose(f);
        dsk_reader r;
        dsk_err err = {0};
        CHECK(dsk_reader_open(&r, path, 8u << 20, &err) == 0);
        const char *rec;
        size_t len;
        CHECK(dsk_reader_next(&r, '\n', &rec, &len, &err) == 1);
        CHECK(len == n && rec[0] == 'x' && rec[n - 1] == 'x');
        CHECK(dsk_reader_next(&r, '\n', &rec, &len, &err) == 1);
        CHECK(len == 5 && memcmp(rec, "short", 5) == 0);
        CHECK(dsk_reader_next(&r, '\n', &rec, &len, &err) == 0);
        dsk_reader_close(&r);
        unlink(path);
        strcpy(path, "/tmp/dsk-reader-XXXXXX");
    }
    free(data);
}

TEST(missing_and_directory_inputs)
{
    dsk_reader r;
    dsk_err err = {0};
    CHECK(dsk_reader_open(&r, "/nonexistent/file", 100, &err) == EX_NOINPUT);
    CHECK(strstr(err.msg, "/nonexistent/file: cannot open") != NULL);
    CHECK(dsk_reader_open(&r, "/tmp", 100, &err) == EX_NOINPUT);
}

RUN_TESTS(T(lines_and_nul), T(paragraphs), T(regex_separators), T(bad_specs), T(record_limit),
          T(reader_handles_long_lines_and_zstd), T(missing_and_directory_inputs))
