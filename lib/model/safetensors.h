/* Hugging Face safetensors files: reading (memory-mapped, validated) and
 * writing (atomic, through dsk_outfile).
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON (one
 * object), then the data section.  The JSON maps each tensor name to
 * {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, offsets
 * relative to the start of the data section; an optional "__metadata__"
 * object maps strings to strings.  Tensor data is little-endian, row-major
 * and contiguous, and the tensors cover the data section exactly: no holes,
 * no overlaps, nothing after the last one.
 *
 * The parser checks all of that and refuses anything else with EX_DATAERR
 * and a message naming the file and the tensor: a header over 100 MiB, an
 * unknown dtype, missing or ill-typed fields, more than DSK_ST_MAX_DIMS
 * dimensions or negative ones, an element or byte count that overflows,
 * offsets past the data section or not matching the shape, duplicate
 * tensor names (json-c would keep only the last one; they are found by a
 * scan of the header text), names holding NUL, "__metadata__" values that
 * are not strings, a header that is not valid UTF-8 or does not start with
 * '{'.  Fields other than the three are ignored, as Hugging Face's reader
 * does.
 *
 * The writer pads the header with spaces so that the data section starts
 * at a multiple of 8 bytes, and lays the tensors out back to back in the
 * order they were added.  Since the format forbids holes, a tensor is only
 * as aligned as the sizes before it make it: after a 3-byte U8 tensor an
 * F32 tensor starts at an odd address.  `data` is therefore not promised
 * to be aligned to the dtype; callers that need it aligned check
 * ((uintptr_t)data % dsk_st_dtype_size(dtype)) and copy otherwise.
 *
 * Only little-endian hosts are supported (the data is used in place). */
#ifndef DSK_MODEL_SAFETENSORS_H
#define DSK_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum dsk_st_dtype { DSK_ST_F32, DSK_ST_F64, DSK_ST_F16, DSK_ST_BF16, DSK_ST_I64, DSK_ST_I32, DSK_ST_I16, DSK_ST_I8, DSK_ST_U8, DSK_ST_BOOL };
#define DSK_ST_N_DTYPES 10
#define DSK_ST_MAX_DIMS 8
/* The largest header accepted, as Hugging Face's reader. */
#define DSK_ST_MAX_HEADER (100u << 20)

typedef struct dsk_st_tensor {
    char *name;
    int dtype;                 /* enum dsk_st_dtype */
    int ndim;                  /* 0 for a scalar (shape []), which has 1 element */
    int64_t shape[DSK_ST_MAX_DIMS];
    uint64_t n_elems;
    const void *data;          /* points into the mapping / buffer; see the alignment note above */
    uint64_t nbytes;           /* n_elems * dsk_st_dtype_size(dtype) */
} dsk_st_tensor;

typedef struct dsk_safetensors {
    char *path;                /* for messages */
    void *map; size_t map_len; /* the mmap (NULL when parsed from memory) */
    dsk_st_tensor *tensors; size_t n_tensors;   /* in file order of data offsets */
    char **meta_keys, **meta_values; size_t n_meta;   /* in header order */
} dsk_safetensors;

/* Bytes per element (1 for BOOL and U8), 0 for a value outside the enum. */
size_t dsk_st_dtype_size(int dtype);
/* "F32", "BF16", ...; "?" for a value outside the enum. */
const char *dsk_st_dtype_name(int dtype);

/* mmap path read-only and parse it.  EX_NOINPUT if it cannot be opened or is
 * a directory, EX_IOERR if it cannot be mapped, EX_DATAERR if it is not a
 * valid safetensors file.  On failure st holds nothing (dsk_st_close on it
 * is harmless).  The file must not shrink while mapped (SIGBUS). */
int dsk_st_open(dsk_safetensors *st, const char *path, dsk_err *err);
/* Parse buf[0..len) in place (buf must outlive st); name is used in messages. */
int dsk_st_parse(dsk_safetensors *st, const void *buf, size_t len, const char *name, dsk_err *err);
/* The tensor named name, or NULL (a linear search). */
const dsk_st_tensor *dsk_st_find(const dsk_safetensors *st, const char *name);
const char *dsk_st_meta(const dsk_safetensors *st, const char *key);   /* NULL if absent */
/* Unmaps and frees; st is zeroed.  Safe on a zeroed or failed st. */
void dsk_st_close(dsk_safetensors *st);

typedef struct dsk_st_writer dsk_st_writer;   /* opaque */
dsk_st_writer *dsk_st_writer_new(void);
/* data is borrowed until dsk_st_writer_write returns; names must be unique (duplicate = error at write).
 * name is copied; shape holds ndim values (may be NULL when ndim is 0); data may be NULL for an
 * empty tensor.  A bad dtype, ndim, dimension or name ("__metadata__", invalid UTF-8) is also
 * reported at write, as EX_DATAERR naming the tensor. */
void dsk_st_writer_add(dsk_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape, const void *data);
/* Adds a metadata entry; a key given again replaces the earlier value. */
void dsk_st_writer_meta(dsk_st_writer *w, const char *key, const char *value);
/* Writes atomically (dsk_outfile: temp + fsync + rename). Tensors are laid out in the order added.
 * path NULL or "-" writes to stdout.  The header is compact JSON: "__metadata__" first (only if
 * there is metadata), then the tensors in order, each {"dtype","shape","data_offsets"}, then
 * spaces up to a multiple of 8 bytes. */
int dsk_st_writer_write(dsk_st_writer *w, const char *path, dsk_err *err);
void dsk_st_writer_free(dsk_st_writer *w);

#endif
