/* ZeRO stages 0 to 3 (see zero.h): the shard layout, the model's unit
 * hooks, and the optimizer step over the shards. */
#include <stdlib.h>

#include "dist/zero.h"
#include "dist/zero_internal.h"

/* ---- layout --------------------------------------------------------------------------------------- */

size_t dsk_zero_unit_len(const dsk_zero *z, int u) { return z->model->unit_lo[u + 1] - z->model->unit_lo[u]; }

void dsk_zero_own(const dsk_zero *z, int u, size_t *lo, size_t *hi)
{
    dsk_comm_part(dsk_zero_unit_len(z, u), z->world, z->rank, lo, hi);
}

dsk_zero *dsk_zero_new(dsk_comm *comm, int stage, dsk_backend *be)
{
    dsk_zero *z = dsk_xcalloc(1, sizeof *z);
    z->comm = comm;
    z->be = be;
    z->stage = stage;
    z->rank = comm->rank;
    z->world = comm->size;
    return z;
}

/* ---- the hooks: units in and out ------------------------------------------------------------------- */

/* Bytes held now changed by bytes; the most held so far. */
static void hold(size_t *now, size_t *peak, long long bytes)
{
    *now = (size_t)((long long)*now + bytes);
    if (*now > *peak)
        *peak = *now;
}

static void acquire(void *ctx, dsk_model *m, int u, int what)
{
    dsk_zero *z = ctx;
    dsk_backend *be = z->be;
    size_t len = dsk_zero_unit_len(z, u), a, b;
    dsk_zero_own(z, u, &a, &b);
    if ((what & DSK_UNIT_PARAMS) && z->stage == 3) {
        if (z->held_p[u])
            dsk_die(EX_SOFTWARE, "unit %d's weights acquired twice (a bug)", u);
        float *buf = be->alloc(be, len * sizeof *buf);
        be->copy(be, buf + a, z->p_shard + z->at[u], (b - a) * sizeof *buf);
        if (z->world > 1)
            z->comm->allgather(z->comm, buf, len);
        z->held_p[u] = buf;
        hold(&z->held_p_bytes, &z->peak_p_bytes, (long long)(len * sizeof *buf));
        dsk_model_bind_unit(m, u, DSK_UNIT_PARAMS, buf);
    }
    if ((what & DSK_UNIT_GRADS) && z->stage >= 2) {
        if (z->held_g[u])
            dsk_die(EX_SOFTWARE, "unit %d's gradient acquired twice (a bug)", u);
        float *g = be->alloc(be, len * sizeof *g);   /* zeroed: the pass adds into it */
        z->held_g[u] = g;
        hold(&z->held_g_bytes, &z->peak_g_bytes, (long long)(len * sizeof *g));
        dsk_model_bind_unit(m, u, DSK_UNIT_GRADS, g);
    }
}

static void release(void *ctx, dsk_model *m, int u, int what)
{
    dsk_zero *z = ctx;
    dsk_backend *be = z->be;
    size_t len = dsk_zero_unit_len(z, u), a, b;
    dsk_zero_own(z, u, &a, &b);
    if ((what & DSK_UNIT_GRADS) && z->held_g[u]) {
        float *g = z->held_g[u];
        /* This rank's part of the sum over ranks, added to its shard
         * (micro-batches accumulate there). */
        if (z->world > 1) {
            z->comm->reduce_scatter(z->comm, g, z->scratch, len);
            be->add(be, z->g_shard + z->at[u], z->scratch, b - a);
        } else {
            be->add(be, z->g_shard + z->at[u], g, len);
        }
        be->free(be, g);
        z->held_g[u] = NULL;
        hold(&z->held_g_bytes, &z->peak_g_bytes, -(long long)(len * sizeof *g));
        dsk_model_bind_unit(m, u, DSK_UNIT_GRADS, NULL);
    }
    if ((what & DSK_UNIT_PARAMS) && z->held_p[u]) {
        float *buf = z->held_p[u];
        if (what & DSK_UNIT_WRITEBACK)
            be->copy(be, z->p_shard + z->at[u], buf + a, (b - a) * sizeof *buf);
        be->free(be, buf);
        z->held_p[u] = NULL;
        hold(&z->held_p_bytes, &z->peak_p_bytes, -(long long)(len * sizeof *buf));
        dsk_model_bind_unit(m, u, DSK_UNIT_PARAMS, NULL);
    }
}

dsk_model *dsk_zero_model(dsk_zero *z, const dsk_model_config *cfg)
{
    dsk_unit_hooks hooks = {z, acquire, release};
    int hooked = z->stage == 3 ? DSK_UNIT_PARAMS | DSK_UNIT_GRADS : z->stage == 2 ? DSK_UNIT_GRADS : 0;
    dsk_model *m = z->model = hooked ? dsk_model_create_hooked(cfg, z->be, hooked, &hooks)
                                     : dsk_model_create(cfg, z->be);
    z->at = dsk_xcalloc((size_t)m->n_units, sizeof *z->at);
    size_t max_chunk = 0;
    for (int u = 0; u < m->n_units; u++) {
        size_t c = dsk_comm_chunk(dsk_zero_unit_len(z, u), z->world);
        z->at[u] = z->n_shard;
        z->n_shard += c;
        if (c > max_chunk)
            max_chunk = c;
    }
    z->held_p = dsk_xcalloc((size_t)m->n_units, sizeof *z->held_p);
    z->held_g = dsk_xcalloc((size_t)m->n_units, sizeof *z->held_g);
    if (z->stage == 3)
        z->p_shard = z->be->alloc(z->be, z->n_shard * sizeof(float));
    if (z->stage >= 2) {
        z->g_shard = z->be->alloc(z->be, z->n_shard * sizeof(float));
        if (z->world > 1)
            z->scratch = z->be->alloc(z->be, max_chunk * sizeof(float));
    }
    return m;
}

/* ---- weights and moments in -------------------------------------------------------------------------- */

/* Copies the part of [offset, offset + n) of the parameter vector that
 * this rank owns into a shard array (of parameters or moments). */
typedef struct shard_sink {
    dsk_zero *z;
    float *shard;
} shard_sink;

static void put_shard(void *ctx, size_t offset, const void *values, size_t n)
{
    shard_sink *s = ctx;
    dsk_zero *z = s->z;
    const size_t *unit_lo = z->model->unit_lo;
    for (int u = 0; u < z->model->n_units; u++) {
        size_t a, b;
        dsk_zero_own(z, u, &a, &b);
        a += unit_lo[u];
        b += unit_lo[u];
        size_t lo = offset > a ? offset : a, hi = offset + n < b ? offset + n : b;
        if (lo < hi)
            z->be->upload(z->be, s->shard + z->at[u] + (lo - a), (const char *)values + (lo - offset) * sizeof(float),
                          (hi - lo) * sizeof(float));
    }
}

static void put_shard_f32(void *ctx, size_t offset, const float *values, size_t n)
{
    put_shard(ctx, offset, values, n);
}

void dsk_zero_init_weights(dsk_zero *z, uint64_t seed)
{
    if (z->stage < 3) {
        dsk_model_init_weights(z->model, seed);
        return;
    }
    shard_sink s = {z, z->p_shard};
    dsk_model_init_values(z->model, seed, put_shard_f32, &s);
}

int dsk_zero_load_weights(dsk_zero *z, const char *dir, dsk_err *err)
{
    if (z->stage < 3)
        return dsk_checkpoint_load_weights(dir, z->model, err);
    shard_sink s = {z, z->p_shard};
    return dsk_checkpoint_read_tensors(dir, "model.safetensors", z->model, "", z->model->n_tensors, put_shard, &s, err);
}

dsk_optimizer *dsk_zero_optimizer(dsk_zero *z, const dsk_adamw_opts *o)
{
    z->opt = z->stage == 0 ? dsk_optimizer_create(z->model, o) : dsk_optimizer_create_n(z->model, o, z->n_shard);
    return z->opt;
}

int dsk_zero_load_optimizer(dsk_zero *z, const char *dir, dsk_err *err)
{
    if (z->stage == 0)
        return dsk_checkpoint_load_optimizer(dir, z->opt, err);
    size_t n = 2 * z->model->n_tensors;
    shard_sink m = {z, z->opt->m}, v = {z, z->opt->v};
    int rc = dsk_checkpoint_read_tensors(dir, "optimizer.safetensors", z->model, ".exp_avg", n, put_shard, &m, err);
    if (!rc)
        rc = dsk_checkpoint_read_tensors(dir, "optimizer.safetensors", z->model, ".exp_avg_sq", n, put_shard, &v, err);
    if (!rc)
        rc = dsk_checkpoint_optimizer_step(dir, &z->opt->step, err);
    return rc;
}

/* ---- the step ------------------------------------------------------------------------------------------- */

void dsk_zero_zero_grad(dsk_zero *z)
{
    if (z->stage >= 2)
        z->be->zero(z->be, z->g_shard, z->n_shard * sizeof(float));
    else
        dsk_model_zero_grad(z->model);
}

/* This rank's gradient and parameters for its part [lo + a, lo + b) of unit u. */
static float *own_grad(dsk_zero *z, int u, size_t a)
{
    return z->stage >= 2 ? z->g_shard + z->at[u] : z->model->grads + z->model->unit_lo[u] + a;
}

static float *own_params(dsk_zero *z, int u, size_t a)
{
    return z->stage == 3 ? z->p_shard + z->at[u] : z->model->params + z->model->unit_lo[u] + a;
}

dsk_step_report dsk_zero_step(dsk_zero *z)
{
    dsk_model *m = z->model;
    dsk_backend *be = z->be;
    dsk_comm *c = z->comm;
    if (z->stage <= 1 && z->world > 1)
        c->allreduce(c, m->grads, m->n_params, DSK_COMM_F32, DSK_COMM_SUM);
    if (z->stage == 0)
        return dsk_optimizer_step(z->opt);   /* the same step on every rank */

    /* The global norm from each rank's part. */
    double sumsq = 0;
    for (int u = 0; u < m->n_units; u++) {
        size_t a, b;
        dsk_zero_own(z, u, &a, &b);
        if (b > a)
            sumsq += be->sumsq(be, own_grad(z, u, a), b - a);
    }
    if (z->world > 1)
        c->allreduce(c, &sumsq, 1, DSK_COMM_F64, DSK_COMM_SUM);
    dsk_step_plan plan;
    dsk_step_report rep = dsk_optimizer_begin(z->opt, sumsq, &plan);
    if (rep.skipped)
        return rep;
    for (int u = 0; u < m->n_units; u++) {
        size_t a, b, lo = m->unit_lo[u];
        dsk_zero_own(z, u, &a, &b);
        if (b > a)
            dsk_optimizer_update(z->opt, &plan, lo + a, lo + b, own_params(z, u, a), own_grad(z, u, a), z->at[u]);
    }
    /* Stages 1 and 2 keep every parameter: gather the updated parts. */
    if (z->stage < 3 && z->world > 1)
        for (int u = 0; u < m->n_units; u++) {
            c->allgather(c, m->params + m->unit_lo[u], dsk_zero_unit_len(z, u));
            if (m->be->weights_written)   /* other ranks' updates: the backend's copy of them (cuda) */
                m->be->weights_written(m->be, m->params + m->unit_lo[u], dsk_zero_unit_len(z, u));
        }
    return rep;
}

/* ---- memory ------------------------------------------------------------------------------------------- */

void dsk_zero_memory(const dsk_zero *z, dsk_mem_plan *plan, size_t *peak_params_held, size_t *peak_grads_held)
{
    dsk_mem_plan_model(z->model, z->world, z->stage, plan);
    *peak_params_held = z->peak_p_bytes;
    *peak_grads_held = z->peak_g_bytes;
}

void dsk_zero_free(dsk_zero *z)
{
    if (!z)
        return;
    dsk_backend *be = z->be;
    dsk_optimizer_free(z->opt);
    float *bufs[] = {z->p_shard, z->g_shard, z->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i])
            be->free(be, bufs[i]);
    if (z->model)
        for (int u = 0; u < z->model->n_units; u++) {
            if (z->held_p[u])
                be->free(be, z->held_p[u]);
            if (z->held_g[u])
                be->free(be, z->held_g[u]);
        }
    free(z->held_p);
    free(z->held_g);
    free(z->at);
    free(z);
}
