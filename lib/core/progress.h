/* A one-line progress display on stderr, shown only when stderr is a
 * terminal and the tool is not quiet: bytes done, rate, and an ETA when
 * the total is known.  Redrawn at most ten times a second. */
#ifndef DSK_CORE_PROGRESS_H
#define DSK_CORE_PROGRESS_H

#include <stdint.h>

typedef struct dsk_progress {
    int enabled;
    const char *label;
    uint64_t total_bytes;  /* 0 when unknown (stdin, pipes) */
    double start, last_draw;
} dsk_progress;

void dsk_progress_start(dsk_progress *p, const char *label, uint64_t total_bytes, int quiet);
void dsk_progress_update(dsk_progress *p, uint64_t bytes_done, uint64_t items_done);
void dsk_progress_finish(dsk_progress *p);

double dsk_now(void);  /* monotonic seconds */

#endif
