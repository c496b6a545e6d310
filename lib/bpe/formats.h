/* Reading and writing tokenizers: tiktoken rank files, GPT-2's
 * encoder.json + vocab.bpe, and Hugging Face tokenizer.json (byte-level
 * BPE), the format dsk writes. */
#ifndef DSK_BPE_FORMATS_H
#define DSK_BPE_FORMATS_H

#include <stdio.h>

#include "bpe/tokenizer.h"

/* "base64-token rank" lines; the pattern and specials are given apart. */
int dsk_bpe_load_tiktoken(dsk_tokenizer *t, const char *path, dsk_err *err);
/* encoder.json (byte-level unicode strings -> ids) and vocab.bpe (merges,
 * checked against the ids); "<|endoftext|>" becomes a special token. */
int dsk_bpe_load_gpt2(dsk_tokenizer *t, const char *encoder_json, const char *vocab_bpe, dsk_err *err);

int dsk_bpe_load_json(dsk_tokenizer *t, const char *path, dsk_err *err);
/* The same for the tokenizer.json a dataset or checkpoint holds, which
 * must be a regular file (a FIFO there would block the open): EX_DATAERR
 * otherwise. */
int dsk_bpe_load_json_regular(dsk_tokenizer *t, const char *path, dsk_err *err);
int dsk_bpe_write_json(const dsk_tokenizer *t, FILE *f, dsk_err *err);

/* GPT-2's byte-to-unicode map, used by the byte-level formats. */
uint32_t dsk_bpe_byte_to_unicode(uint8_t b);
/* Appends the byte-level unicode form of bytes to out. */
void dsk_bpe_bytes_to_unicode(const char *bytes, size_t n, dsk_buf *out);
/* Inverse: -1 if s is not in byte-level unicode form. */
int dsk_bpe_unicode_to_bytes(const char *s, size_t n, dsk_buf *out);

/* The two tokens whose merge makes token id (for the merges list), found by
 * running BPE on its bytes with the lower ids only; -1 if there is none. */
int dsk_bpe_merge_pair(const dsk_tokenizer *t, uint32_t id, uint32_t *left, uint32_t *right);

#endif
