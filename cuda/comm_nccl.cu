/* NCCL between GPU ranks: lib/dist/comm.h's communicator for ranks on
 * the cuda backend, wrapped around the run's MPI communicator.
 *
 * Each rank drives one device (dsk_cuda_rank_device: its local rank's).
 * Rank 0 makes NCCL's unique id and MPI carries it to the others; then
 * the collectives on device memory run through NCCL on the backend's
 * stream, in stream order with the ops around them, and everything in
 * host memory (statistics, status codes, the barrier, abort) through
 * MPI, which has its own watchdog.
 *
 * No call waits blindly: the communicator is NCCL's nonblocking kind
 * (NCCL 2.14 and later; older ones block in their calls), and a
 * collective waits for its result by polling NCCL's error state and the
 * stream.  A peer that died or hangs leaves the poll running until the
 * run's --dist-timeout; then NCCL is aborted and the process exits 69,
 * as the MPI watchdog does.  An NCCL error (a peer's network gone, bad
 * usage) ends the process with NCCL's message.  Both exit with _exit:
 * exit()'s handlers would call MPI_Abort with another status, and the
 * launcher ends the other ranks once one exits non-zero.
 *
 * libnccl is loaded with dlopen when a run of several GPU ranks starts
 * (like cuBLAS, cublas_load.cu): a binary built with CUDA runs without
 * it, and only such a run needs it.  Built without nccl.h (DSK_NO_NCCL,
 * set by the Makefile) the open refuses with a message. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cuda_internal.cuh"
extern "C" {
#define _Noreturn [[noreturn]]
#include "comm_nccl.h"
#undef _Noreturn
}

extern "C" int dsk_cuda_rank_device(int local_rank, int local_size, dsk_err *err)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n < 1) {
        (void)cudaGetLastError();
        return 0;   /* dsk_cuda_backend_new says why there is none */
    }
    if (n == 1)
        return 0;   /* the launcher gave each rank its device (CUDA_VISIBLE_DEVICES), or there is one */
    if (local_rank < n)
        return local_rank;
    dsk_fail(err, EX_UNAVAILABLE, "no CUDA device: local rank %d of the %d ranks on this machine, which has %d CUDA "
             "devices: one GPU per rank, so start at most %d ranks a machine", local_rank, local_size, n, n);
    return -1;
}

/* Every rank's status over MPI (dsk_comm_agree): non-zero when any
 * failed; then err holds the message on the one rank that reports. */
static int agree(dsk_comm *mpi, int rc, dsk_err *err)
{
    int report;
    int all = dsk_comm_agree(mpi, rc, rc && err->msg[0], &report);
    if (all && !report) {
        err->code = all;
        err->msg[0] = 0;
    }
    return all;
}

#ifdef DSK_NO_NCCL

extern "C" dsk_comm *dsk_cuda_nccl_open(dsk_comm *mpi, dsk_backend *be, double timeout_s, dsk_err *err)
{
    (void)be;
    (void)timeout_s;
    dsk_fail(err, EX_UNAVAILABLE, "%d GPU ranks need NCCL, but this dsk-train was built without it (nccl.h was not "
             "found at build time): install NCCL's headers (libnccl-dev) and rebuild", mpi->size);
    agree(mpi, EX_UNAVAILABLE, err);
    return NULL;
}

#else

#include <nccl.h>

/* ---- the library -------------------------------------------------------------------------------- */

#define STR_(x) #x
#define STR(x) STR_(x)
#define LIBNAME "libnccl.so." STR(NCCL_MAJOR)

static struct {
    int loaded, nonblocking, version;
    decltype(&ncclGetVersion) GetVersion;
    decltype(&ncclGetUniqueId) GetUniqueId;
    decltype(&ncclCommInitRank) CommInitRank;
    decltype(&ncclCommInitRankConfig) CommInitRankConfig;   /* 2.14+ */
    decltype(&ncclCommFinalize) CommFinalize;               /* 2.14+ */
    decltype(&ncclCommDestroy) CommDestroy;
    decltype(&ncclCommAbort) CommAbort;
    decltype(&ncclCommGetAsyncError) CommGetAsyncError;
    decltype(&ncclGetErrorString) GetErrorString;
    decltype(&ncclGetLastError) GetLastError;               /* 2.13+: the detail behind a code */
    decltype(&ncclAllReduce) AllReduce;
    decltype(&ncclAllGather) AllGather;
    decltype(&ncclReduceScatter) ReduceScatter;
    decltype(&ncclBroadcast) Broadcast;
    decltype(&ncclSend) Send;
    decltype(&ncclRecv) Recv;
    decltype(&ncclGroupStart) GroupStart;
    decltype(&ncclGroupEnd) GroupEnd;
} nccl;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[512];

static void load(void)
{
    void *h = dsk_cuda_dlopen(LIBNAME, load_error, sizeof load_error);
    if (!h)
        return;
    int ok = 1;
#define SYM(field, fn, required)                                                                    \
    do {                                                                                            \
        *(void **)&nccl.field = dlsym(h, STR(fn));                                                  \
        if (!nccl.field && (required) && ok) {                                                      \
            snprintf(load_error, sizeof load_error, "%s has no %s (NCCL older than 2.7?)", LIBNAME, STR(fn)); \
            ok = 0;                                                                                 \
        }                                                                                           \
    } while (0)
    SYM(GetVersion, ncclGetVersion, 1);
    SYM(GetUniqueId, ncclGetUniqueId, 1);
    SYM(CommInitRank, ncclCommInitRank, 1);
    SYM(CommInitRankConfig, ncclCommInitRankConfig, 0);
    SYM(CommFinalize, ncclCommFinalize, 0);
    SYM(CommDestroy, ncclCommDestroy, 1);
    SYM(CommAbort, ncclCommAbort, 1);
    SYM(CommGetAsyncError, ncclCommGetAsyncError, 1);
    SYM(GetErrorString, ncclGetErrorString, 1);
    SYM(GetLastError, ncclGetLastError, 0);
    SYM(AllReduce, ncclAllReduce, 1);
    SYM(AllGather, ncclAllGather, 1);
    SYM(ReduceScatter, ncclReduceScatter, 1);
    SYM(Broadcast, ncclBroadcast, 1);
    SYM(Send, ncclSend, 1);
    SYM(Recv, ncclRecv, 1);
    SYM(GroupStart, ncclGroupStart, 1);
    SYM(GroupEnd, ncclGroupEnd, 1);
#undef SYM
    if (!ok)
        return;
    if (nccl.GetVersion(&nccl.version) != ncclSuccess)
        nccl.version = 0;
    /* The nonblocking communicator, whose calls never wait, came with 2.14. */
    nccl.nonblocking = nccl.CommInitRankConfig && nccl.CommFinalize && nccl.version >= NCCL_VERSION(2, 14, 0);
    nccl.loaded = 1;
    /* The handle stays open for the life of the process. */
}

static int nccl_load(char *why, size_t why_len)
{
    pthread_once(&once, load);
    if (!nccl.loaded)
        snprintf(why, why_len, "%s", load_error);
    return nccl.loaded;
}

/* ---- the communicator's state, waiting, and the ways out -------------------------------------- */

typedef struct nccl_comm {
    dsk_comm *mpi;          /* host memory, the barrier and abort go through it */
    dsk_cuda *cb;           /* the backend: its device and stream */
    ncclComm_t comm;
    int rank, size;
    double timeout_s;       /* > 0: the most a collective waits */
    float *scratch;         /* device: a padded reduce-scatter's or allgather's buffer */
    size_t scratch_len;     /* in floats */
} nccl_comm;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static volatile sig_atomic_t alarm_code;
static void on_alarm(int sig)
{
    (void)sig;
    _exit(alarm_code);
}

/* NCCL's abort stops its kernels and threads without the peers; should
 * it not return, an alarm ends the process with the status meant. */
static void abort_nccl(ncclComm_t comm, int code)
{
    if (!comm)
        return;
    alarm_code = code;
    signal(SIGALRM, on_alarm);
    alarm(10);
    (void)nccl.CommAbort(comm);
    alarm(0);
}

/* Ends this rank: the message, NCCL aborted, _exit(code). */
static void stop_rank(nccl_comm *g, int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));
static void stop_rank(nccl_comm *g, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fprintf(stderr, "%s: rank %d of %d: ", dsk_progname(), g->rank, g->size);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    fflush(stderr);
    va_end(ap);
    abort_nccl(g->comm, code);
    _exit(code);
}

/* NCCL's words for r, with the detail of the last error when it has one. */
static const char *nccl_why(nccl_comm *g, ncclResult_t r, char *buf, size_t len)
{
    const char *last = nccl.GetLastError ? nccl.GetLastError(g->comm) : NULL;
    snprintf(buf, len, "%s%s%s", nccl.GetErrorString(r), last && *last ? ": " : "", last && *last ? last : "");
    return buf;
}

[[noreturn]] static void nccl_failed(nccl_comm *g, ncclResult_t r, const char *op)
{
    char why[512];
    /* A system or remote error is a peer or the network gone: unavailable, as a timeout is. */
    int code = r == ncclSystemError || r == ncclRemoteError ? EX_UNAVAILABLE : EX_SOFTWARE;
    /* NCCL's words often end with a hint to run with NCCL_DEBUG. */
    stop_rank(g, code, "nccl: the %s failed: %s", op, nccl_why(g, r, why, sizeof why));
}

/* A call's immediate result: an error ends the rank; ncclInProgress (a
 * nonblocking communicator working in the background) is for finish. */
static void check(nccl_comm *g, ncclResult_t r, const char *op)
{
    if (r != ncclSuccess && r != ncclInProgress)
        nccl_failed(g, r, op);
}

/* NCCL's state once it has settled (not ncclInProgress), polled until the
 * deadline; stream: also until the backend's stream is idle (the
 * collective done).  Past the deadline the rank stops with status 69. */
static ncclResult_t settle(nccl_comm *g, const char *op, int stream)
{
    double t0 = now_s();
    for (long polls = 0;; polls++) {
        ncclResult_t state = ncclInProgress;
        ncclResult_t q = g->comm ? nccl.CommGetAsyncError(g->comm, &state) : ncclInternalError;
        if (q != ncclSuccess)
            state = q;
        if (state != ncclInProgress) {
            if (state != ncclSuccess || !stream)
                return state;
            cudaError_t e = cudaStreamQuery(g->cb->stream);
            if (e == cudaSuccess)
                return ncclSuccess;
            if (e != cudaErrorNotReady)
                stop_rank(g, EX_SOFTWARE, "cuda: the %s failed on device %d: %s", op, g->cb->device,
                          cudaGetErrorString(e));
            /* "Not ready" may linger as the thread's last error, which the
             * backend's next launch check would take for its own. */
            (void)cudaGetLastError();
        }
        double waited = now_s() - t0;
        if (g->timeout_s > 0 && waited > g->timeout_s)
            stop_rank(g, EX_UNAVAILABLE, "the %s has waited %.0f s for the other ranks (--dist-timeout): a rank has "
                      "died or hangs; stopping", op, waited);
        /* Spin at first (most collectives take micro- to milliseconds), then poll gently. */
        if (polls > 2000)
            usleep(polls > 20000 ? 1000 : 50);
    }
}

/* Waits for the collective that returned r: enqueued, then done. */
static void finish(nccl_comm *g, ncclResult_t r, const char *op)
{
    check(g, r, op);
    ncclResult_t state = settle(g, op, 1);
    if (state != ncclSuccess)
        nccl_failed(g, state, op);
}

static nccl_comm *of(dsk_comm *c)
{
    nccl_comm *g = (nccl_comm *)c->impl;
    dsk_cuda_of(&g->cb->be);   /* its device current for this thread */
    /* A collective writes device memory: gemm's 16-bit copies of it would be stale. */
    dsk_cuda_half_forget(g->cb);
    return g;
}

/* Device scratch of at least n floats (every collective has finished
 * with the old one: each waits for its result; the copies after it are
 * in stream order, hence the synchronize). */
static float *scratch(nccl_comm *g, size_t n)
{
    if (n > g->scratch_len) {
        CUDA_CHECK(cudaStreamSynchronize(g->cb->stream));
        if (g->scratch)
            CUDA_CHECK(cudaFree(g->scratch));
        g->scratch = NULL;
        g->scratch_len = 0;
        if (dsk_cuda_malloc(g->cb, (void **)&g->scratch, n * sizeof(float)) != cudaSuccess) {
            (void)cudaGetLastError();
            dsk_die(EX_OSERR, "nccl: out of device memory allocating %zu bytes of padding for a collective on device "
                    "%d", n * sizeof(float), g->cb->device);
        }
        g->scratch_len = n;
    }
    return g->scratch;
}

/* Device (or managed) memory goes through NCCL, the rest through MPI.
 * Only for allreduce and bcast, which take both (lib/dist/comm.h); a
 * buffer of n > 0 values, so the pointer lies inside its allocation. */
static int on_device(const void *p)
{
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        (void)cudaGetLastError();   /* older CUDA: "invalid value" for plain host memory */
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static ncclDataType_t nccl_type(dsk_comm_type t)
{
    return t == DSK_COMM_F32 ? ncclFloat32 : t == DSK_COMM_F64 ? ncclFloat64 : ncclInt64;
}

/* n floats from src to dst, both on the device, on the backend's stream
 * (in order with the collectives). */
static void copy_floats(nccl_comm *g, float *dst, const float *src, size_t n)
{
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof *dst, cudaMemcpyDeviceToDevice, g->cb->stream));
}

/* How n floats lie over the ranks as equal chunks (lib/dist/comm.h). */
static dsk_comm_pad pad_plan(dsk_comm *c, size_t n)
{
    dsk_comm_pad p;
    dsk_comm_pad_plan(n, c->size, c->rank, &p);
    return p;
}

/* ---- the collectives ------------------------------------------------------------------------------ */

static void g_allreduce(dsk_comm *c, void *buf, size_t n, dsk_comm_type type, dsk_comm_op op)
{
    nccl_comm *g = of(c);
    if (!n)
        return;
    if (!on_device(buf)) {
        g->mpi->allreduce(g->mpi, buf, n, type, op);
        return;
    }
    finish(g, nccl.AllReduce(buf, buf, n, nccl_type(type), op == DSK_COMM_SUM ? ncclSum : ncclMax, g->comm,
                             g->cb->stream), "NCCL allreduce");
}

static void g_allgather(dsk_comm *c, float *buf, size_t n)
{
    nccl_comm *g = of(c);
    if (!n)
        return;
    dsk_comm_pad p = pad_plan(c, n);
    float *work = buf;
    if (!p.exact) {
        /* This rank's part into its chunk of the padded buffer; what
         * lands beyond n is never read. */
        work = scratch(g, p.padded);
        if (p.hi > p.lo)
            copy_floats(g, work + p.at, buf + p.lo, p.hi - p.lo);
    }
    /* In place: the send buffer is this rank's chunk of the receive buffer. */
    finish(g, nccl.AllGather(work + p.at, work, p.chunk, ncclFloat32, g->comm, g->cb->stream), "NCCL allgather");
    if (!p.exact)
        copy_floats(g, buf, work, n);
}

static void g_reduce_scatter(dsk_comm *c, const float *in, float *part, size_t n)
{
    nccl_comm *g = of(c);
    if (!n)
        return;
    cudaStream_t s = g->cb->stream;
    dsk_comm_pad p = pad_plan(c, n);
    if (p.exact) {   /* every part is a whole chunk */
        finish(g, nccl.ReduceScatter(in, part, p.chunk, ncclFloat32, ncclSum, g->comm, s), "NCCL reduce-scatter");
        return;
    }
    /* The values padded with zeros (they add nothing), reduced in place
     * into this rank's chunk, whose first hi - lo values are its part. */
    float *work = scratch(g, p.padded);
    copy_floats(g, work, in, n);
    CUDA_CHECK(cudaMemsetAsync(work + n, 0, (p.padded - n) * sizeof *work, s));
    finish(g, nccl.ReduceScatter(work, work + p.at, p.chunk, ncclFloat32, ncclSum, g->comm, s),
           "NCCL reduce-scatter");
    if (p.hi > p.lo)
        copy_floats(g, part, work + p.at, p.hi - p.lo);
}

/* NCCL has no gather with parts of different sizes: the root receives
 * each part where it belongs, point to point, in one group. */
static void g_gather(dsk_comm *c, const float *part, float *all, size_t n, int root)
{
    nccl_comm *g = of(c);
    if (!n)
        return;
    cudaStream_t s = g->cb->stream;
    size_t lo, hi;
    dsk_comm_part(n, c->size, c->rank, &lo, &hi);
    if (c->rank == root && hi > lo && part != all + lo)
        copy_floats(g, all + lo, part, hi - lo);
    check(g, nccl.GroupStart(), "NCCL gather");
    if (c->rank == root) {
        for (int r = 0; r < c->size; r++) {
            size_t a, b;
            dsk_comm_part(n, c->size, r, &a, &b);
            if (r != root && b > a)
                check(g, nccl.Recv(all + a, b - a, ncclFloat32, r, g->comm, s), "NCCL gather");
        }
    } else if (hi > lo) {
        check(g, nccl.Send(part, hi - lo, ncclFloat32, root, g->comm, s), "NCCL gather");
    }
    finish(g, nccl.GroupEnd(), "NCCL gather");
}

static void g_bcast(dsk_comm *c, void *buf, size_t bytes, int root)
{
    nccl_comm *g = of(c);
    if (!bytes)
        return;
    if (!on_device(buf)) {
        g->mpi->bcast(g->mpi, buf, bytes, root);
        return;
    }
    finish(g, nccl.Broadcast(buf, buf, bytes, ncclUint8, root, g->comm, g->cb->stream), "NCCL broadcast");
}

static void g_barrier(dsk_comm *c)
{
    nccl_comm *g = (nccl_comm *)c->impl;
    g->mpi->barrier(g->mpi);
}

static void g_abort(dsk_comm *c, int code)
{
    nccl_comm *g = (nccl_comm *)c->impl;
    abort_nccl(g->comm, code);
    g->comm = NULL;
    g->mpi->abort(g->mpi, code);
    _exit(code);   /* in case it returns */
}

/* Ends NCCL (every rank together, at the end of the run) and frees c;
 * the MPI communicator stays open. */
static void g_close(dsk_comm *c)
{
    nccl_comm *g = of(c);
    if (nccl.nonblocking) {
        /* Finalize flushes and waits for the peers (polled); destroy then frees at once. */
        finish(g, nccl.CommFinalize(g->comm), "NCCL finalize");
    } else {
        CUDA_CHECK(cudaStreamSynchronize(g->cb->stream));
    }
    ncclResult_t r = nccl.CommDestroy(g->comm);
    if (r != ncclSuccess && r != ncclInProgress) {
        char why[512];
        dsk_warn("rank %d: nccl: ncclCommDestroy: %s", g->rank, nccl_why(g, r, why, sizeof why));
    }
    if (g->scratch)
        CUDA_CHECK(cudaFree(g->scratch));
    free(g);
    free(c);
}

/* ---- opening ------------------------------------------------------------------------------------- */

extern "C" dsk_comm *dsk_cuda_nccl_open(dsk_comm *mpi, dsk_backend *be, double timeout_s, dsk_err *err)
{
    char why[512];
    int rc = 0;
    if (strncmp(be->name, "cuda", 4) != 0)
        rc = dsk_fail(err, EX_SOFTWARE, "NCCL between ranks of the %s backend: GPU (cuda) ranks only (a bug)",
                      be->name);
    else if (!nccl_load(why, sizeof why))
        rc = dsk_fail(err, EX_UNAVAILABLE, "%d GPU ranks need NCCL: %s (install NCCL, e.g. libnccl2, on every "
                      "machine, or put its directory on LD_LIBRARY_PATH)", mpi->size, why);
    if (agree(mpi, rc, err))
        return NULL;

    nccl_comm *g = (nccl_comm *)dsk_xcalloc(1, sizeof *g);
    g->mpi = mpi;
    g->cb = (dsk_cuda *)be;
    g->rank = mpi->rank;
    g->size = mpi->size;
    g->timeout_s = timeout_s;

    /* NCCL's id: made at rank 0, carried over MPI with rank 0's status. */
    struct {
        int32_t rc;
        ncclUniqueId id;
    } hello;
    memset(&hello, 0, sizeof hello);
    if (mpi->rank == 0) {
        ncclResult_t r = nccl.GetUniqueId(&hello.id);
        if (r != ncclSuccess)
            hello.rc = dsk_fail(err, EX_UNAVAILABLE, "nccl: ncclGetUniqueId failed: %s (NCCL_SOCKET_IFNAME names "
                                "the network interface it should use)",
                                nccl_why(g, r, why, sizeof why));
    }
    mpi->bcast(mpi, &hello, sizeof hello, 0);
    if (hello.rc) {
        if (mpi->rank != 0) {
            err->code = hello.rc;
            err->msg[0] = 0;
        }
        free(g);
        return NULL;
    }

    /* Every rank joins on its device; the nonblocking kind returns at
     * once and settle() polls its start-up with the deadline. */
    CUDA_CHECK(cudaSetDevice(g->cb->device));
    ncclResult_t r;
    if (nccl.nonblocking) {
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        r = nccl.CommInitRankConfig(&g->comm, mpi->size, hello.id, mpi->rank, &config);
    } else {
        r = nccl.CommInitRank(&g->comm, mpi->size, hello.id, mpi->rank);
    }
    /* A call that failed at once made no communicator; one that failed
     * while settling has one to abort (which also tells the peers). */
    int made = r == ncclSuccess || r == ncclInProgress;
    if (!made)
        g->comm = NULL;
    else
        r = settle(g, "NCCL start-up", 0);
    if (r != ncclSuccess) {
        rc = dsk_fail(err, EX_UNAVAILABLE, "nccl: rank %d of %d on CUDA device %d could not join the others: %s (one "
                      "GPU per rank: ranks that share a device fail here)", mpi->rank,
                      mpi->size, g->cb->device, nccl_why(g, r, why, sizeof why));
        abort_nccl(g->comm, EX_UNAVAILABLE);
        g->comm = NULL;
    }
    if (agree(mpi, rc, err)) {
        abort_nccl(g->comm, EX_UNAVAILABLE);   /* joined, but another rank did not */
        free(g);
        return NULL;
    }

    dsk_comm *c = (dsk_comm *)dsk_xcalloc(1, sizeof *c);
    c->name = "nccl";
    c->rank = mpi->rank;
    c->size = mpi->size;
    c->local_rank = mpi->local_rank;
    c->local_size = mpi->local_size;
    c->timeout_s = timeout_s;
    c->allreduce = g_allreduce;
    c->allgather = g_allgather;
    c->reduce_scatter = g_reduce_scatter;
    c->gather = g_gather;
    c->bcast = g_bcast;
    c->barrier = g_barrier;
    c->abort = g_abort;
    c->close = g_close;
    c->impl = g;
    return c;
}

#endif
