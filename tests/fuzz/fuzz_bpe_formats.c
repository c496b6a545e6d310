/* libFuzzer target: every tokenizer and token-stream loader of dsk-bpe.
 * The first byte picks the format: tokenizer.json, a tiktoken rank file,
 * GPT-2's encoder.json (with a fixed vocab.bpe), a .dskt stream, a
 * counts file.  A loaded tokenizer also encodes and decodes the input. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bpe/dskt.h"
#include "bpe/formats.h"
#include "bpe/train.h"
#include "text/utf8.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

static int memfile(const unsigned char *data, size_t size, char *path, size_t path_len)
{
    int fd = memfd_create("fuzz", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        return -1;
    snprintf(path, path_len, "/proc/self/fd/%d", fd);
    return fd;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    int which = data[0] % 5;
    char path[64], merges[64];
    int fd = memfile(data + 1, size - 1, path, sizeof path);
    if (fd < 0)
        return 0;
    dsk_err err;
    dsk_tokenizer t;
    dsk_tokenizer_init(&t);
    int rc = -1;
    if (which == 0) {
        rc = dsk_bpe_load_json(&t, path, &err);
    } else if (which == 1) {
        rc = dsk_bpe_load_tiktoken(&t, path, &err);
        if (!rc)
            rc = dsk_tokenizer_set_pattern(&t, dsk_bpe_named_pattern("gpt2"), &err);
        if (!rc)
            rc = dsk_tokenizer_finish(&t, &err);
    } else if (which == 2) {
        static const unsigned char vocab_bpe[] = "#version: 0.2\nh e\n";
        int fd2 = memfile(vocab_bpe, sizeof vocab_bpe - 1, merges, sizeof merges);
        rc = dsk_bpe_load_gpt2(&t, path, merges, &err);
        close(fd2);
    } else if (which == 3) {
        FILE *f = fopen(path, "rb");
        dskt_reader r;
        dskt_record rec = {0};
        if (f && dskt_reader_open(&r, f, "fuzz", &err) == 0)
            while (dskt_read(&r, &rec, &err) == 1)
                ;
        if (f) {
            dskt_reader_close(&r);
            fclose(f);
        }
        dskt_record_free(&rec);
    } else {
        dsk_bpe_counts c;
        dsk_bpe_counts_init(&c, 1024);
        char *pattern = NULL;
        dsk_bpe_counts_read(&c, path, &pattern, &err);
        free(pattern);
        dsk_bpe_counts_free(&c);
    }
    if (rc == 0) {  /* a tokenizer loaded: it must encode and decode its own input */
        dsk_bpe_encoder e;
        dsk_bpe_encoder_init(&e, &t);
        dsk_buf valid = {0}, back = {0};
        dsk_utf8_repair((const char *)data, size, &valid);
        if (dsk_bpe_encode(&t, &e, valid.data ? valid.data : "", valid.len, 1, &err) == 0 &&
            dsk_bpe_decode(&t, e.ids, e.n_ids, &back, &err) == 0 &&
            (back.len != valid.len || memcmp(back.data ? back.data : "", valid.data ? valid.data : "", back.len)))
            __builtin_trap();  /* decode(encode(x)) must be x */
        dsk_buf_free(&valid);
        dsk_buf_free(&back);
        dsk_bpe_encoder_free(&e);
    }
    dsk_tokenizer_free(&t);
    close(fd);
    return 0;
}
