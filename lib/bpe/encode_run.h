/* dsk-bpe encode over many documents: records read in batches, encoded on
 * worker threads, written in input order (the output does not depend on
 * the thread count) as a .dskt stream or as lines of ids. */
#ifndef DSK_BPE_ENCODE_RUN_H
#define DSK_BPE_ENCODE_RUN_H

#include <stdio.h>

#include "bpe/tokenizer.h"
#include "text/records.h"

typedef struct dsk_bpe_encode_opts {
    const dsk_tokenizer *tokenizer;
    const dsk_records_spec *records;
    const char *field;
    int allow_special;
    int ids;      /* lines of decimal ids instead of .dskt */
    int threads;
    size_t max_record;   /* the longest record accepted, in bytes */
} dsk_bpe_encode_opts;

int dsk_bpe_encode_run(const dsk_bpe_encode_opts *o, const char *const *inputs, FILE *out, dsk_err *err);

#endif
