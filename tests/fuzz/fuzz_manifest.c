/* libFuzzer target: the dataset MANIFEST parser on arbitrary bytes; a
 * manifest that parses must write out and parse back the same. */
#include <string.h>

#include "pack/manifest.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dsk_manifest m, again;
    dsk_err err;
    if (dsk_manifest_parse(&m, (const char *)data, size, "fuzz", &err) == 0) {
        dsk_buf b = {0};
        dsk_manifest_write(&m, &b);
        if (dsk_manifest_parse(&again, b.data, b.len, "again", &err) != 0 || again.n_shards != m.n_shards ||
            again.seq_len != m.seq_len || memcmp(again.rows, m.rows, sizeof m.rows) != 0)
            __builtin_trap();
        for (size_t i = 0; i < m.n_shards; i++)
            if (strcmp(m.shards[i].file, again.shards[i].file) != 0 || m.shards[i].first[0] != again.shards[i].first[0])
                __builtin_trap();
        dsk_manifest_free(&again);
        dsk_manifest_free(&m);
        dsk_buf_free(&b);
    }
    return 0;
}
