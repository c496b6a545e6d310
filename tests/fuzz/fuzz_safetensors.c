/* libFuzzer target: the safetensors parser on arbitrary bytes.  A file that
 * parses must hold tensors that lie inside the buffer, cover its data
 * section in order, match their shapes, and be found by name. */
#include <stdint.h>
#include <string.h>

#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dsk_safetensors st;
    dsk_err err;
    if (dsk_st_parse(&st, data, size, "fuzz", &err) != 0) {
        if (err.code != EX_DATAERR || strncmp(err.msg, "fuzz: ", 6) != 0)
            __builtin_trap();
        return 0;
    }
    const unsigned char *end = data + size, *prev_end = NULL;
    unsigned sum = 0;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const dsk_st_tensor *t = &st.tensors[i];
        const unsigned char *p = t->data;
        uint64_t n = 1;
        for (int d = 0; d < t->ndim; d++)
            n *= (uint64_t)t->shape[d];
        if (t->ndim < 0 || t->ndim > DSK_ST_MAX_DIMS || n != t->n_elems ||
            t->nbytes != t->n_elems * dsk_st_dtype_size(t->dtype) || p < data + 8 || t->nbytes > (uint64_t)(end - p) ||
            (prev_end && p != prev_end))
            __builtin_trap();
        for (uint64_t k = 0; k < t->nbytes; k++)  /* touch every byte */
            sum += p[k];
        prev_end = p + t->nbytes;
        if (dsk_st_find(&st, t->name) != t || strcmp(dsk_st_dtype_name(t->dtype), "?") == 0)
            __builtin_trap();
    }
    if (prev_end && prev_end != end)
        __builtin_trap();
    for (size_t i = 0; i < st.n_meta; i++)
        if (dsk_st_meta(&st, st.meta_keys[i]) != st.meta_values[i])
            __builtin_trap();
    dsk_st_close(&st);
    return (int)(sum & 0);
}
