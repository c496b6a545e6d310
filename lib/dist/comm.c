/* What every communicator shares: the even split, agreement on a status,
 * and the communicator of a single process. */
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/comm.h"

int dsk_comm_default_threads(const dsk_comm *c)
{
    if (c->local_size <= 1)
        return 0;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    int mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)online;
    if (mine < online)
        return mine;   /* the launcher bound this rank to its cores */
    int share = (int)(online / c->local_size);
    return share > 0 ? share : 1;
}

size_t dsk_comm_chunk(size_t n, int size) { return size > 1 ? (n + (size_t)size - 1) / (size_t)size : n; }

void dsk_comm_part(size_t n, int size, int rank, size_t *lo, size_t *hi)
{
    size_t c = dsk_comm_chunk(n, size);
    size_t a = (size_t)rank * c, b = a + c;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
}

void dsk_comm_pad_plan(size_t n, int size, int rank, dsk_comm_pad *p)
{
    p->chunk = dsk_comm_chunk(n, size);
    p->padded = p->chunk * (size_t)(size > 1 ? size : 1);
    p->at = p->chunk * (size_t)rank;
    dsk_comm_part(n, size, rank, &p->lo, &p->hi);
    p->exact = p->padded == n;
}

int dsk_comm_agree(dsk_comm *c, int rc, int has_message, int *report)
{
    /* The status, and size - rank for a rank with a message: the largest
     * of those names the lowest such rank. */
    int speaks = rc != 0 && has_message;
    int64_t v[2] = {rc, speaks ? (int64_t)(c->size - c->rank) : 0};
    c->allreduce(c, v, 2, DSK_COMM_I64, DSK_COMM_MAX);
    *report = speaks && v[1] == c->size - c->rank;
    return (int)v[0];
}

/* ---- one process ---------------------------------------------------------------------------- */

static void single_allreduce(dsk_comm *c, void *buf, size_t n, dsk_comm_type type, dsk_comm_op op) {}
static void single_allgather(dsk_comm *c, float *buf, size_t n) {}

static void single_reduce_scatter(dsk_comm *c, const float *in, float *part, size_t n)
{
    if (n && part != in)
        memmove(part, in, n * sizeof *in);
}

static void single_gather(dsk_comm *c, const float *part, float *all, size_t n, int root)
{
    if (n && part != all)
        memmove(all, part, n * sizeof *part);
}

static void single_bcast(dsk_comm *c, void *buf, size_t bytes, int root) {}
static void single_barrier(dsk_comm *c) {}
static void single_abort(dsk_comm *c, int code) { exit(code); }
static void single_close(dsk_comm *c) { free(c); }

dsk_comm *dsk_comm_single(void)
{
    dsk_comm *c = dsk_xcalloc(1, sizeof *c);
    c->name = "single";
    c->rank = c->local_rank = 0;
    c->size = c->local_size = 1;
    c->allreduce = single_allreduce;
    c->allgather = single_allgather;
    c->reduce_scatter = single_reduce_scatter;
    c->gather = single_gather;
    c->bcast = single_bcast;
    c->barrier = single_barrier;
    c->abort = single_abort;
    c->close = single_close;
    return c;
}
