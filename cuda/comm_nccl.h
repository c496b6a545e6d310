/* NCCL between GPU ranks (cuda/comm_nccl.cu): what lib/dist/comm_gpu.c
 * calls in a build with CUDA.  A C header; lib/dist/comm.h documents the
 * communicator (dsk_comm_nccl_open, dsk_comm_backend_new). */
#ifndef DSK_CUDA_COMM_NCCL_H
#define DSK_CUDA_COMM_NCCL_H

#include "core/err.h"
#include "dist/comm.h"
#include "ops/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The device for a rank with this local rank among local_size ranks on
 * its machine: local_rank, or 0 when the process sees one device only;
 * -1 with err set (EX_UNAVAILABLE, "no CUDA device: ...") when the
 * machine has fewer devices than ranks.  With no device at all it
 * returns 0 and leaves the reason to dsk_cuda_backend_new. */
int dsk_cuda_rank_device(int local_rank, int local_size, dsk_err *err);

/* dsk_comm_nccl_open (lib/dist/comm.h). */
dsk_comm *dsk_cuda_nccl_open(dsk_comm *mpi, dsk_backend *be, double timeout_s, dsk_err *err);

#ifdef __cplusplus
}
#endif

#endif
