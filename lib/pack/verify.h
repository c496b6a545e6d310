/* dsk-pack verify: a dataset is whole when MD5SUMS lists every file and
 * every digest matches, the MANIFEST agrees with each shard, and every row
 * decodes with tokens below the vocab size and the stated length. */
#ifndef DSK_PACK_VERIFY_H
#define DSK_PACK_VERIFY_H

#include <stdint.h>

#include "core/err.h"

typedef struct dsk_verify_report {
    uint64_t files, rows, tokens, shards;
} dsk_verify_report;

int dsk_dataset_verify(const char *dir, dsk_verify_report *rep, dsk_err *err);

#endif
