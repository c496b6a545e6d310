/* A growable byte buffer, always NUL-terminated for convenience. */
#ifndef DSK_CORE_BUF_H
#define DSK_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct dsk_buf {
    char *data;
    size_t len;
    size_t cap;
} dsk_buf;

void dsk_buf_reserve(dsk_buf *b, size_t extra);
void dsk_buf_free(dsk_buf *b);

static inline void dsk_buf_clear(dsk_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

static inline void dsk_buf_add(dsk_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len <= n)
        dsk_buf_reserve(b, n);
    if (n)  /* p may be NULL when n is 0, which memcpy does not allow */
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static inline void dsk_buf_addc(dsk_buf *b, char c)
{
    if (b->cap - b->len <= 1)
        dsk_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

static inline void dsk_buf_adds(dsk_buf *b, const char *s) { dsk_buf_add(b, s, strlen(s)); }

void dsk_buf_printf(dsk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
