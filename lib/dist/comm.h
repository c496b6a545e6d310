/* The communicator of a data-parallel run: the processes taking part and
 * the collectives training needs.
 *
 * Three implementations: dsk_comm_single() (one process: every
 * collective is a copy or nothing), dsk_comm_open()'s MPI one
 * (comm_mpi.c, the only file that sees <mpi.h>; processes started by
 * mpirun or srun), and dsk_comm_nccl_open()'s NCCL one for GPU ranks
 * (cuda/comm_nccl.cu), which wraps the MPI one: NCCL's unique id is
 * broadcast over MPI at start-up, and whatever lies in host memory still
 * goes through MPI.
 *
 * Buffers: the vector collectives (allgather, reduce_scatter, gather)
 * take memory of the run's backend: device memory on a GPU, host memory
 * on the CPU.  allreduce and bcast take either backend memory or host
 * memory (statistics, status codes, a random state): the NCCL
 * communicator asks CUDA which one a pointer is (cudaPointerGetAttributes)
 * and sends device memory through NCCL, host memory through MPI.  Every
 * rank must pass the same kind of memory to a collective, or each would
 * wait in another library.
 *
 * The even split of n values over S ranks: rank r owns
 * [r*c, min(n, (r+1)*c)) with c = ceil(n / S) (dsk_comm_part); the last
 * ranks' parts may be short or empty.  NCCL's reduce-scatter and
 * allgather move S equal chunks of c values: when S*c > n they run on a
 * scratch buffer padded to S*c (dsk_comm_pad_plan).
 *
 * A collective never fails softly: an MPI error ends the job (MPI's
 * default handler), an NCCL error ends the process with a message, and
 * a collective that waits longer than the watchdog's timeout (a rank
 * died or hangs) ends the process with a message and status 69
 * (EX_UNAVAILABLE), so a run never hangs. */
#ifndef DSK_DIST_COMM_H
#define DSK_DIST_COMM_H

#include <stddef.h>

#include "core/err.h"

struct dsk_backend;

typedef enum { DSK_COMM_F32, DSK_COMM_F64, DSK_COMM_I64 } dsk_comm_type;
typedef enum { DSK_COMM_SUM, DSK_COMM_MAX } dsk_comm_op;

typedef struct dsk_comm dsk_comm;
struct dsk_comm {
    const char *name;                 /* "single", "mpi", "nccl" */
    int rank, size;                   /* in the run */
    int local_rank, local_size;       /* on this machine */
    double timeout_s;                 /* the watchdog's (--dist-timeout); 0: none */

    /* buf[0, n) of every rank reduced elementwise; every rank gets the result. */
    void (*allreduce)(dsk_comm *c, void *buf, size_t n, dsk_comm_type type, dsk_comm_op op);
    /* In place: each rank's part of buf[0, n) in, all of buf out. */
    void (*allgather)(dsk_comm *c, float *buf, size_t n);
    /* Sums in[0, n) over the ranks; part gets this rank's part of the sum. */
    void (*reduce_scatter)(dsk_comm *c, const float *in, float *part, size_t n);
    /* Each rank's part (its dsk_comm_part of n values) into all[0, n) at
     * root; all is only read at root, and part may already lie in it. */
    void (*gather)(dsk_comm *c, const float *part, float *all, size_t n, int root);
    void (*bcast)(dsk_comm *c, void *buf, size_t bytes, int root);
    void (*barrier)(dsk_comm *c);
    /* Ends every process of the run with status code (does not return). */
    void (*abort)(dsk_comm *c, int code);
    /* The run ends normally (MPI_Finalize); frees c.  The NCCL
     * communicator's close ends NCCL only: the MPI one it wraps stays
     * open, its caller's to close. */
    void (*close)(dsk_comm *c);
    void *impl;
};

/* This process's rank as its launcher (mpirun, srun with PMIx or PMI)
 * set it in the environment, before MPI starts; -1 when none did. */
int dsk_comm_launcher_rank(void);
/* How many programs (app contexts: mpirun A : B) the launcher started, as
 * far as its environment says (1 when it does not): with one, every rank
 * has the same command line. */
int dsk_comm_launcher_apps(void);

/* The one-process communicator (never fails; close frees it). */
dsk_comm *dsk_comm_single(void);

/* The communicator this process was started into: MPI when a launcher
 * (mpirun, srun) started it, else dsk_comm_single() without touching MPI.
 * timeout_s > 0 arms the watchdog: a collective waiting that long ends
 * the process (status 69).  NULL with err set when MPI cannot start, or
 * when this build has no MPI and a launcher asks for several ranks. */
dsk_comm *dsk_comm_open(double timeout_s, dsk_err *err);

/* Threads for this rank when none are asked for: 0 (OpenMP's default)
 * for the only rank on its machine; else the CPUs the launcher bound it
 * to, or, unbound, the machine's CPUs shared among its ranks. */
int dsk_comm_default_threads(const dsk_comm *c);

/* The even split: this rank's part [*lo, *hi) of n values (maybe empty). */
size_t dsk_comm_chunk(size_t n, int size);
void dsk_comm_part(size_t n, int size, int rank, size_t *lo, size_t *hi);

/* An equal-count collective (NCCL's reduce-scatter, allgather) doing the
 * even split of n values over size ranks: chunk values from or to each
 * rank, in a buffer of padded = size * chunk values where this rank's
 * chunk starts at at = rank * chunk and holds its part [lo, hi) of the n
 * values first (lo == at unless the part is empty).  exact: padded ==
 * n, so the caller's buffer serves; else a scratch buffer of padded
 * values does, its tail [n, padded) zeros for a sum, ignored by a gather. */
typedef struct dsk_comm_pad {
    size_t chunk, padded, at, lo, hi;
    int exact;
} dsk_comm_pad;
void dsk_comm_pad_plan(size_t n, int size, int rank, dsk_comm_pad *p);

/* The backend of this rank: dsk_backend_new(name), except that a plain
 * "cuda" with several ranks picks the device of the rank's local rank
 * (one GPU per rank), or device 0 where the launcher left each rank one
 * visible device (CUDA_VISIBLE_DEVICES per rank).  "cuda:N" is taken as
 * it is.  NULL with err set, as dsk_backend_new. */
struct dsk_backend *dsk_comm_backend_new(const dsk_comm *c, const char *name, int threads, dsk_err *err);

/* Collective over mpi (an MPI communicator of several ranks, each with
 * its cuda backend be): NCCL between the ranks' devices, on be's stream,
 * wrapped around mpi (see above; close it before be and mpi).  An NCCL
 * collective waits for its result by polling the stream and NCCL's
 * error state, at most timeout_s (> 0) seconds: then it aborts NCCL and
 * ends the process with status 69, as the MPI watchdog does.  NULL with
 * err set on every rank when any rank fails (libnccl.so.2 missing, NCCL's
 * start-up failing; a build without CUDA or NCCL), the message on one
 * rank only, as dsk_comm_agree chooses. */
dsk_comm *dsk_comm_nccl_open(dsk_comm *mpi, struct dsk_backend *be, double timeout_s, dsk_err *err);

/* Every rank's status, agreed: returns the largest rc of all ranks, so
 * that all stop together when any fails.  *report is set to 1 on the one
 * rank whose message should be shown, the lowest of those that failed
 * with a message (has_message), and to 0 on the others. */
int dsk_comm_agree(dsk_comm *c, int rc, int has_message, int *report);

#endif
