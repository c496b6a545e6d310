/* The .dskt token stream (see dsk-tokens(5)): a header (magic, version,
 * token width, vocab size, tokenizer fingerprint), one record per
 * document, and a trailer with the record count, token count and a
 * checksum of everything before it.  It is a pipe format: written and read
 * front to back, never seeking.  A reader fails with the offset on a short
 * record, a missing trailer, a bad checksum or a token >= vocab size. */
#ifndef DSK_BPE_DSKT_H
#define DSK_BPE_DSKT_H

#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define DSKT_MAGIC "DSKT"
#define DSKT_VERSION 1
#define DSKT_HEADER_BYTES 32
#define DSKT_MAX_RECORD_TOKENS (1u << 28)

enum { DSKT_PLAIN = 1, DSKT_CHAT = 2, DSKT_PREFERENCE = 3, DSKT_END = 0xFF };
enum { DSKT_TRAIN = 0, DSKT_VAL = 1, DSKT_TEST = 2 };

typedef struct dskt_header {
    uint32_t version;
    uint32_t token_bytes;  /* 2 or 4 */
    uint32_t vocab_size;
    uint8_t fingerprint[16];
} dskt_header;

/* One document.  Chat records have a loss mask (1 = train on this token);
 * preference records hold prompt, chosen and rejected back to back. */
typedef struct dskt_record {
    int kind, split;
    uint32_t *tokens;
    uint32_t n_tokens;
    uint8_t *mask;                  /* DSKT_CHAT: one byte per token, 0 or 1 */
    uint32_t n_prompt, n_chosen;    /* DSKT_PREFERENCE; rejected is the rest */
    size_t cap_tokens;
} dskt_record;

typedef struct dskt_writer {
    FILE *f;
    dskt_header h;
    uint64_t records, tokens;
    void *hash;   /* XXH3 state over all bytes written */
    uint8_t *buf;
    size_t cap;
} dskt_writer;

int dskt_writer_open(dskt_writer *w, FILE *f, uint32_t vocab_size, const char fingerprint_hex[33], dsk_err *err);
int dskt_write(dskt_writer *w, const dskt_record *r, dsk_err *err);
/* Writes the trailer; the stream is complete only after this. */
int dskt_writer_close(dskt_writer *w, dsk_err *err);
/* Frees the writer without a trailer: readers will see a truncated stream. */
void dskt_writer_abort(dskt_writer *w);

typedef struct dskt_reader {
    FILE *f;
    const char *name;
    dskt_header h;
    uint64_t offset, records, tokens;
    void *hash;
    uint8_t *buf;
    size_t cap;
    int done;
} dskt_reader;

int dskt_reader_open(dskt_reader *r, FILE *f, const char *name, dsk_err *err);
/* Returns 1 with the next record, 0 after a verified trailer, or an error. */
int dskt_read(dskt_reader *r, dskt_record *rec, dsk_err *err);
void dskt_reader_close(dskt_reader *r);

void dskt_record_free(dskt_record *rec);
void dskt_fingerprint_hex(const uint8_t fp[16], char out[33]);

#endif
