/* The communicator of a data-parallel run: the processes taking part and
 * the collectives training needs.
 *
 * Two implementations today: dsk_comm_single() (one process: every
 * collective is a copy or nothing) and dsk_comm_open()'s MPI one
 * (comm_mpi.c, the only file that sees <mpi.h>; processes started by
 * mpirun or srun).  The interface is the one an NCCL implementation for
 * GPU ranks needs too (NCCL's unique id broadcast over MPI at start-up):
 * buffers are device memory of the run's backend (host memory on the
 * CPU), and the vector collectives use one fixed layout, the even split,
 * so equal-sized NCCL calls can implement them on a padded buffer.
 *
 * The even split of n values over S ranks: rank r owns
 * [r*c, min(n, (r+1)*c)) with c = ceil(n / S) (dsk_comm_part); the last
 * ranks' parts may be short or empty.
 *
 * A collective never fails softly: an MPI error ends the job (MPI's
 * default handler), and a collective that waits longer than the
 * watchdog's timeout (a rank died or hangs) ends the process with a
 * message and status 69 (EX_UNAVAILABLE), so a run never hangs. */
#ifndef DSK_DIST_COMM_H
#define DSK_DIST_COMM_H

#include <stddef.h>

#include "core/err.h"

typedef enum { DSK_COMM_F32, DSK_COMM_F64, DSK_COMM_I64 } dsk_comm_type;
typedef enum { DSK_COMM_SUM, DSK_COMM_MAX } dsk_comm_op;

typedef struct dsk_comm dsk_comm;
struct dsk_comm {
    const char *name;                 /* "single", "mpi" */
    int rank, size;                   /* in the run */
    int local_rank, local_size;       /* on this machine */

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
    /* The run ends normally (MPI_Finalize); frees c. */
    void (*close)(dsk_comm *c);
    void *impl;
};

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

/* Every rank's status, agreed: returns the largest rc of all ranks, so
 * that all stop together when any fails.  *report is set to 1 on the one
 * rank whose message should be shown, the lowest of those that failed
 * with a message (has_message), and to 0 on the others. */
int dsk_comm_agree(dsk_comm *c, int rc, int has_message, int *report);

#endif
