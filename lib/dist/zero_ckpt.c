/* Consolidated checkpoints of a sharded run: rank 0 gathers the
 * parameters and Adam's moments unit by unit into host arrays laid out
 * as the parameters, and writes the same files one process would. */
#include <stdlib.h>
#include <string.h>

#include "dist/zero_internal.h"

/* A shard array (this rank's parts) gathered whole into host at rank 0;
 * collective.  dev: rank 0's staging buffer for the largest unit. */
static void gather_to_host(dsk_zero *z, const float *shard, float *host, float *dev)
{
    dsk_model *m = z->model;
    dsk_backend *be = z->be;
    for (int u = 0; u < m->n_units; u++) {
        size_t len = dsk_zero_unit_len(z, u), a, b;
        dsk_zero_own(z, u, &a, &b);
        if (z->world > 1)
            z->comm->gather(z->comm, shard + z->at[u], dev, len, 0);
        else
            be->copy(be, dev, shard + z->at[u], len * sizeof *dev);
        if (z->rank == 0)
            be->download(be, host + m->unit_lo[u], dev, len * sizeof *dev);
    }
}

static size_t largest_unit(const dsk_zero *z)
{
    size_t largest = 0;
    for (int u = 0; u < z->model->n_units; u++)
        if (dsk_zero_unit_len(z, u) > largest)
            largest = dsk_zero_unit_len(z, u);
    return largest;
}

/* A full array (every rank holds the same) to host at rank 0. */
static void download_full(dsk_zero *z, const float *full, float *host)
{
    if (z->rank == 0)
        z->be->download(z->be, host, full, z->model->n_params * sizeof *host);
}

void dsk_zero_gather_params(dsk_zero *z, float *host)
{
    if (z->stage < 3) {
        download_full(z, z->model->params, host);
        return;
    }
    float *dev = z->rank == 0 ? z->be->alloc(z->be, largest_unit(z) * sizeof *dev) : NULL;
    gather_to_host(z, z->p_shard, host, dev);
    if (dev)
        z->be->free(z->be, dev);
}

int dsk_zero_save(dsk_zero *z, const char *out, const dsk_train_state *st, const char *tokenizer, int keep,
                  dsk_err *err)
{
    dsk_model *m = z->model;
    dsk_optimizer *opt = z->opt;
    if (z->world == 1 && z->stage == 0)
        return dsk_checkpoint_save(out, m, opt, st, tokenizer, keep, err);
    dsk_backend *be = z->be;
    float *host_p = NULL, *host_m = NULL, *host_v = NULL, *dev = NULL;
    if (z->rank == 0) {
        host_p = dsk_xmalloc(m->n_params * sizeof *host_p);
        host_m = dsk_xmalloc(m->n_params * sizeof *host_m);
        host_v = dsk_xmalloc(m->n_params * sizeof *host_v);
        dev = be->alloc(be, largest_unit(z) * sizeof *dev);
    }
    if (z->stage == 3)
        gather_to_host(z, z->p_shard, host_p, dev);
    else
        download_full(z, m->params, host_p);
    if (z->stage == 0) {
        download_full(z, opt->m, host_m);
        download_full(z, opt->v, host_v);
    } else {
        gather_to_host(z, opt->m, host_m, dev);
        gather_to_host(z, opt->v, host_v, dev);
    }
    int rc = 0;
    if (z->rank == 0)
        rc = dsk_checkpoint_save_host(out, m, host_p, opt, host_m, host_v, st, tokenizer, keep, err);
    /* Every rank goes on (or stops) with rank 0's status. */
    z->comm->bcast(z->comm, &rc, sizeof rc, 0);
    if (rc && z->rank != 0) {
        err->code = rc;
        err->msg[0] = 0;
    }
    if (dev)
        be->free(be, dev);
    free(host_p);
    free(host_m);
    free(host_v);
    return rc;
}
