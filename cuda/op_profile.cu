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
 * Off (the default), a bracket is one branch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>

#include "cuda_internal.cuh"

enum { PROF_NAME = 48, PROF_ENTRIES = 256, PROF_PENDING = 2048, PROF_ROOM = 512, PROF_DEPTH = 4 };

typedef struct prof_entry {
    char name[PROF_NAME];
    int parent;                 /* the enclosing bracket's entry; -1 for an op of the table */
    unsigned long long calls;
    unsigned long long timed;   /* the calls that had events (all but where the pool was full inside an op) */
    double ms;                  /* summed over the timed calls */
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
    int depth;
    double span_ms;                        /* stream time from the first op to the last, summed over reads */
};

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

/* The entry named `name` under `parent`, made when new; -1 when the table is full. */
static int entry_of(dsk_cuda_prof *p, const char *name, int parent)
{
    for (int i = 0; i < p->n_entries; i++)
        if (p->entry[i].parent == parent && !strcmp(p->entry[i].name, name))
            return i;
    if (p->n_entries == PROF_ENTRIES)
        return -1;
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
    for (int i = 0; i < p->n_pending; i++) {
        prof_pair *q = &p->pending[i];
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, q->start, q->end));
        if (q->entry >= 0)
            p->entry[q->entry].ms += ms;
    }
    if (first >= 0) {
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, p->pending[first].start, p->pending[last].end));
        p->span_ms += ms;
    }
    for (int i = 0; i < p->n_pending; i++) {
        give_event(p, p->pending[i].start);
        give_event(p, p->pending[i].end);
    }
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
    return p->depth++;
}

void dsk_cuda_prof_end(dsk_cuda *cb, int mark)
{
    dsk_cuda_prof *p = cb->prof;
    if (!p)
        return;
    if (mark != p->depth - 1)
        dsk_die(EX_SOFTWARE, "cuda: profile: a bracket ends out of order (depth %d, closing %d)", p->depth, mark);
    int slot = p->open_slot[--p->depth];
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
    fprintf(f, "  %10.2f %6.1f%% %9llu %10.1f %7s  %*s%s\n", e->ms, total > 0 ? 100 * e->ms / total : 0.0, e->calls,
            e->timed ? 1e3 * e->ms / (double)e->timed : 0.0, tflops, indent, "", e->name);
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
    double ops_ms = 0;
    unsigned long long ops = 0;
    for (int i = 0; i < n; i++)
        if (p->entry[i].parent < 0)
            ops_ms += p->entry[i].ms, ops += p->entry[i].calls;
    fprintf(f, "cuda profile (DSK_CUDA_PROFILE=1): %llu ops, %.2f ms of stream time in ops, %.2f ms from the first "
               "to the last\n", ops, ops_ms, p->span_ms);
    fprintf(f, "  %10s %7s %9s %10s %7s  %s\n", "ms", "share", "calls", "us/call", "TFLOPS", "op (and its parts)");
    for (int i = 0; i < n; i++) {
        const prof_entry *e = &p->entry[order[i]];
        if (e->parent >= 0)
            continue;
        print_entry(f, e, p->span_ms, 0);
        for (int j = 0; j < n; j++)
            if (p->entry[order[j]].parent == order[i])
                print_entry(f, &p->entry[order[j]], p->span_ms, 2);
    }
    if (p->span_ms > ops_ms)
        fprintf(f, "  %10.2f %6.1f%% %9s %10s %7s  (the stream between ops: waiting for the host)\n",
                p->span_ms - ops_ms, 100 * (p->span_ms - ops_ms) / p->span_ms, "", "", "");
    if (p->dropped)
        fprintf(f, "  (%llu brackets not listed: more than %d names)\n", p->dropped, PROF_ENTRIES);
}
