/* ref_dump: writes what tests/torch/ref_model.py compares against a
 * PyTorch re-implementation of the model:
 *
 *   ref_dump CONFIG_JSON OUT_DIR [B T SEED STEPS]
 *
 * OUT_DIR/config.json           the model's config
 * OUT_DIR/model.safetensors     the initial weights (seeded)
 * OUT_DIR/batch.safetensors     tokens, targets (-1 = none), pos, weights
 * OUT_DIR/out.safetensors       logits, loss (mean over targets), aux_loss
 *                               (the MoE balancing losses, summed over the
 *                               layers; 0 unless DSK_REF_TRAIN), and the
 *                               gradient of every tensor as grad.NAME; with
 *                               MoE layers and DSK_REF_TRAIN also
 *                               moe.selected [L, E] and moe.dropped [L], the
 *                               gradient pass's selections per expert and
 *                               dropped (token, expert) pairs (0 for dense
 *                               layers), and __metadata__ moe_train
 * OUT_DIR/after.safetensors     the weights after STEPS AdamW steps on
 *                               the same batch (lr 1e-3, no warmup,
 *                               weight decay 0.1, clip 1.0)
 * OUT_DIR/generate.safetensors  logits of the KV-cache generator, one
 *                               row per position of batch row 0
 *
 * Environment (MoE models):
 *   DSK_REF_TRAIN=1      every batch forward for the logits, gradients
 *                        and AdamW steps runs in training mode
 *                        (moe_run.train = 1: capacity dropping and the
 *                        balancing losses, whose gradients are included,
 *                        aux_grad_scale 1) without router noise (rng
 *                        NULL).  The generator and the batch forward it
 *                        is compared with stay in inference mode.
 *   DSK_REF_BIAS_STD=S   e_score_correction_bias (balance bias) starts
 *                        as S * N(0, 1) instead of 0, so that it moves
 *                        the selections. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/generate.h"
#include "model/model.h"
#include "model/safetensors.h"
#include "train/optim.h"

static void die_if(int rc, const dsk_err *err)
{
    if (rc) {
        fprintf(stderr, "ref_dump: %s\n", err->msg);
        exit(1);
    }
}

static char *path(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static void write_params(const dsk_model *m, const float *dev, const char *prefix, dsk_st_writer *w, float **keep)
{
    float *host = malloc(m->n_params * sizeof *host);
    m->be->download(m->be, host, dev, m->n_params * sizeof *host);
    for (size_t i = 0; i < m->n_tensors; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s%s", prefix, m->tensors[i].name);
        dsk_st_writer_add(w, name, DSK_ST_F32, m->tensors[i].ndim, m->tensors[i].shape, host + m->tensors[i].offset);
    }
    *keep = host;
}

/* The MoE knobs of the next forward: training mode (capacity, balancing
 * losses and their gradients, statistics) without router noise, its
 * statistics reset, or inference mode. */
static void train_mode(dsk_model *m, int train)
{
    m->moe_run.train = train;
    m->moe_run.rng = NULL;
    m->moe_run.aux_grad_scale = 1.0f;
    if (m->moe_stats)
        for (int l = 0; l < m->cfg.n_layers; l++)
            if (dsk_config_layer_is_moe(&m->cfg, l))
                dsk_moe_stats_reset(&m->moe_stats[l], &m->cfg);
}

static void save(dsk_st_writer *w, const char *dir, const char *name)
{
    dsk_err err = {0};
    char *p = path(dir, name);
    die_if(dsk_st_writer_write(w, p, &err), &err);
    dsk_st_writer_free(w);
    free(p);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 7) {
        fprintf(stderr, "usage: ref_dump CONFIG_JSON OUT_DIR [B T SEED STEPS]\n");
        return 64;
    }
    int B = argc == 7 ? atoi(argv[3]) : 2, T = argc == 7 ? atoi(argv[4]) : 16;
    uint64_t seed = argc == 7 ? strtoull(argv[5], NULL, 10) : 1;
    int steps = argc == 7 ? atoi(argv[6]) : 3;
    const char *out = argv[2];
    dsk_err err = {0};
    dsk_model_config cfg;
    die_if(dsk_config_load(&cfg, argv[1], &err), &err);
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = dsk_model_create(&cfg, be);
    dsk_model_init_weights(m, seed);
    m->head_rows = INT_MAX;   /* the whole batch's logits are read */
    dsk_model_alloc_batch(m, B, T);
    const char *env = getenv("DSK_REF_TRAIN");
    int moe_train = env && atoi(env) != 0;
    env = getenv("DSK_REF_BIAS_STD");
    if (env && atof(env) > 0) {
        dsk_rng br;
        dsk_rng_seed(&br, seed + 200);
        for (size_t i = 0; i < m->n_tensors; i++) {
            const dsk_tensor_info *t = &m->tensors[i];
            if (!strstr(t->name, "e_score_correction_bias"))
                continue;
            float *host = malloc(t->numel * sizeof *host);
            for (size_t j = 0; j < t->numel; j++)
                host[j] = (float)(atof(env) * dsk_rng_normal(&br));
            be->upload(be, m->params + t->offset, host, t->numel * sizeof *host);
            free(host);
        }
    }

    dsk_buf text = {0};
    dsk_config_write(&cfg, &text);
    char *p = path(out, "config.json");
    die_if(dsk_write_file(p, &text, &err), &err);
    free(p);
    dsk_buf_free(&text);

    float *w0;
    dsk_st_writer *w = dsk_st_writer_new();
    dsk_st_writer_meta(w, "format", "pt");
    write_params(m, m->params, "", w, &w0);
    save(w, out, "model.safetensors");

    size_t n = (size_t)B * T;
    int32_t *tokens = malloc(n * 4), *targets = malloc(n * 4), *pos = malloc(n * 4);
    float *weights = malloc(n * 4);
    dsk_rng r;
    dsk_rng_seed(&r, seed + 100);
    for (size_t i = 0; i < n; i++) {
        int t = (int)(i % (size_t)T), row = (int)(i / (size_t)T);
        tokens[i] = (int32_t)(dsk_rng_next(&r) % (uint64_t)cfg.vocab_size);
        targets[i] = i % 9 == 8 ? -1 : (int32_t)(dsk_rng_next(&r) % (uint64_t)cfg.vocab_size);
        /* Row 1 onwards: a second document from T/3. */
        pos[i] = row == 0 || t < T / 3 ? t : t - T / 3;
        weights[i] = i % 11 == 5 ? 0.0f : 1.0f;
    }
    dsk_batch batch = {B, T, tokens, targets, pos, weights};
    die_if(dsk_model_set_batch(m, &batch, &err), &err);
    w = dsk_st_writer_new();
    int64_t shape[2] = {B, T};
    dsk_st_writer_add(w, "tokens", DSK_ST_I32, 2, shape, tokens);
    dsk_st_writer_add(w, "targets", DSK_ST_I32, 2, shape, targets);
    dsk_st_writer_add(w, "pos", DSK_ST_I32, 2, shape, pos);
    dsk_st_writer_add(w, "weights", DSK_ST_F32, 2, shape, weights);
    save(w, out, "batch.safetensors");

    /* Logits first (the fused loss overwrites them with their gradient). */
    size_t V = (size_t)cfg.vocab_size;
    float *logits = malloc(n * V * sizeof *logits);
    train_mode(m, moe_train);
    dsk_model_forward(m, 0);
    be->download(be, logits, m->logits, n * V * sizeof *logits);
    dsk_model_zero_grad(m);
    train_mode(m, moe_train);
    dsk_model_forward(m, (float)(1.0 / m->n_targets));
    dsk_model_backward(m);
    float loss = (float)(m->loss_sum / m->n_targets), aux = (float)m->aux_loss;
    float *g;
    w = dsk_st_writer_new();
    dsk_st_writer_meta(w, "moe_train", moe_train ? "1" : "0");
    int64_t lshape[3] = {B, T, (int64_t)V};
    dsk_st_writer_add(w, "logits", DSK_ST_F32, 3, lshape, logits);
    dsk_st_writer_add(w, "loss", DSK_ST_F32, 0, NULL, &loss);
    dsk_st_writer_add(w, "aux_loss", DSK_ST_F32, 0, NULL, &aux);
    int E = cfg.n_routed_experts, L = cfg.n_layers;
    int32_t *selected = calloc((size_t)L * (E > 0 ? E : 1), sizeof *selected);
    int32_t *dropped = calloc((size_t)L, sizeof *dropped);
    if (E > 0 && moe_train) {
        /* The statistics since the reset: this one gradient forward. */
        for (int l = 0; l < L; l++)
            if (dsk_config_layer_is_moe(&cfg, l)) {
                for (int e = 0; e < E; e++)
                    selected[(size_t)l * E + e] = (int32_t)m->moe_stats[l].selected[e];
                dropped[l] = (int32_t)m->moe_stats[l].dropped;
            }
        int64_t sshape[2] = {L, E}, dshape[1] = {L};
        dsk_st_writer_add(w, "moe.selected", DSK_ST_I32, 2, sshape, selected);
        dsk_st_writer_add(w, "moe.dropped", DSK_ST_I32, 1, dshape, dropped);
    }
    write_params(m, m->grads, "grad.", w, &g);
    save(w, out, "out.safetensors");

    dsk_adamw_opts ao;
    dsk_adamw_defaults(&ao);
    ao.lr = 1e-3;
    ao.warmup = 0;
    ao.total_steps = 0;   /* constant lr */
    dsk_optimizer *opt = dsk_optimizer_create(m, &ao);
    for (int s = 0; s < steps; s++) {
        if (s > 0) {
            dsk_model_zero_grad(m);
            train_mode(m, moe_train);
            dsk_model_forward(m, (float)(1.0 / m->n_targets));
            dsk_model_backward(m);
        }
        dsk_optimizer_step(opt);
    }
    float *w1;
    w = dsk_st_writer_new();
    write_params(m, m->params, "", w, &w1);
    save(w, out, "after.safetensors");

    /* The generator, token by token over row 0, must give the same logits
     * (inference mode: no capacity, no losses, whatever DSK_REF_TRAIN). */
    train_mode(m, 0);
    dsk_generator *gen = dsk_generator_new(m, T);
    float *glogits = malloc((size_t)T * V * sizeof *glogits);
    for (int t = 0; t < T; t++) {
        die_if(dsk_generator_feed(gen, tokens[t], &err), &err);
        memcpy(glogits + (size_t)t * V, gen->host_logits, V * sizeof *glogits);
    }
    /* ... with the weights after the steps: re-run the batch forward for them. */
    dsk_model_forward(m, 0);
    float *logits1 = malloc(n * V * sizeof *logits1);
    be->download(be, logits1, m->logits, n * V * sizeof *logits1);
    w = dsk_st_writer_new();
    int64_t gshape[2] = {T, (int64_t)V};
    dsk_st_writer_add(w, "generator_logits", DSK_ST_F32, 2, gshape, glogits);
    dsk_st_writer_add(w, "batch_logits", DSK_ST_F32, 3, lshape, logits1);
    save(w, out, "generate.safetensors");

    dsk_generator_free(gen);
    dsk_optimizer_free(opt);
    dsk_model_free(m);
    be->destroy(be);
    free(tokens), free(targets), free(pos), free(weights), free(logits), free(logits1), free(glogits);
    free(w0), free(g), free(w1), free(selected), free(dropped);
    return 0;
}
