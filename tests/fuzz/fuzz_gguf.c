/* libFuzzer target: the GGUF reader and the decoders on arbitrary bytes.
 * A file that parses must hold keys and tensors that lie inside the
 * buffer, are found by name, and decode; one that does not must fail with
 * EX_DATAERR and a "gguf: " message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant/gguf.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static volatile double sink;

static void inside(const void *p, uint64_t n, const unsigned char *data, size_t size)
{
    const unsigned char *b = p;
    if (n && (b < data || b > data + size || n > (uint64_t)(data + size - b)))
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    dsk_gguf_file f;
    dsk_err err;
    if (dsk_gguf_read(data, size, &f, &err) != 0) {
        if (err.code != EX_DATAERR || strncmp(err.msg, "gguf: ", 6) != 0)
            __builtin_trap();
        return 0;
    }
    double sum = 0;
    for (size_t i = 0; i < f.n_kv; i++) {
        const dsk_gguf_kv *kv = &f.kv[i];
        if (dsk_gguf_find_kv(&f, kv->key) != kv)
            __builtin_trap();
        if (kv->type == DSK_GGUF_STRING)
            inside(kv->str.p, kv->str.n, data, size);
        if (kv->type != DSK_GGUF_ARRAY)
            continue;
        if (kv->arr_type == DSK_GGUF_STRING)
            for (uint64_t j = 0; j < kv->arr_n; j++)
                inside(kv->arr_str[j].p, kv->arr_str[j].n, data, size);
        else {
            inside(kv->arr_data, kv->arr_n * dsk_gguf_vtype_size(kv->arr_type), data, size);
            for (uint64_t j = 0; j < kv->arr_n; j++)
                sum += kv->arr_type == DSK_GGUF_FLOAT32 || kv->arr_type == DSK_GGUF_FLOAT64
                           ? dsk_gguf_arr_float(kv, j) : (double)dsk_gguf_arr_int(kv, j);
        }
    }
    for (size_t i = 0; i < f.n_tensors; i++) {
        const dsk_gguf_tensor *t = &f.tensors[i];
        uint64_t nb;
        if (dsk_gguf_find_tensor(&f, t->name) != t || dsk_ggml_nbytes(t->type, t->n_elems, &nb) || nb != t->nbytes ||
            t->offset % f.alignment || t->data != data + f.data_offset + t->offset)
            __builtin_trap();
        inside(t->data, t->nbytes, data, size);
        float *out = malloc(t->n_elems * sizeof *out);
        if (dsk_gguf_dequantize(t, out, &err) != 0)
            __builtin_trap();
        for (uint64_t j = 0; j < t->n_elems; j++)
            sum += out[j];
        free(out);
    }
    dsk_gguf_free(&f);
    sink = sum;   /* keep the reads: the values themselves may be anything, NaN included */
    return 0;
}
