/* libFuzzer target: a dataset shard (an LMDB file) of arbitrary bytes, read
 * as the dataset readers read one: its meta keys, each split's first and
 * last keys, and up to 64 rows of each split, every value's bytes touched
 * and decoded.  LMDB trusts its pages; a damaged one must come back as an
 * error (the value bounds and fault regions of lib/pack/shard.c), never a
 * crash.  The bytes go into a memfd: no file is written. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pack/row.h"
#include "pack/shard.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
const char *__asan_default_options(void);

/* ASan's memcmp interceptor checks the whole range of LMDB's key compares
 * before they run, and reports one that leaves the map (unknown-crash)
 * where the read itself would fault into the region that catches it. */
const char *__asan_default_options(void) { return "intercept_memcmp=0"; }

static volatile unsigned sink;

static void touch(const void *v, size_t len)
{
    const unsigned char *p = v;
    unsigned sum = 0;
    for (size_t i = 0; i < len; i++)
        sum += p[i];
    sink += sum;
}

/* LMDB 0.9's binary search within a page overflows an int and loops
 * forever when a branch or leaf page says its node pointers end before
 * its header does (mp_lower < 16).  Readers cannot see that without
 * reading every page (dsk-dataset(5) says so); inputs with such a page
 * are skipped rather than reported as a timeout each run. */
static int has_looping_page(const unsigned char *data, size_t size)
{
    for (size_t at = 2 * 4096; at + 16 <= size; at += 4096) {
        unsigned flags = data[at + 10] | data[at + 11] << 8, lower = data[at + 12] | data[at + 13] << 8;
        if ((flags & 3) && lower < 16)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (has_looping_page(data, size))
        return 0;
    int fd = memfd_create("shard", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    for (size_t done = 0; done < size;) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return 0;
        }
        done += (size_t)n;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    dsk_shard s;
    dsk_err err;
    void *txn = NULL;
    if (dsk_shard_open(&s, path, &err) == 0 && dsk_shard_begin(&s, &txn, &err) == 0) {
        const void *v;
        size_t len;
        static const char *const meta[] = {"shard", "zstd_dict"};
        for (int i = 0; i < 2; i++)
            if (dsk_shard_get(&s, txn, -1, 0, meta[i], &v, &len, &err) == 0)
                touch(v, len);
        dsk_row row = {0};
        dsk_row_codec codec = {0};
        for (int split = 0; split < DSK_SPLITS; split++) {
            uint64_t rows, first, last;
            if (dsk_shard_range(&s, txn, split, &rows, &first, &last, &err) != 0 || !rows)
                continue;
            for (uint64_t i = first; i <= last && i - first < 64; i++)
                if (dsk_shard_get(&s, txn, split, i, NULL, &v, &len, &err) == 0) {
                    touch(v, len);
                    dsk_row_decode(&codec, v, len, 1u << 20, &row, &err);
                }
        }
        dsk_row_free(&row);
        dsk_row_codec_free(&codec);
    }
    dsk_shard_end(txn);
    if (s.path)
        dsk_shard_close(&s);
    close(fd);
    return 0;
}
