/* libFuzzer target: the dataset row decoder on arbitrary bytes; a row that
 * decodes must encode and decode back to the same row. */
#include <string.h>

#include "pack/row.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dsk_row row = {0}, again = {0};
    dsk_buf v = {0};
    dsk_row_codec c = {.level = 1};
    dsk_err err;
    if (dsk_row_decode(&c, data, size, 1u << 20, &row, &err) == 0) {
        unsigned width = size > 2 ? data[2] : 4;
        if (dsk_row_encode(&c, &row, width, &v, &err) != 0 ||
            dsk_row_decode(&c, v.data, v.len, 1u << 20, &again, &err) != 0 ||
            again.n_tokens != row.n_tokens ||
            (row.n_tokens && memcmp(again.tokens, row.tokens, row.n_tokens * sizeof *row.tokens)))
            __builtin_trap();
    }
    dsk_row_free(&row);
    dsk_row_free(&again);
    dsk_row_codec_free(&c);
    dsk_buf_free(&v);
    return 0;
}
