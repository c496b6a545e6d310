/* libFuzzer target: a checkpoint's two JSON files on arbitrary bytes.
 * config.json: one that parses must write out, parse back and write out
 * the same text (the written form is the config: keys a model does not
 * use, the MoE ones of a dense model, are not written, so they are not
 * compared).  state.json: parses or fails cleanly, never crashes or leaks. */
#include <string.h>

#include "model/config.h"
#include "train/checkpoint.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dsk_model_config c, again;
    dsk_err err;
    if (dsk_config_parse(&c, (const char *)data, size, "fuzz", &err) == 0) {
        dsk_buf b = {0}, b2 = {0};
        dsk_config_write(&c, &b);
        if (dsk_config_parse(&again, b.data, b.len, "again", &err) != 0)
            __builtin_trap();
        dsk_config_write(&again, &b2);
        if (b.len != b2.len || memcmp(b.data, b2.data, b.len) != 0)
            __builtin_trap();
        dsk_buf_free(&b);
        dsk_buf_free(&b2);
    }
    dsk_train_state st;
    if (dsk_train_state_parse(&st, (const char *)data, size, "fuzz", &err) == 0)
        dsk_train_state_free(&st);
    return 0;
}
