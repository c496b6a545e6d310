/* dsk-pack over .dskt streams: records are read and packed into rows on
 * the calling thread, rows are compressed on worker threads, and written
 * in order into LMDB shards in a temporary directory that becomes the
 * dataset only once MANIFEST and MD5SUMS are in it.  The output does not
 * depend on the thread count. */
#ifndef DSK_PACK_PACK_RUN_H
#define DSK_PACK_PACK_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "bpe/tokenizer.h"
#include "pack/manifest.h"
#include "pack/pack.h"

typedef struct dsk_pack_run_opts {
    const char *dir;
    int force;                  /* replace an existing dataset */
    const dsk_tokenizer *tokenizer;
    const char *tokenizer_path; /* copied into the dataset */
    dsk_pack_opts pack;         /* row_len and eot included */
    uint64_t shard_size;
    int zstd_level;
    int dict;                   /* train a zstd dictionary on the first rows */
    size_t dict_sample;         /* payload bytes it is trained on */
    int threads;
    const char *command;
    int quiet;
} dsk_pack_run_opts;

/* Packs the inputs ("-" is stdin) into o->dir; m receives the manifest. */
int dsk_pack_run(const dsk_pack_run_opts *o, const char *const *inputs, size_t n_inputs, dsk_manifest *m,
                 dsk_err *err);

#endif
