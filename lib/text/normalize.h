/* Text normalization for documents: terminal escape sequences and control
 * characters removed, line endings made '\n', Unicode normalized (NFC or
 * NFKC via utf8proc), and whitespace tidied.  Input must be valid UTF-8. */
#ifndef DSK_TEXT_NORMALIZE_H
#define DSK_TEXT_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

typedef enum { DSK_NORM_NONE, DSK_NORM_NFC, DSK_NORM_NFKC } dsk_norm_form;

typedef struct dsk_normalize_opts {
    dsk_norm_form form;
    int tidy_whitespace;  /* collapse inner runs, strip line ends, limit blank lines, trim */
} dsk_normalize_opts;

typedef struct dsk_normalize_counts {
    uint64_t escapes_removed;   /* ANSI/VT escape sequences */
    uint64_t controls_removed;  /* other C0/C1 controls, BOMs */
} dsk_normalize_counts;

/* Writes the normalized text to out (cleared first).  scratch is reused
 * between calls to avoid allocation. */
void dsk_normalize_text(const char *s, size_t n, const dsk_normalize_opts *o, dsk_buf *out,
                        dsk_buf *scratch, dsk_normalize_counts *counts);

#endif
