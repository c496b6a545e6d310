/* Quantized checkpoints on disk.
 *
 * A directory like a training checkpoint's: config.json with a
 * "quantization_config" (quant_method "gptq", bits 4, group_size, desc_act,
 * sym, checkpoint_format "gptq", and dsk_method rtn|gptq|awq),
 * model.safetensors with each quantized linear layer as NAME.qweight,
 * NAME.qzeros, NAME.scales, NAME.g_idx (lib/quant/int4.h) and every other
 * tensor in F32, tokenizer.json, and quant.json (the per-layer report). */
#ifndef DSK_QUANT_QUANT_IO_H
#define DSK_QUANT_QUANT_IO_H

#include "model/model.h"
#include "quant/int4.h"
#include "quant/quant.h"

/* Writes OUT whole or not at all (replace: an existing OUT is replaced). */
/* How a refusal of an existing -o directory says to replace it. */
#define DSK_QUANT_EXISTS_HINT "--force replaces an earlier dsk-quant output"

int dsk_quant_save(const char *src_dir, const char *out, int replace, const dsk_model *m, const dsk_quantized *q,
                   const dsk_quant_opts *o, dsk_err *err);

/* 1 when DIR/config.json has a quantization_config this reader takes
 * (group_size set), 0 when it has none, -code on error. */
int dsk_quant_is_quantized(const char *dir, int *group_size, dsk_err *err);

/* Loads a quantized checkpoint into m: F32 tensors as they are, the 4-bit
 * layers dequantized.  layers (m->n_tensors entries, or NULL) receives
 * each quantized layer's packed form at its tensor's index, for the
 * int4 kernels. */
int dsk_quant_load_weights(const char *dir, dsk_model *m, dsk_q4_linear *layers, dsk_err *err);

#endif
