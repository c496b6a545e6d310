/* libFuzzer target: the plain-text record splitter in every mode.  The
 * first byte picks the mode; the rest is the input. */
#include <string.h>

#include "core/reader.h"
#include "text/records.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    static const char *const modes[] = {"lines", "paragraphs", "nul", "regex:^%$", "regex:^-{3,}\\s*$", "jsonl"};
    if (size < 1)
        return 0;
    dsk_records_spec spec;
    dsk_err err;
    if (dsk_records_spec_parse(&spec, modes[data[0] % 6], &err))
        return 0;
    dsk_reader r;
    dsk_reader_open_mem(&r, "fuzz", data + 1, size - 1, 1 + data[0] * 16u, &err);
    dsk_records rs;
    dsk_records_init(&rs, &spec, &r);
    const char *text;
    size_t len, total = 0;
    uint64_t line;
    while (dsk_records_next(&rs, &text, &len, &line, &err) == 1) {
        if (len > r.max_record && spec.mode != DSK_REC_PARAGRAPHS && spec.mode != DSK_REC_REGEX)
            __builtin_trap();  /* the limit must hold */
        total += len;
    }
    (void)total;
    dsk_records_free(&rs);
    dsk_reader_close(&r);
    dsk_records_spec_free(&spec);
    return 0;
}
