/* DSK_CUDA_PROFILE=1: where a backend's GPU time goes, op by op.
 *
 * Every op of the table is bracketed by two CUDA events on the backend's
 * stream (cuda_backend.cu's table_op), and the ops with parts worth
 * telling apart bracket those parts too (sections, one level down): gemm
 * its 16-bit operand copies and its products, by shape; the attention
 * its kernels.  The events are read in batches: when the pending ones
 * come near filling the pool, between two ops (the host then waits for
 * the stream, so a profiled run is a little slower than an unprofiled
 * one), and when the table is asked for.  An op's time is the stream's, from reaching its first event
 * to passing its second: an op whose kernels wait for the host to launch
 * them (a launch-bound op) is charged the wait too.  The stream's time
 * between ops (the host busy elsewhere: the optimizer's loop, a
 * download, an allocation) is a line of its own.
 *
 * Beside the stream's time, each bracket's host time: from the call's
 * start to its return on the host's clock.  An op whose host time comes
 * near its stream time may be bound by its launches, and one whose host
 * time is far above it waited for the stream (a download, an
 * allocation's cudaFree, a full launch queue).  And each op's idle time:
 * the stream's gap between the op before it ending and it starting, the
 * time the GPU waited for the host to queue it (a read of the events,
 * which waits for the stream, charges its own gap to the op after it).
 *
 * Off (the default), a bracket is one branch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>

#include "cuda_internal.cuh"

/* PROF_PARTS: the names one bracket's parts may have; the rest of its
 * parts are summed as "(other parts)" (a MoE layer's ragged products
 * name a new shape nearly every call, and had filled the table before
 * the backward's ops came, whose time then went unlisted). */
enum { PROF_NAME = 48, PROF_ENTRIES = 512, PROF_PARTS = 40, PROF_PENDING = 2048, PROF_ROOM = 512, PROF_DEPTH = 4 };

typedef struct prof_entry {
    char name[PROF_NAME];
    int parent;                 /* the enclosing bracket's entry; -1 for an op of the table */
    int parts;                  /* the entries whose parent it is */
    unsigned long long calls;
    unsigned long long timed;   /* the calls that had events (all but where the pool was full inside an op) */
    double ms;                  /* summed over the timed calls */
    double host_ms;             /* the host's time in the bracket, summed over all calls */
    double idle_ms;             /* an op's: the stream idle just before it (since the op before it ended) */
    double flops;               /* summed over all calls; 0 where not counted */
    double timed_flops;         /* over the timed calls (TFLOPS is timed_flops / ms) */
} prof_entry;

typedef struct prof_pair {
    int entry;                  /* -1: a name the full table could not keep */
    int depth;                  /* 0: an op of the table */
    cudaEvent_t start, end;     /* end NULL while the bracket is open */
} prof_pair;

struct dsk_cuda_prof {
    prof_entry entry[PROF_ENTRIES];
    int n_entries;
    unsigned long long dropped;            /* brackets whose name the full table could not keep */
    prof_pair pending[PROF_PENDING];
    int n_pending;
    cudaEvent_t spare[2 * PROF_PENDING];   /* created events not in use */
    int n_spare;
    int open_entry[PROF_DEPTH];            /* the open brackets, outermost first */
    int open_slot[PROF_DEPTH];             /* their pending slots (-1: not timed) */
    double open_host[PROF_DEPTH];          /* their starts on the host's clock, ms */
    int depth;
    double span_ms;                        /* stream time from the first op to the last, summed over reads */
    cudaEvent_t last_end;                  /* the end of the last op read (NULL before any): the next's idle */
};

static double host_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static cudaEvent_t take_event(dsk_cuda_prof *p)
{
    if (p->n_spare)
        return p->spare[--p->n_spare];
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreate(&e));
    return e;
}

static void give_event(dsk_cuda_prof *p, cudaEvent_t e)
{
    if (p->n_spare < 2 * PROF_PENDING)
        p->spare[p->n_spare++] = e;
    else
        CUDA_CHECK(cudaEventDestroy(e));
}

/* The entry named `name` under `parent`, made when new (a part past
 * the parent's PROF_PARTS names: its "(other parts)"); -1 when the
 * table is full. */
static int entry_of(dsk_cuda_prof *p, const char *name, int parent)
{
    for (int i = 0; i < p->n_entries; i++)
        if (p->entry[i].parent == parent && !strcmp(p->entry[i].name, name))
            return i;
    static const char other[] = "(other parts)";
    if (parent >= 0 && p->entry[parent].parts >= PROF_PARTS - 1 && strcmp(name, other))
        return entry_of(p, other, parent);
    if (p->n_entries == PROF_ENTRIES)
        return -1;
    if (parent >= 0)
        p->entry[parent].parts++;
    prof_entry *e = &p->entry[p->n_entries];
    memset(e, 0, sizeof *e);   /* (after a reset the slot held an old entry) */
    snprintf(e->name, sizeof e->name, "%s", name);
    e->parent = parent;
    return p->n_entries++;
}

/* Waits for the pending brackets (all closed) and adds their times up. */
static void read_pending(dsk_cuda_prof *p)
{
    if (!p->n_pending)
        return;
    /* The last event recorded: the end of the last op of the table (a
     * bracket stored after it is a section inside it, which ends first). */
    int first = -1, last = -1;   /* the first and last op of the table among them */
    for (int i = 0; i < p->n_pending; i++)
        if (p->pending[i].depth == 0) {
            if (first < 0)
                first = i;
            last = i;
        }
    CUDA_CHECK(cudaEventSynchronize(p->pending[last >= 0 ? last : p->n_pending - 1].end));
    cudaEvent_t prev_end = p->last_end;
    for (int i = 0; i < p->n_pending; i++) {
        prof_pair *q = &p->pending[i];
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, q->start, q->end));
        if (q->entry >= 0)
            p->entry[q->entry].ms += ms;
        if (q->depth == 0) {
            /* The stream's gap before this op: charged to it, the op the
             * GPU waited for (the host was late to queue it). */
            float idle = 0;
            if (p->last_end)
                CUDA_CHECK(cudaEventElapsedTime(&idle, p->last_end, q->start));
            if (q->entry >= 0 && idle > 0)
                p->entry[q->entry].idle_ms += idle;
            p->last_end = q->end;
        }
    }
    if (first >= 0) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->pending[first].start, p->pending[last].end));
        p->span_ms += ms;
    }
    /* The last op's end stays for the next read's first gap. */
    for (int i = 0; i < p->n_pending; i++) {
        give_event(p, p->pending[i].start);
        if (p->pending[i].end != p->last_end)
            give_event(p, p->pending[i].end);
    }
    if (prev_end && prev_end != p->last_end)
        give_event(p, prev_end);
    p->n_pending = 0;
}

int dsk_cuda_prof_begin(dsk_cuda *cb, const char *name, double flops)
{
    dsk_cuda_prof *p = cb->prof;
    if (!p)
        return -1;
    if (p->depth == PROF_DEPTH)
        dsk_die(EX_SOFTWARE, "cuda: profile: %s: brackets nested deeper than %d", name, PROF_DEPTH);
    /* Read only between ops (inside one, an open bracket has no end yet),
     * with room left for an op's sections (a grouped product's loop). */
    if (p->n_pending >= PROF_PENDING - PROF_ROOM && p->depth == 0)
        read_pending(p);
    int parent = p->depth ? p->open_entry[p->depth - 1] : -1;
    int entry = p->depth && parent < 0 ? -1 : entry_of(p, name, parent);
    if (entry >= 0) {
        p->entry[entry].calls++;
        p->entry[entry].flops += flops;
    } else {
        p->dropped++;
    }
    int slot = -1;
    if (p->n_pending < PROF_PENDING) {
        /* (Full inside an op: its remaining sections are counted, not timed.) */
        if (entry >= 0) {
            p->entry[entry].timed++;
            p->entry[entry].timed_flops += flops;
        }
        slot = p->n_pending++;
        prof_pair *q = &p->pending[slot];
        q->entry = entry;
        q->depth = p->depth;
        q->start = take_event(p);
        q->end = NULL;
        CUDA_CHECK(cudaEventRecord(q->start, cb->stream));
    }
    p->open_entry[p->depth] = entry;
    p->open_slot[p->depth] = slot;
    p->open_host[p->depth] = host_now_ms();   /* (after the read: an op's host time is its own) */
    return p->depth++;
}

void dsk_cuda_prof_end(dsk_cuda *cb, int mark)
{
    dsk_cuda_prof *p = cb->prof;
    if (!p)
        return;
    if (mark != p->depth - 1)
        dsk_die(EX_SOFTWARE, "cuda: profile: a bracket ends out of order (depth %d, closing %d)", p->depth, mark);
    int slot = p->open_slot[--p->depth], entry = p->open_entry[p->depth];
    if (entry >= 0)
        p->entry[entry].host_ms += host_now_ms() - p->open_host[p->depth];
    if (slot >= 0) {
        p->pending[slot].end = take_event(p);
        CUDA_CHECK(cudaEventRecord(p->pending[slot].end, cb->stream));
    }
}

dsk_cuda_prof *dsk_cuda_prof_new(void) { return (dsk_cuda_prof *)dsk_xcalloc(1, sizeof(dsk_cuda_prof)); }

void dsk_cuda_prof_free(dsk_cuda_prof *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_pending; i++) {
        CUDA_CHECK(cudaEventDestroy(p->pending[i].start));
        if (p->pending[i].end)
            CUDA_CHECK(cudaEventDestroy(p->pending[i].end));
    }
    for (int i = 0; i < p->n_spare; i++)
        CUDA_CHECK(cudaEventDestroy(p->spare[i]));
    if (p->last_end)
        CUDA_CHECK(cudaEventDestroy(p->last_end));
    free(p);
}

/* ---- the public face (cuda_backend.h) ---- */

static dsk_cuda_prof *prof_of(dsk_backend *be)
{
    if (!be || strcmp(be->name, "cuda"))
        return NULL;
    dsk_cuda_prof *p = ((dsk_cuda *)be)->prof;
    if (p && p->depth)
        dsk_die(EX_SOFTWARE, "cuda: profile: read inside an op");
    if (p)
        read_pending(p);
    return p;
}

extern "C" int dsk_cuda_profile_get(dsk_backend *be, const char *op, const char *section, unsigned long long *calls,
                                    double *ms, double *flops)
{
    dsk_cuda_prof *p = prof_of(be);
    if (!p)
        return -1;
    for (int i = 0; i < p->n_entries; i++) {
        const prof_entry *e = &p->entry[i];
        int top = e->parent < 0;
        if (top ? section || strcmp(e->name, op)
                : !section || strcmp(e->name, section) || strcmp(p->entry[e->parent].name, op))
            continue;
        *calls = e->calls;
        *ms = e->ms;
        *flops = e->flops;
        return 0;
    }
    *calls = 0, *ms = 0, *flops = 0;
    return 0;
}

extern "C" void dsk_cuda_profile_reset(dsk_backend *be)
{
    dsk_cuda_prof *p = prof_of(be);
    if (!p)
        return;
    p->n_entries = 0;
    p->dropped = 0;
    p->span_ms = 0;
}

static void print_entry(FILE *f, const prof_entry *e, double total, int indent)
{
    char tflops[16] = "";
    if (e->timed_flops > 0 && e->ms > 0)
        snprintf(tflops, sizeof tflops, "%.1f", e->timed_flops / (e->ms * 1e-3) / 1e12);
    char idle[16] = "";
    if (e->parent < 0)
        snprintf(idle, sizeof idle, "%.2f", e->idle_ms);
    fprintf(f, "  %10.2f %6.1f%% %9llu %10.1f %7s %10.2f %10s  %*s%s\n", e->ms, total > 0 ? 100 * e->ms / total : 0.0,
            e->calls, e->timed ? 1e3 * e->ms / (double)e->timed : 0.0, tflops, e->host_ms, idle, indent, "", e->name);
}

/* The entries under `parent` (-1: the ops), each followed by its own, in `order`. */
static void print_children(FILE *f, const dsk_cuda_prof *p, const int *order, int parent, int indent)
{
    for (int i = 0; i < p->n_entries; i++)
        if (p->entry[order[i]].parent == parent) {
            print_entry(f, &p->entry[order[i]], p->span_ms, indent);
            print_children(f, p, order, order[i], indent + 2);
        }
}

extern "C" void dsk_cuda_profile_print(dsk_backend *be, FILE *f)
{
    dsk_cuda_prof *p = prof_of(be);
    if (!p || !p->n_entries)
        return;
    int order[PROF_ENTRIES], n = p->n_entries;
    for (int i = 0; i < n; i++)
        order[i] = i;
    /* The longest first; a tie in the order the names came. */
    std::stable_sort(order, order + n, [p](int a, int b) { return p->entry[a].ms > p->entry[b].ms; });
    double ops_ms = 0, host_ms = 0;
    unsigned long long ops = 0;
    for (int i = 0; i < n; i++)
        if (p->entry[i].parent < 0)
            ops_ms += p->entry[i].ms, host_ms += p->entry[i].host_ms, ops += p->entry[i].calls;
    fprintf(f, "cuda profile (DSK_CUDA_PROFILE=1): %llu ops, %.2f ms of stream time in ops, %.2f ms from the first "
               "to the last; the host %.2f ms in ops\n", ops, ops_ms, p->span_ms, host_ms);
    fprintf(f, "  %10s %7s %9s %10s %7s %10s %10s  %s\n", "ms", "share", "calls", "us/call", "TFLOPS", "host ms",
            "idle ms", "op (and its parts)");
    print_children(f, p, order, -1, 0);
    if (p->span_ms > ops_ms)
        fprintf(f, "  %10.2f %6.1f%% %9s %10s %7s %10s %10s  %s\n", p->span_ms - ops_ms,
                100 * (p->span_ms - ops_ms) / p->span_ms, "", "", "", "", "",
                p->dropped ? "(the stream between the listed ops: the unlisted ones, and waiting for the host)"
                           : "(the stream between ops: waiting for the host; idle ms says before which)");
    if (p->dropped)
        fprintf(f, "  (%llu brackets not listed: more than %d names)\n", p->dropped, PROF_ENTRIES);
}
