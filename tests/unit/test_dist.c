/* Data parallelism without MPI: the even split, agreement on a status,
 * the model's units, and ZeRO's machinery on one rank (hooked units,
 * shards, the optimizer over ranges, the memory plan) against the
 * resident model.  The MPI side is tests/cli/test_dsk_train_dist.sh. */
#include "core/rng.h"
#include "dist/comm.h"
#include "dist/memory.h"
#include "dist/zero.h"
#include "model/model.h"
#include "train/optim.h"
#include "test.h"

enum { B = 2, TT = 8, V = 29 };

TEST(even_split)
{
    size_t lo, hi;
    CHECK(dsk_comm_chunk(10, 3) == 4);
    dsk_comm_part(10, 3, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 4);
    dsk_comm_part(10, 3, 2, &lo, &hi);
    CHECK(lo == 8 && hi == 10);
    /* More ranks than values: the last parts are empty. */
    dsk_comm_part(2, 4, 1, &lo, &hi);
    CHECK(lo == 1 && hi == 2);
    dsk_comm_part(2, 4, 3, &lo, &hi);
    CHECK(lo == 2 && hi == 2);
    dsk_comm_part(7, 1, 0, &lo, &hi);
    CHECK(lo == 0 && hi == 7 && dsk_comm_chunk(7, 1) == 7);
    dsk_comm_part(0, 2, 1, &lo, &hi);
    CHECK(lo == 0 && hi == 0);
}

TEST(agree_single)
{
    dsk_comm *c = dsk_comm_single();
    int report = -1;
    CHECK(c->rank == 0 && c->size == 1 && c->local_size == 1);
    CHECK(dsk_comm_agree(c, 0, 0, &report) == 0 && report == 0);
    CHECK(dsk_comm_agree(c, 65, 1, &report) == 65 && report == 1);
    CHECK(dsk_comm_agree(c, 74, 0, &report) == 74 && report == 0);
    float in[3] = {1, 2, 3}, part[3] = {0};
    c->reduce_scatter(c, in, part, 3);
    CHECK(part[0] == 1 && part[2] == 3);
    c->close(c);
}

static dsk_model_config config(int tie, int moe)
{
    dsk_model_config c;
    CHECK(dsk_config_preset(&c, moe ? "nano-moe" : "nano") == 0);
    c.vocab_size = V;
    c.n_layers = 3;
    c.tie_embeddings = tie;
    c.max_seq_len = TT;
    if (moe)
        c.router_noise = DSK_NOISE_NONE;
    dsk_err err = {0};
    CHECK(dsk_config_validate(&c, &err) == 0);
    return c;
}

TEST(units_cover_the_parameters)
{
    dsk_backend *be = dsk_backend_cpu(1);
    for (int tie = 0; tie < 2; tie++) {
        dsk_model_config c = config(tie, 1);
        dsk_model *m = dsk_model_create(&c, be);
        CHECK(m->n_units == c.n_layers + 2 && m->unit_lo[0] == 0 && m->unit_lo[m->n_units] == m->n_params);
        for (size_t i = 0; i < m->n_tensors; i++) {
            const dsk_tensor_info *t = &m->tensors[i];
            int u = 0;
            while (u < m->n_units && !(t->offset >= m->unit_lo[u] && t->offset < m->unit_lo[u + 1]))
                u++;
            CHECK(u < m->n_units && t->offset + t->numel <= m->unit_lo[u + 1]);   /* whole in one unit */
            int layer;
            if (sscanf(t->name, "model.layers.%d.", &layer) == 1)
                CHECK(u == dsk_model_layer_unit(layer));
            else if (strstr(t->name, "embed_tokens"))
                CHECK(u == 0);
            else
                CHECK(u == c.n_layers + 1);
        }
        dsk_model_free(m);
    }
    be->destroy(be);
}

static int32_t tokens[B * TT], targets[B * TT], pos[B * TT];

static void batch(dsk_model *m)
{
    dsk_rng r;
    dsk_rng_seed(&r, 11);
    for (int i = 0; i < B * TT; i++) {
        tokens[i] = (int32_t)(dsk_rng_next(&r) % V);
        targets[i] = i % 6 == 5 ? -1 : (int32_t)(dsk_rng_next(&r) % V);
        pos[i] = i % TT;
    }
    dsk_batch b = {B, TT, tokens, targets, pos, NULL};
    dsk_err err = {0};
    CHECK(dsk_model_set_batch(m, &b, &err) == 0);
}

/* One forward and backward pass; the loss. */
static double pass(dsk_model *m)
{
    batch(m);
    m->moe_run.train = 1;
    dsk_model_forward(m, 0.01f);
    dsk_model_backward(m);
    return m->loss_sum;
}

/* ZeRO-2 and ZeRO-3 on one rank: the units go in and out through the
 * hooks, the shards are the whole vector, and the loss, the gradients and
 * a step's weights are those of the resident model. */
TEST(zero_on_one_rank_is_the_resident_model)
{
    dsk_backend *be = dsk_backend_cpu(1);
    for (int variant = 0; variant < 3; variant++) {
        int tie = variant == 1, moe = variant == 2;
        dsk_model_config c = config(tie, moe);
        dsk_model *ref = dsk_model_create(&c, be);
        dsk_model_init_weights(ref, 5);
        dsk_model_alloc_batch(ref, B, TT);
        dsk_model_zero_grad(ref);
        double want = pass(ref);
        dsk_adamw_opts ao;
        dsk_adamw_defaults(&ao);
        ao.warmup = 0;
        ao.clip = 0.5;   /* clipping applies: the global norm must be right */
        dsk_optimizer *opt = dsk_optimizer_create(ref, &ao);
        dsk_step_report want_rep = dsk_optimizer_step(opt);
        for (int stage = 1; stage <= 3; stage++) {
            dsk_comm *comm = dsk_comm_single();
            dsk_zero *z = dsk_zero_new(comm, stage, be);
            dsk_model *m = dsk_zero_model(z, &c);
            CHECK((m->params == NULL) == (stage == 3) && (m->grads == NULL) == (stage >= 2));
            dsk_zero_init_weights(z, 5);
            dsk_model_alloc_batch(m, B, TT);
            dsk_zero_optimizer(z, &ao);
            dsk_zero_zero_grad(z);
            CHECK_NEAR(pass(m), want, 1e-9 * fabs(want));
            dsk_step_report rep = dsk_zero_step(z);
            CHECK_NEAR(rep.grad_norm, want_rep.grad_norm, 1e-6 * want_rep.grad_norm);
            CHECK(!rep.skipped);
            /* The stepped weights, gathered as a checkpoint would. */
            float *got = dsk_xmalloc(m->n_params * sizeof *got);
            dsk_zero_gather_params(z, got);
            double worst = 0;
            for (size_t i = 0; i < m->n_params; i++)
                worst = fmax(worst, fabs(got[i] - ref->params[i]));
            CHECK(worst < 1e-6);
            /* What was held at once is what the memory plan says. */
            dsk_mem_plan plan;
            size_t peak_p, peak_g;
            dsk_zero_memory(z, &plan, &peak_p, &peak_g);
            CHECK(peak_p == plan.params_held && peak_g == plan.grads_held);
            CHECK(plan.optim == 2 * m->n_params * sizeof(float));
            CHECK(stage < 3 || (peak_p > 0 && peak_p < m->n_params * sizeof(float)));
            free(got);
            dsk_zero_free(z);
            dsk_model_free(m);
            comm->close(comm);
        }
        dsk_optimizer_free(opt);
        dsk_model_free(ref);
    }
    be->destroy(be);
}

/* The optimizer over ranges that cut tensors is the whole step. */
TEST(optimizer_update_by_ranges)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model_config c = config(0, 0);
    dsk_model *a = dsk_model_create(&c, be), *b = dsk_model_create(&c, be);
    dsk_model_init_weights(a, 3);
    dsk_model_init_weights(b, 3);
    dsk_rng r;
    dsk_rng_seed(&r, 4);
    for (size_t i = 0; i < a->n_params; i++)
        a->grads[i] = b->grads[i] = (float)(dsk_rng_normal(&r) * 0.1);
    dsk_adamw_opts ao;
    dsk_adamw_defaults(&ao);
    ao.warmup = 0;
    dsk_optimizer *oa = dsk_optimizer_create(a, &ao), *ob = dsk_optimizer_create(b, &ao);
    dsk_optimizer_step(oa);
    dsk_step_plan plan;
    dsk_optimizer_begin(ob, be->sumsq(be, b->grads, b->n_params), &plan);
    size_t cut[] = {0, 7, 1000, b->n_params / 2 + 3, b->n_params};
    for (int i = 0; i < 4; i++)
        dsk_optimizer_update(ob, &plan, cut[i], cut[i + 1], b->params + cut[i], b->grads + cut[i], cut[i]);
    CHECK(memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0);
    CHECK(memcmp(oa->v, ob->v, a->n_params * sizeof(float)) == 0 && oa->step == ob->step);
    dsk_optimizer_free(oa);
    dsk_optimizer_free(ob);
    dsk_model_free(a);
    dsk_model_free(b);
    be->destroy(be);
}

TEST(memory_plan)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model_config c = config(1, 0);
    dsk_model *m = dsk_model_create(&c, be);
    size_t n = m->n_params * sizeof(float);
    dsk_mem_plan p;
    dsk_mem_plan_model(m, 4, 0, &p);
    CHECK(p.params == n && p.grads == n && p.optim == 2 * n && p.params_held == 0 && p.grads_held == 0);
    dsk_mem_plan_model(m, 4, 3, &p);
    CHECK(p.params >= n / 4 && p.params < n / 4 + (size_t)m->n_units * sizeof(float));
    /* Tied: the head holds the embedding with it. */
    size_t head = (m->unit_lo[m->n_units] - m->unit_lo[m->n_units - 1] + m->unit_lo[1]) * sizeof(float);
    CHECK(p.params_held >= head && p.grads_held == p.params_held);
    /* Activations: linear in the rows. */
    size_t one = dsk_mem_activations(&c, 1, TT, 0, 0), two = dsk_mem_activations(&c, 2, TT, 0, 0);
    CHECK(one > 0 && two == 2 * one);
    /* Recomputation keeps one layer's set, not n_layers of them. */
    size_t rc = dsk_mem_activations(&c, 1, TT, 1, 0);
    CHECK(rc > 0 && rc < one);
    char buf[32];
    CHECK_STR(dsk_mem_human(3 << 20, buf, sizeof buf), "3.0 MiB");
    CHECK_STR(dsk_mem_human(512, buf, sizeof buf), "512 B");
    dsk_model_free(m);
    be->destroy(be);
}

RUN_TESTS(T(even_split), T(agree_single), T(units_cover_the_parameters), T(zero_on_one_rank_is_the_resident_model),
          T(optimizer_update_by_ranges), T(memory_plan))
