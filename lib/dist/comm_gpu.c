/* GPU ranks: the device each rank trains on, and the NCCL communicator
 * between them (cuda/comm_nccl.cu).  DSK_HAVE_CUDA is set by the
 * Makefile for this file only when it found nvcc, as for
 * lib/ops/backend_open.c: the sanitizer and fuzz builds, and builds
 * without CUDA, get the refusals below. */
#include <stdio.h>
#include <string.h>

#include "dist/comm.h"
#include "ops/backend.h"
#ifdef DSK_HAVE_CUDA
#include "../../cuda/comm_nccl.h"
#endif

dsk_backend *dsk_comm_backend_new(const dsk_comm *c, const char *name, int threads, dsk_err *err)
{
#ifdef DSK_HAVE_CUDA
    if (c->size > 1 && !strcmp(name, "cuda")) {
        int device = dsk_cuda_rank_device(c->local_rank, c->local_size, err);
        if (device < 0)
            return NULL;
        char spec[32];
        snprintf(spec, sizeof spec, "cuda:%d", device);
        return dsk_backend_new(spec, threads, err);
    }
#endif
    return dsk_backend_new(name, threads, err);
}

dsk_comm *dsk_comm_nccl_open(dsk_comm *mpi, dsk_backend *be, double timeout_s, dsk_err *err)
{
#ifdef DSK_HAVE_CUDA
    return dsk_cuda_nccl_open(mpi, be, timeout_s, err);
#else
    /* Collective like the real one: every rank fails, one speaks. */
    int report;
    dsk_comm_agree(mpi, EX_UNAVAILABLE, 1, &report);
    if (report)
        dsk_fail(err, EX_UNAVAILABLE, "%d GPU ranks need NCCL, but this build has no CUDA (nvcc was not found at "
                 "build time): rebuild with the CUDA toolkit and NCCL, or train on --backend cpu", mpi->size);
    else {
        err->code = EX_UNAVAILABLE;
        err->msg[0] = 0;
    }
    return NULL;
#endif
}
