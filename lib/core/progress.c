#include "core/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

double dsk_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void dsk_progress_start(dsk_progress *p, const char *label, uint64_t total_bytes, int quiet)
{
    p->enabled = !quiet && isatty(STDERR_FILENO);
    p->label = label;
    p->total_bytes = total_bytes;
    p->start = p->last_draw = dsk_now();
}

void dsk_progress_update(dsk_progress *p, uint64_t bytes_done, uint64_t items_done)
{
    if (!p->enabled)
        return;
    double now = dsk_now();
    if (now - p->last_draw < 0.1)
        return;
    p->last_draw = now;
    double secs = now - p->start;
    double rate = secs > 0 ? (double)bytes_done / secs : 0;
    fprintf(stderr, "\r%s: %.1f MB, %llu docs, %.1f MB/s", p->label, (double)bytes_done / 1e6,
            (unsigned long long)items_done, rate / 1e6);
    if (p->total_bytes && rate > 0 && bytes_done <= p->total_bytes) {
        double eta = (double)(p->total_bytes - bytes_done) / rate;
        fprintf(stderr, ", %3.0f%%, ETA %02d:%02d", 100.0 * (double)bytes_done / (double)p->total_bytes,
                (int)eta / 60, (int)eta % 60);
    }
    fputs("\033[K", stderr);
}

void dsk_progress_finish(dsk_progress *p)
{
    if (p->enabled)
        fputs("\r\033[K", stderr);
}
