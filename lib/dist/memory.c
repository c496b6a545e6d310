/* Memory per rank (memory.h): the ZeRO layout's arithmetic, and a
 * counting backend that runs the model's own allocation code without
 * allocating, so the activation figure is what dsk_model_alloc_batch
 * really asks for. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dist/comm.h"
#include "dist/memory.h"

void dsk_mem_plan_model(const dsk_model *m, int world, int stage, dsk_mem_plan *p)
{
    memset(p, 0, sizeof *p);
    size_t n = m->n_params, shard = 0, largest = 0, max_chunk = 0;
    for (int u = 0; u < m->n_units; u++) {
        size_t len = m->unit_lo[u + 1] - m->unit_lo[u], c = dsk_comm_chunk(len, world);
        shard += c;
        if (len > largest)
            largest = len;
        if (c > max_chunk)
            max_chunk = c;
    }
    /* Units are held one at a time, but for the head, which holds the
     * embedding's unit too when lm_head is tied to it. */
    size_t head = m->unit_lo[m->n_units] - m->unit_lo[m->n_units - 1];
    if (m->cfg.tie_embeddings)
        head += m->unit_lo[1] - m->unit_lo[0];
    size_t held = head > largest ? head : largest, f = sizeof(float);
    p->params = (stage == 3 ? shard : n) * f;
    p->params_held = stage == 3 ? held * f : 0;
    p->grads = (stage >= 2 ? shard : n) * f;
    p->grads_held = stage >= 2 ? held * f : 0;
    p->grads_landing = stage >= 2 && world > 1 ? max_chunk * f : 0;
    p->optim = 2 * (stage >= 1 ? shard : n) * f;
}

size_t dsk_mem_plan_total(const dsk_mem_plan *p)
{
    return p->params + p->params_held + p->grads + p->grads_held + p->grads_landing + p->optim + p->acts;
}

/* ---- counting backend ------------------------------------------------------------------------------------ */

static max_align_t nothing;   /* what every counted allocation "returns"; never read or written */

static void *count_alloc(dsk_backend *be, size_t bytes)
{
    *(size_t *)be->impl += bytes;
    return &nothing;
}

static void count_free(dsk_backend *be, void *p) {}
static void count_move(dsk_backend *be, void *dst, const void *src, size_t n) {}
static void count_zero(dsk_backend *be, void *p, size_t n) {}

/* A backend with memory operations only, adding what is allocated to *bytes. */
static void counting(dsk_backend *be, size_t *bytes)
{
    memset(be, 0, sizeof *be);
    be->name = "count";
    be->alloc = count_alloc;
    be->free = count_free;
    be->upload = count_move;
    be->download = count_move;
    be->copy = count_move;
    be->zero = count_zero;
    be->counts_only = 1;
    be->impl = bytes;
}

size_t dsk_mem_activations(const dsk_model_config *c, int B, int T, int recompute, size_t logits_budget)
{
    size_t bytes = 0;
    dsk_backend be;
    counting(&be, &bytes);
    be.logits_budget = logits_budget;
    dsk_model *m = dsk_model_create_hooked(c, &be, DSK_UNIT_PARAMS | DSK_UNIT_GRADS, NULL);
    m->recompute = recompute;
    size_t before = bytes;
    dsk_model_alloc_batch(m, B, T);
    size_t acts = bytes - before;
    dsk_model_free(m);
    return acts;
}

/* ---- printing ----------------------------------------------------------------------------------------------- */

const char *dsk_mem_human(size_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%zu B", bytes);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

void dsk_mem_table(FILE *f, const dsk_model_config *c, const char *name, int B, int T)
{
    size_t none = 0;
    dsk_backend be;
    counting(&be, &none);
    dsk_model *m = dsk_model_create_hooked(c, &be, DSK_UNIT_PARAMS | DSK_UNIT_GRADS, NULL);
    size_t acts = dsk_mem_activations(c, B, T, 0, 0), acts_rc = dsk_mem_activations(c, B, T, 1, 0);
    char a[32], b[32], d[32], e[32], g[32], h[32];
    fprintf(f, "Memory per rank to train %s: %zu parameters (vocabulary %d, %d layers),\n"
            "float32 weights, gradients and AdamW moments, as dsk-train allocates them.\n"
            "Activations: a micro-batch of %d x %d positions on each rank, %s at every\n"
            "world size, %s with --recompute (each layer keeps its input only).\n"
            "Parameters and gradients include the units gathered at once (ZeRO-3), and the\n"
            "unit gradient buffers and the reduce-scatter buffer (ZeRO-2 and 3).\n",
            name, m->n_params, c->vocab_size, c->n_layers, B, T, dsk_mem_human(acts, a, sizeof a),
            dsk_mem_human(acts_rc, b, sizeof b));
    /* The LM head's logits: the cpu's chunks here; a GPU's are larger. */
    size_t gpu = dsk_mem_activations(c, B, T, 0, DSK_LOGITS_BUDGET_GPU);
    if (gpu > acts)
        fprintf(f, "The activations hold the cpu backend's chunks of logits; a GPU rank's hold %s more.\n",
                dsk_mem_human(gpu - acts, a, sizeof a));
    fputc('\n', f);
    fprintf(f, "%6s %5s %12s %12s %12s %12s %12s %12s\n", "ranks", "zero", "parameters", "gradients", "optimizer",
            "activations", "total", "recompute");
    for (int world = 1; world <= 64; world *= 2)
        for (int stage = 0; stage <= 3; stage++) {
            dsk_mem_plan p;
            dsk_mem_plan_model(m, world, stage, &p);
            p.acts = acts;
            size_t total = dsk_mem_plan_total(&p);
            fprintf(f, "%6d %5d %12s %12s %12s %12s %12s %12s\n", world, stage,
                    dsk_mem_human(p.params + p.params_held, a, sizeof a),
                    dsk_mem_human(p.grads + p.grads_held + p.grads_landing, b, sizeof b), dsk_mem_human(p.optim, d, sizeof d),
                    dsk_mem_human(p.acts, e, sizeof e), dsk_mem_human(total, g, sizeof g),
                    dsk_mem_human(total - acts + acts_rc, h, sizeof h));
        }
    dsk_model_free(m);
}
