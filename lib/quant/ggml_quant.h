/* The ggml tensor encodings a GGUF file can hold that dsk writes and reads:
 * f32, f16, and the block formats q8_0, q4_0 and q4_K.
 *
 * A block format cuts each row into blocks of a fixed number of values and
 * stores every block as scales followed by small integers.  All multi-byte
 * fields are little-endian; "half" is IEEE 754 binary16.
 *
 *   q8_0  32 values in 34 bytes: half d, int8 q[32];           y = d * q
 *   q4_0  32 values in 18 bytes: half d, uint8 qs[16];         y = d * (q - 8)
 *         byte j holds value j in its low nibble and value j+16 in its high one.
 *   q4_K  256 values in 144 bytes: half d, half dmin, uint8 scales[12],
 *         uint8 qs[128].  Eight sub-blocks of 32 values each have a 6-bit
 *         scale sc and a 6-bit min m:  y = d * sc * q - dmin * m, q in 0..15.
 *         scales[]: for sub-block j < 4, sc in the low 6 bits of byte j and
 *         m in the low 6 bits of byte j+4; for j >= 4, the low 4 bits of sc
 *         and of m in the low and high nibble of byte j+4, and their top 2
 *         bits in the top 2 bits of byte j-4 (sc) and byte j (m).
 *         qs[]: each 64 values (sub-blocks 2i and 2i+1) take 32 bytes, value
 *         l of sub-block 2i in the low nibble of byte 32i+l and value l of
 *         sub-block 2i+1 in its high nibble.
 *
 * The quantizers choose scales as llama.cpp's reference ones do in spirit
 * (q8_0 and q4_0: from the largest magnitude; q4_K: a per-sub-block
 * least-squares fit of scale and min over a small search, then 6-bit
 * quantization of those against the super-block's d and dmin), but they
 * are written from the format, so bytes may differ from llama.cpp's while
 * decoding the same way. */
#ifndef DSK_QUANT_GGML_QUANT_H
#define DSK_QUANT_GGML_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml's type numbers, as stored in a GGUF tensor info. */
enum dsk_gguf_type {
    DSK_GGUF_F32 = 0,
    DSK_GGUF_F16 = 1,
    DSK_GGUF_Q4_0 = 2,
    DSK_GGUF_Q8_0 = 8,
    DSK_GGUF_Q4_K = 12,
};

#define DSK_QK8_0 32
#define DSK_QK4_0 32
#define DSK_QK_K 256

/* Values per block (1 for f32 and f16); 0 for a type dsk does not know. */
size_t dsk_ggml_block_len(int type);
/* Bytes per block; 0 for an unknown type. */
size_t dsk_ggml_block_bytes(int type);
/* "f32", "f16", "q4_0", "q8_0", "q4_K"; NULL for an unknown type. */
const char *dsk_ggml_type_name(int type);
/* The type of a name above (case-insensitive); -1 if none. */
int dsk_ggml_type_from_name(const char *name);
/* Bytes of n values; -1 when the type is unknown or n is not a whole
 * number of blocks, or the size overflows. */
int dsk_ggml_nbytes(int type, uint64_t n, uint64_t *bytes);

/* IEEE binary16 conversions, round to nearest even; NaN stays NaN, values
 * past the largest half become infinity. */
uint16_t dsk_ggml_fp32_to_fp16(float f);
float dsk_ggml_fp16_to_fp32(uint16_t h);

/* Encode n values (a whole number of blocks of the type, finite) into out,
 * which holds n / block_len * block_bytes bytes. */
void dsk_ggml_quantize(int type, const float *x, void *out, size_t n);
/* The largest |x| the type holds without saturating: f16's 65504, and for
 * the block types the values whose half-precision scale stays finite
 * (q8_0 127 x 65504, q4_0 8 x, q4_K 63 x, through its minimums). */
double dsk_ggml_max_abs(int type);
/* Decode n values (a whole number of blocks). */
void dsk_ggml_dequantize(int type, const void *in, float *y, size_t n);

#endif
