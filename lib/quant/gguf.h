/* GGUF, the file format of llama.cpp: a writer, a validating reader, and
 * the export of a dsk checkpoint (dsk_gguf_export, in gguf_export.c).
 *
 * Layout (version 3, little-endian throughout):
 *   "GGUF"  u32 version  u64 n_tensors  u64 n_kv
 *   n_kv times:       string key, u32 value type, value
 *   n_tensors times:  string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
 *                     u64 offset (from the start of the data section)
 *   zero padding to the alignment, then the data section: each tensor at
 *   its offset, a multiple of the alignment, padded with zeros after it.
 * A string is a u64 byte count and that many bytes of UTF-8, no NUL.  A
 * value is one of the scalar types below, a string, or an array: u32
 * element type, u64 count, the elements.  ne[0] is the innermost (row)
 * dimension, so a row-major [rows][cols] matrix has ne = {cols, rows}.
 * The alignment is general.alignment (a u32 power of two) if present,
 * else 32. */
#ifndef DSK_QUANT_GGUF_H
#define DSK_QUANT_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "quant/ggml_quant.h"

#define DSK_GGUF_MAGIC "GGUF"
#define DSK_GGUF_VERSION 3
#define DSK_GGUF_DEFAULT_ALIGNMENT 32
#define DSK_GGUF_MAX_DIMS 4
#define DSK_GGUF_MAX_NAME 63        /* tensor name bytes: llama.cpp's GGML_MAX_NAME less the NUL */

/* Value types. */
enum dsk_gguf_vtype {
    DSK_GGUF_UINT8 = 0, DSK_GGUF_INT8 = 1, DSK_GGUF_UINT16 = 2, DSK_GGUF_INT16 = 3,
    DSK_GGUF_UINT32 = 4, DSK_GGUF_INT32 = 5, DSK_GGUF_FLOAT32 = 6, DSK_GGUF_BOOL = 7,
    DSK_GGUF_STRING = 8, DSK_GGUF_ARRAY = 9, DSK_GGUF_UINT64 = 10, DSK_GGUF_INT64 = 11,
    DSK_GGUF_FLOAT64 = 12,
};
#define DSK_GGUF_N_VTYPES 13

/* llama.cpp's general.file_type values for the types dsk writes. */
enum {
    DSK_GGUF_FTYPE_ALL_F32 = 0, DSK_GGUF_FTYPE_MOSTLY_F16 = 1, DSK_GGUF_FTYPE_MOSTLY_Q4_0 = 2,
    DSK_GGUF_FTYPE_MOSTLY_Q8_0 = 7, DSK_GGUF_FTYPE_MOSTLY_Q4_K_S = 14,
};

/* ---- reading -------------------------------------------------------------------------------- */

/* A string inside the parsed buffer: not NUL-terminated. */
typedef struct dsk_gguf_str {
    const char *p;
    uint64_t n;
} dsk_gguf_str;

typedef struct dsk_gguf_kv {
    char *key;                  /* NUL-terminated copy */
    int type;                   /* enum dsk_gguf_vtype */
    /* Scalars: unsigned types and BOOL in u, signed in i, floats in f. */
    uint64_t u;
    int64_t i;
    double f;
    dsk_gguf_str str;           /* STRING */
    int arr_type;               /* ARRAY: element type (never ARRAY: nested arrays are refused) */
    uint64_t arr_n;
    const uint8_t *arr_data;    /* ARRAY of scalars: the packed little-endian elements in the buffer */
    dsk_gguf_str *arr_str;      /* ARRAY of STRING: arr_n strings */
} dsk_gguf_kv;

typedef struct dsk_gguf_tensor {
    char *name;                 /* NUL-terminated copy */
    int n_dims;
    uint64_t ne[DSK_GGUF_MAX_DIMS];   /* unused dimensions are 1 */
    int type;                   /* enum dsk_gguf_type */
    uint64_t offset;            /* within the data section */
    uint64_t n_elems, nbytes;
    const uint8_t *data;        /* in the buffer, nbytes long */
} dsk_gguf_tensor;

typedef struct dsk_gguf_file {
    uint32_t version;
    uint32_t alignment;
    dsk_gguf_kv *kv;
    size_t n_kv;
    dsk_gguf_tensor *tensors;
    size_t n_tensors;
    uint64_t data_offset;       /* of the data section, from the start of the file */
} dsk_gguf_file;

/* Parses data[0..len) (which must outlive out).  Versions 2 and 3 are read
 * (they differ from each other in nothing dsk uses).  Everything is checked
 * against the buffer before it is used: counts, string and array lengths,
 * value types, BOOL values (0 or 1), key and tensor-name uniqueness, names
 * (non-empty, no NUL, at most DSK_GGUF_MAX_NAME bytes), dimensions (1..4,
 * each >= 1, element count without overflow, a whole number of blocks per
 * row), tensor types (the five of ggml_quant.h), general.alignment (a u32
 * power of two), offsets (aligned, inside the data section, no overlap).
 * Anything else is EX_DATAERR with a message starting "gguf: " that says
 * what is wrong and, for a bad field, at which byte offset; out holds
 * nothing then (dsk_gguf_free is harmless). */
int dsk_gguf_read(const void *data, size_t len, dsk_gguf_file *out, dsk_err *err);
void dsk_gguf_free(dsk_gguf_file *f);

/* NULL when absent. */
const dsk_gguf_kv *dsk_gguf_find_kv(const dsk_gguf_file *f, const char *key);
const dsk_gguf_tensor *dsk_gguf_find_tensor(const dsk_gguf_file *f, const char *name);
/* Integer scalars of any width and sign (a negative one fails), -1 if the
 * key is absent or of another type. */
int dsk_gguf_get_u64(const dsk_gguf_file *f, const char *key, uint64_t *v);
/* FLOAT32 or FLOAT64. */
int dsk_gguf_get_f64(const dsk_gguf_file *f, const char *key, double *v);
/* STRING; *s points into the buffer. */
int dsk_gguf_get_str(const dsk_gguf_file *f, const char *key, dsk_gguf_str *s);
/* 1 when s holds exactly the NUL-terminated text. */
int dsk_gguf_str_is(dsk_gguf_str s, const char *text);
/* Element i (< arr_n) of an array of integers, as int64 (UINT64 above
 * INT64_MAX wraps), or of floats, as double. */
int64_t dsk_gguf_arr_int(const dsk_gguf_kv *kv, uint64_t i);
double dsk_gguf_arr_float(const dsk_gguf_kv *kv, uint64_t i);
/* Bytes of one value of a scalar type; 0 for STRING, ARRAY and unknown. */
size_t dsk_gguf_vtype_size(int type);

/* The tensor's values as floats: out holds t->n_elems. */
int dsk_gguf_dequantize(const dsk_gguf_tensor *t, float *out, dsk_err *err);

/* ---- writing -------------------------------------------------------------------------------- */

/* Metadata first (in the order added), then tensors declared with their
 * shapes, then begin() writes everything up to the data section and each
 * data() call writes the next declared tensor's bytes; finish() commits the
 * file (dsk_outfile: a temporary renamed into place, nothing left behind
 * on error or when the writer is freed unfinished).  Keys and names are
 * copied; a repeated key or tensor name is an error at begin(). */
typedef struct dsk_gguf_writer dsk_gguf_writer;

dsk_gguf_writer *dsk_gguf_writer_new(void);
void dsk_gguf_writer_free(dsk_gguf_writer *w);

void dsk_gguf_add_u32(dsk_gguf_writer *w, const char *key, uint32_t v);
void dsk_gguf_add_i32(dsk_gguf_writer *w, const char *key, int32_t v);
void dsk_gguf_add_u64(dsk_gguf_writer *w, const char *key, uint64_t v);
void dsk_gguf_add_f32(dsk_gguf_writer *w, const char *key, float v);
void dsk_gguf_add_bool(dsk_gguf_writer *w, const char *key, int v);
void dsk_gguf_add_str(dsk_gguf_writer *w, const char *key, const char *v);
/* An array of n strings, string i being strs[i] (lens[i] bytes). */
void dsk_gguf_add_str_array(dsk_gguf_writer *w, const char *key, const char *const *strs, const size_t *lens,
                            size_t n);
void dsk_gguf_add_i32_array(dsk_gguf_writer *w, const char *key, const int32_t *v, size_t n);
/* Any array of scalars: n elements of elem_type, packed little-endian in v. */
void dsk_gguf_add_array(dsk_gguf_writer *w, const char *key, int elem_type, const void *v, size_t n);

/* Declares the next tensor: ne[0] innermost.  Bad shapes, types or names
 * are reported by begin(). */
void dsk_gguf_add_tensor(dsk_gguf_writer *w, const char *name, int type, int n_dims, const uint64_t *ne);
int dsk_gguf_writer_begin(dsk_gguf_writer *w, const char *path, dsk_err *err);
/* nbytes must be the declared tensor's size exactly. */
int dsk_gguf_writer_data(dsk_gguf_writer *w, const void *data, size_t nbytes, dsk_err *err);
int dsk_gguf_writer_finish(dsk_gguf_writer *w, dsk_err *err);

/* ---- export --------------------------------------------------------------------------------- */

/* Writes an all-global dsk checkpoint (a directory with config.json,
 * model.safetensors and tokenizer.json, or one whose `latest` is such) as
 * a GGUF file that llama.cpp runs as general.architecture "llama" (dense)
 * or "deepseek" (a softmax-routed mixture of experts with shared ones,
 * its experts stacked into 3-D ffn_*_exps tensors):
 * hyperparameters, the byte-level BPE tokenizer ("gpt2" model, with the
 * llama.cpp pre-tokenizer whose regex is the checkpoint's), and the
 * weights with q_proj and k_proj rows permuted from Hugging Face's
 * rotate-half RoPE order to llama.cpp's interleaved one.
 *
 * type (enum dsk_gguf_type) applies to the weight matrices; norms and the
 * MoE router stay f32.
 * A weight whose rows are not a whole number of the type's blocks falls
 * back as llama.cpp's quantizer does, to the nearest format dsk has:
 * q4_K -> q8_0 -> f16 (q4_0 and q8_0 -> f16).
 *
 * Refused: any layer whose attention is not global (dsk_attention_pattern
 * with L or H), and mixtures of experts llama.cpp's deepseek computes
 * otherwise (a sigmoid router, a balancing bias, no shared experts) —
 * EX_DATAERR naming the reason; a tokenizer whose regex
 * llama.cpp does not have (EX_DATAERR); a type outside the five
 * (EX_USAGE).  The output appears whole or not at all. */
int dsk_gguf_export(const char *ckpt_dir, const char *out_path, int type, dsk_err *err);

/* Helpers of the export, public for tests. */

/* llama.cpp's tokenizer.ggml.pre for a pre-tokenizer regex; NULL if none. */
const char *dsk_gguf_pre_tokenizer_name(const char *pattern);
/* Reorders the rows of a [n_heads * head_dim][cols] projection from
 * rotate-half order (pair i of a head is rows i and i + head_dim/2) to
 * interleaved order (rows 2i and 2i+1): out row h*hd + 2i + s is in row
 * h*hd + s*hd/2 + i.  out and in must not overlap. */
void dsk_gguf_permute_rope(float *out, const float *in, int n_heads, int head_dim, size_t cols);
/* The type a 2-D weight with rows of row_len values gets when type is
 * requested (the fallback above). */
int dsk_gguf_weight_type(int type, uint64_t row_len);

#endif
