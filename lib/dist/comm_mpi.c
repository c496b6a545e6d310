/* The MPI communicator (the only file that includes <mpi.h>), the
 * launcher detection, and the watchdog that turns a hang into an exit.
 *
 * A process started by mpirun or srun initialises MPI; one started by
 * hand never touches it, and is the single-process communicator.  Built
 * without MPI (DSK_NO_MPI: no libopenmpi-dev), a launched process with
 * several ranks is refused with a message that says so. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dist/comm.h"

/* The environment a launcher sets: Open MPI's mpirun, PMIx (srun
 * --mpi=pmix, prterun) and PMI-1/2 (srun --mpi=pmi2, MPICH's hydra). */
static const char *launcher_size(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v)
            return v;
    }
    /* PMIx sets PMIX_RANK but not always a size. */
    return getenv("PMIX_RANK") ? "?" : NULL;
}

int dsk_comm_launcher_rank(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v >= '0' && *v <= '9')
            return atoi(v);
    }
    return -1;
}

int dsk_comm_launcher_apps(void)
{
    /* Open MPI: one count per app context ("mpirun A : B" gives "1 1"). */
    const char *v = getenv("OMPI_APP_CTX_NUM_PROCS");
    int apps = 1;
    for (; v && *v; v++)
        apps += *v == ' ' && v[1] && v[1] != ' ';
    const char *appnum = getenv("PMIX_APPNUM");
    if (appnum && atoi(appnum) > 0 && apps < 2)
        apps = 2;
    return apps;
}

/* srun without an MPI plugin starts its tasks with no process manager to
 * join: each would train alone, into the same directory. */
static int unmanaged_srun(dsk_err *err)
{
    const char *tasks = getenv("SLURM_STEP_NUM_TASKS");
    if (launcher_size() || !tasks || atoi(tasks) <= 1)
        return 0;
    return dsk_fail(err, EX_USAGE, "srun started %s tasks without an MPI process manager for them (PMIx or PMI-2): "
                    "run srun --mpi=pmix (or --mpi=pmi2)", tasks);
}

#ifdef DSK_NO_MPI

dsk_comm *dsk_comm_open(double timeout_s, dsk_err *err)
{
    if (unmanaged_srun(err))
        return NULL;
    const char *size = launcher_size();
    if (size && strcmp(size, "1") != 0) {
        dsk_fail(err, EX_UNAVAILABLE, "started by an MPI launcher (world size %s), but this dsk-train was built "
                 "without MPI: install libopenmpi-dev and rebuild", size);
        return NULL;
    }
    return dsk_comm_single();
}

#else

#include <mpi.h>
#include <pthread.h>

typedef struct mpi_comm {
    MPI_Comm world;
    /* The watchdog: when the current collective began (ms, 0: none). */
    double timeout_s;
    _Atomic long long busy_since_ms;
    _Atomic(const char *) busy_op;
    pthread_t watchdog;
    int have_watchdog;
    _Atomic int closing;
} mpi_comm;

static dsk_comm *the_comm;   /* for the exit handler */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *watchdog_main(void *arg)
{
    dsk_comm *c = arg;
    mpi_comm *m = c->impl;
    long long limit = (long long)(m->timeout_s * 1000);
    while (!atomic_load(&m->closing)) {
        usleep(200 * 1000);
        long long since = atomic_load(&m->busy_since_ms);
        if (since && now_ms() - since > limit) {
            /* Not MPI_Abort: this thread may not call MPI.  Exiting is
             * enough: the launcher sees a rank fail and ends the others. */
            fprintf(stderr, "%s: rank %d of %d: the %s has waited %.0f s for the other ranks (--dist-timeout): a rank "
                    "has died or hangs; stopping\n", dsk_progname(), c->rank, c->size, atomic_load(&m->busy_op),
                    (double)(now_ms() - since) / 1000);
            fflush(stderr);
            _exit(EX_UNAVAILABLE);
        }
    }
    return NULL;
}

static void enter(dsk_comm *c, const char *op)
{
    mpi_comm *m = c->impl;
    atomic_store(&m->busy_op, op);
    atomic_store(&m->busy_since_ms, now_ms());
}

static void leave(dsk_comm *c) { atomic_store(&((mpi_comm *)c->impl)->busy_since_ms, 0); }

static MPI_Datatype mpi_type(dsk_comm_type t)
{
    return t == DSK_COMM_F32 ? MPI_FLOAT : t == DSK_COMM_F64 ? MPI_DOUBLE : MPI_INT64_T;
}

static size_t type_size(dsk_comm_type t) { return t == DSK_COMM_F32 ? 4 : 8; }

/* Counts and displacements of the even split, in MPI's ints. */
static void split_counts(dsk_comm *c, size_t n, int *counts, int *displs, const char *op)
{
    if (n > (size_t)INT32_MAX)
        dsk_die(EX_SOFTWARE, "%s of %zu values: more than MPI's int counts hold (split the unit)", op, n);
    for (int r = 0; r < c->size; r++) {
        size_t lo, hi;
        dsk_comm_part(n, c->size, r, &lo, &hi);
        counts[r] = (int)(hi - lo);
        displs[r] = (int)lo;
    }
}

static void mpi_allreduce(dsk_comm *c, void *buf, size_t n, dsk_comm_type type, dsk_comm_op op)
{
    mpi_comm *m = c->impl;
    enter(c, "allreduce");
    /* In pieces MPI's int count holds. */
    const size_t piece = (size_t)1 << 30;
    for (size_t at = 0; at < n; at += piece) {
        size_t k = n - at < piece ? n - at : piece;
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * type_size(type), (int)k, mpi_type(type),
                      op == DSK_COMM_SUM ? MPI_SUM : MPI_MAX, m->world);
    }
    leave(c);
}

static void mpi_allgather(dsk_comm *c, float *buf, size_t n)
{
    mpi_comm *m = c->impl;
    int *counts = dsk_xmalloc(2 * (size_t)c->size * sizeof *counts), *displs = counts + c->size;
    split_counts(c, n, counts, displs, "allgather");
    enter(c, "allgather");
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, counts, displs, MPI_FLOAT, m->world);
    leave(c);
    free(counts);
}

static void mpi_reduce_scatter(dsk_comm *c, const float *in, float *part, size_t n)
{
    mpi_comm *m = c->impl;
    int *counts = dsk_xmalloc(2 * (size_t)c->size * sizeof *counts), *displs = counts + c->size;
    split_counts(c, n, counts, displs, "reduce-scatter");
    enter(c, "reduce-scatter");
    MPI_Reduce_scatter(in, part, counts, MPI_FLOAT, MPI_SUM, m->world);
    leave(c);
    free(counts);
}

static void mpi_gather(dsk_comm *c, const float *part, float *all, size_t n, int root)
{
    mpi_comm *m = c->impl;
    int *counts = dsk_xmalloc(2 * (size_t)c->size * sizeof *counts), *displs = counts + c->size;
    split_counts(c, n, counts, displs, "gather");
    enter(c, "gather");
    if (c->rank == root) {
        if (counts[root] && part != all + displs[root])
            memmove(all + displs[root], part, (size_t)counts[root] * sizeof *part);
        MPI_Gatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, counts, displs, MPI_FLOAT, root, m->world);
    } else {
        MPI_Gatherv(part, counts[c->rank], MPI_FLOAT, NULL, NULL, NULL, MPI_FLOAT, root, m->world);
    }
    leave(c);
    free(counts);
}

static void mpi_bcast(dsk_comm *c, void *buf, size_t bytes, int root)
{
    if (bytes > (size_t)INT32_MAX)
        dsk_die(EX_SOFTWARE, "broadcast of %zu bytes: more than MPI's int counts hold", bytes);
    enter(c, "broadcast");
    MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, ((mpi_comm *)c->impl)->world);
    leave(c);
}

static void mpi_barrier(dsk_comm *c)
{
    enter(c, "barrier");
    MPI_Barrier(((mpi_comm *)c->impl)->world);
    leave(c);
}

static void stop_watchdog(mpi_comm *m)
{
    atomic_store(&m->closing, 1);
    if (m->have_watchdog)
        pthread_join(m->watchdog, NULL);
    m->have_watchdog = 0;
}

static void mpi_abort(dsk_comm *c, int code)
{
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(((mpi_comm *)c->impl)->world, code);
    _exit(code);   /* MPI_Abort does not return; in case it does */
}

static void mpi_close(dsk_comm *c)
{
    mpi_comm *m = c->impl;
    stop_watchdog(m);
    MPI_Comm_free(&m->world);
    MPI_Finalize();
    the_comm = NULL;
    free(m);
    free(c);
}

/* A process that exits without closing the communicator (a fatal error
 * on one rank: out of memory, a bug) takes the whole run with it rather
 * than leave the others waiting in a collective. */
static void abort_at_exit(void)
{
    if (the_comm)
        mpi_abort(the_comm, EX_SOFTWARE);
}

dsk_comm *dsk_comm_open(double timeout_s, dsk_err *err)
{
    if (unmanaged_srun(err))
        return NULL;
    if (!launcher_size())
        return dsk_comm_single();
    int provided;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        dsk_fail(err, EX_UNAVAILABLE, "MPI_Init failed");
        return NULL;
    }
    dsk_comm *c = dsk_xcalloc(1, sizeof *c);
    mpi_comm *m = dsk_xcalloc(1, sizeof *m);
    c->impl = m;
    c->name = "mpi";
    MPI_Comm_dup(MPI_COMM_WORLD, &m->world);
    MPI_Comm_rank(m->world, &c->rank);
    MPI_Comm_size(m->world, &c->size);
    MPI_Comm node;
    MPI_Comm_split_type(m->world, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &c->local_rank);
    MPI_Comm_size(node, &c->local_size);
    MPI_Comm_free(&node);
    c->allreduce = mpi_allreduce;
    c->allgather = mpi_allgather;
    c->reduce_scatter = mpi_reduce_scatter;
    c->gather = mpi_gather;
    c->bcast = mpi_bcast;
    c->barrier = mpi_barrier;
    c->abort = mpi_abort;
    c->close = mpi_close;
    m->timeout_s = c->timeout_s = timeout_s;
    if (timeout_s > 0 && pthread_create(&m->watchdog, NULL, watchdog_main, c) == 0)
        m->have_watchdog = 1;
    the_comm = c;
    static int registered;
    if (!registered++)
        atexit(abort_at_exit);
    return c;
}

#endif
