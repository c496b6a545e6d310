/* The whole model: gradients of every tensor against finite differences
 * of the loss (directional derivatives in float, since the model runs on
 * the float backend), for the nano preset with local, hybrid and global
 * layers, grouped-query attention, tied and untied heads, and documents
 * restarting inside a row. */
#include "core/rng.h"
#include "dist/memory.h"
#include "model/generate.h"
#include "model/model.h"
#include "train/optim.h"
#include "test.h"

enum { B = 2, TT = 12, V = 37 };

static void (*moe_setup)(dsk_model_config *c);   /* set: build nano-moe and call it */
static dsk_rng noise_rng;

/* recompute: dsk_model.recompute, set before the batch is allocated. */
static dsk_model *make_recomputing(const char *pattern, int tie, dsk_backend *be, int recompute)
{
    dsk_model_config c;
    CHECK(dsk_config_preset(&c, moe_setup ? "nano-moe" : "nano") == 0);
    if (moe_setup)
        moe_setup(&c);
    c.vocab_size = V;
    c.n_layers = 3;
    c.window = 4;
    c.tie_embeddings = tie;
    snprintf(c.attn_pattern, sizeof c.attn_pattern, "%s", pattern);
    dsk_err err = {0};
    CHECK(dsk_config_validate(&c, &err) == 0);
    dsk_model *m = dsk_model_create(&c, be);
    m->recompute = recompute;
    dsk_model_init_weights(m, 7);
    dsk_model_alloc_batch(m, B, TT);
    return m;
}

static dsk_model *make(const char *pattern, int tie, dsk_backend *be) { return make_recomputing(pattern, tie, be, 0); }

static int32_t tokens[B * TT], targets[B * TT], pos[B * TT];
static float weights[B * TT];

static void make_batch(dsk_model *m)
{
    dsk_rng r;
    dsk_rng_seed(&r, 3);
    for (int i = 0; i < B * TT; i++) {
        tokens[i] = (int32_t)(dsk_rng_next(&r) % V);
        targets[i] = i % 5 == 4 ? -1 : (int32_t)(dsk_rng_next(&r) % V);
        int t = i % TT;
        pos[i] = i < TT ? t : t < 5 ? t : t - 5;   /* row 1: a document starts at t = 5 */
        weights[i] = i % 7 == 3 ? 0.0f : 1.0f;
    }
    dsk_batch b = {B, TT, tokens, targets, pos, weights};
    dsk_err err = {0};
    CHECK(dsk_model_set_batch(m, &b, &err) == 0);
}

/* Router noise is the same draw in every forward pass of a check. */
static void forward(dsk_model *m, float grad_scale)
{
    dsk_rng_seed(&noise_rng, 99);
    m->moe_run.train = 1;
    m->moe_run.rng = &noise_rng;
    dsk_model_forward(m, grad_scale);
}

static double loss(dsk_model *m)
{
    forward(m, 0);
    return m->loss_sum / m->n_targets + m->aux_loss;
}

/* The routing of every MoE layer (choices and drops), to tell a smooth
 * change of the loss from a jump where a token changes experts. */
static void routing(dsk_model *m, int32_t *out)
{
    size_t n = (size_t)m->B * m->T * m->cfg.top_k;
    for (int l = 0; l < m->cfg.n_layers; l++)
        if (dsk_config_layer_is_moe(&m->cfg, l)) {
            memcpy(out, m->acts[l].moe.sel, n * sizeof *out);
            memcpy(out + n, m->acts[l].moe.slot_row, n * sizeof *out);
            out += 2 * n;
        }
}

static void check_model(const char *pattern, int tie)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make(pattern, tie, be);
    make_batch(m);
    dsk_model_zero_grad(m);
    forward(m, (float)(1.0 / m->n_targets));
    dsk_model_backward(m);
    double base = m->loss_sum / m->n_targets;
    CHECK(base > 3.0 && base < 4.5);   /* about log(37) at initialisation */

    dsk_rng r;
    dsk_rng_seed(&r, 11);
    int bad = 0, jumpy = 0, precise = 0;
    for (size_t ti = 0; ti < m->n_tensors; ti++) {
        const dsk_tensor_info *t = &m->tensors[ti];
        float *p = m->params + t->offset, *g = m->grads + t->offset;
        /* Direction: the gradient itself plus noise, unit length. */
        double gn = 0;
        for (size_t i = 0; i < t->numel; i++)
            gn += (double)g[i] * g[i];
        gn = sqrt(gn);
        double *dir = malloc(t->numel * sizeof *dir), dn = 0;
        for (size_t i = 0; i < t->numel; i++) {
            dir[i] = (gn > 0 ? g[i] / gn : 0) + 0.3 * dsk_rng_normal(&r) / sqrt((double)t->numel);
            dn += dir[i] * dir[i];
        }
        dn = sqrt(dn);
        double analytic = 0;
        for (size_t i = 0; i < t->numel; i++) {
            dir[i] /= dn;
            analytic += dir[i] * g[i];
        }
        float *keep = malloc(t->numel * sizeof *keep);
        memcpy(keep, p, t->numel * sizeof *keep);
        /* Central differences, with a smaller step while a step moves a
         * token to another expert (the loss jumps there). */
        size_t route_len = 2 * (size_t)m->cfg.n_layers * m->B * m->T * (m->cfg.top_k ? m->cfg.top_k : 1);
        int32_t *r0 = calloc(route_len, 4), *r1 = calloc(route_len, 4);
        if (moe_setup) {
            forward(m, 0);
            routing(m, r0);
        }
        double eps = 1e-2, lp = 0, lm = 0;
        int smooth = 0;
        for (int tries = 0; tries < 6 && !smooth; tries++, eps /= 3) {
            smooth = 1;
            for (size_t i = 0; i < t->numel; i++)
                p[i] = (float)(keep[i] + eps * dir[i]);
            lp = loss(m);
            if (moe_setup) {
                routing(m, r1);
                smooth &= !memcmp(r0, r1, route_len * 4);
            }
            for (size_t i = 0; i < t->numel; i++)
                p[i] = (float)(keep[i] - eps * dir[i]);
            lm = loss(m);
            if (moe_setup) {
                routing(m, r1);
                smooth &= !memcmp(r0, r1, route_len * 4);
            }
        }
        memcpy(p, keep, t->numel * sizeof *keep);
        free(r0);
        free(r1);
        if (!smooth) {
            printf("#   %s: routing changes under every step tried; not checked\n", t->name);
            jumpy++;
            free(dir);
            free(keep);
            continue;
        }
        eps *= 3;
        double numeric = (lp - lm) / (2 * eps);
        /* float rounding of the loss, divided by the step: what a small
         * step (needed where routing jumps nearby) cannot resolve. */
        double noise = 2 * 1.2e-7 * fabs(lp) / eps;
        if (noise < 0.2 * fabs(analytic))
            precise++;
        double e = fmax(0, fabs(numeric - analytic) - noise) / fmax(1e-4, fabs(numeric) + fabs(analytic));
        if (strstr(t->name, "e_score_correction_bias"))
            e = fabs(analytic);   /* no gradient: it moves by the balancing rule, and selection is flat */
        if (e > 2e-2) {
            printf("#   %s: analytic %.6g numeric %.6g (step %.2g)\n", t->name, analytic, numeric, eps);
            bad++;
        }
        free(dir);
        free(keep);
    }
    CHECK(bad == 0);
    CHECK(jumpy <= 1);
    CHECK(precise >= (int)(m->n_tensors * 3 / 5));   /* most tensors checked with a step that resolves them */
    dsk_model_free(m);
    be->destroy(be);
}

TEST(gradients_hybrid_local_global_tied) { check_model("LHG", 1); }
TEST(gradients_global_untied) { check_model("G", 0); }

/* MoE: softmax router, no dropping, the three differentiable balancing losses. */
static void moe_softmax_aux(dsk_model_config *c)
{
    c->n_layers = 3;
    c->capacity_factor = 0;
    c->aux_coef = 0.1;
    c->seq_aux_coef = 0.05;
    c->z_loss_coef = 0.01;
}
/* Sigmoid router with DeepSeek-V3's bias, tokens dropped at capacity 1, Gaussian noise. */
static void moe_sigmoid_bias_drop(dsk_model_config *c)
{
    c->n_layers = 3;
    c->router = DSK_ROUTER_SIGMOID;
    c->balance = DSK_BALANCE_BIAS;
    c->capacity_factor = 1.0;
    c->router_noise = DSK_NOISE_GAUSSIAN;
    c->seq_aux_coef = 0.05;
}
/* Gumbel noise at temperature 0.5, capacity 1.2, aux loss. */
static void moe_gumbel(dsk_model_config *c)
{
    c->n_layers = 3;
    c->router_noise = DSK_NOISE_GUMBEL;
    c->gumbel_temp = 0.5;
    c->aux_coef = 0.1;
    c->z_loss_coef = 0.01;
}

TEST(moe_gradients_softmax_aux_seq_z)
{
    moe_setup = moe_softmax_aux;
    check_model("LHG", 1);
    moe_setup = NULL;
}
TEST(moe_gradients_sigmoid_bias_dropping_noise)
{
    moe_setup = moe_sigmoid_bias_drop;
    check_model("G", 0);
    moe_setup = NULL;
}
TEST(moe_gradients_gumbel)
{
    moe_setup = moe_gumbel;
    check_model("HL", 1);
    moe_setup = NULL;
}

/* --recompute: each layer keeps its input and the backward runs the
 * layer again, so the gradients, the loss, the balancing loss and the
 * routing statistics are those of the plain model bit for bit (router
 * noise replayed from the state saved in the forward), in less memory.
 * Two steps: the second starts from a shared set the first left full. */
static void check_recompute(const char *pattern)
{
    dsk_backend *be = dsk_backend_cpu(2);
    dsk_model *m[2];
    double losses[2][2], aux[2][2];
    for (int rc = 0; rc < 2; rc++) {
        m[rc] = make_recomputing(pattern, 0, be, rc);
        make_batch(m[rc]);
        dsk_model_zero_grad(m[rc]);
        dsk_rng_seed(&noise_rng, 99);
        m[rc]->moe_run.train = 1;
        m[rc]->moe_run.rng = &noise_rng;
        for (int step = 0; step < 2; step++) {
            dsk_model_forward(m[rc], (float)(1.0 / m[rc]->n_targets));
            dsk_model_backward(m[rc]);
            losses[rc][step] = m[rc]->loss_sum;
            aux[rc][step] = m[rc]->aux_loss;
        }
    }
    for (int step = 0; step < 2; step++)
        CHECK(losses[0][step] == losses[1][step] && aux[0][step] == aux[1][step]);
    CHECK(!memcmp(m[0]->grads, m[1]->grads, m[0]->n_params * sizeof(float)));
    for (int l = 0; moe_setup && l < m[0]->cfg.n_layers; l++)
        if (dsk_config_layer_is_moe(&m[0]->cfg, l)) {
            const dsk_moe_stats *a = &m[0]->moe_stats[l], *b = &m[1]->moe_stats[l];
            CHECK(a->forwards == 2 && b->forwards == 2 && a->dropped == b->dropped && a->aux_loss == b->aux_loss);
            CHECK(!memcmp(a->selected, b->selected, (size_t)m[0]->cfg.n_routed_experts * sizeof *a->selected));
        }
    CHECK(dsk_mem_activations(&m[0]->cfg, B, TT, 1, 0) < dsk_mem_activations(&m[0]->cfg, B, TT, 0, 0));
    dsk_model_free(m[0]);
    dsk_model_free(m[1]);
    be->destroy(be);
}

TEST(recompute_is_bit_exact_dense) { check_recompute("LHG"); }
TEST(recompute_is_bit_exact_moe_with_noise)
{
    moe_setup = moe_sigmoid_bias_drop;
    check_recompute("HG");
    moe_setup = moe_gumbel;
    check_recompute("LG");
    moe_setup = NULL;
}

/* The LM head in chunks of 5 rows (the last one short) gives the loss
 * and gradients of the head over the whole batch, through the forward
 * with a gradient scale and through dsk_model_loss_grad. */
TEST(head_in_chunks_matches_whole)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m[2];
    float w[B * TT];
    for (int i = 0; i < B * TT; i++)
        w[i] = i % 3 ? 0.5f : -1.0f;
    for (int via_loss_grad = 0; via_loss_grad < 2; via_loss_grad++) {
        for (int side = 0; side < 2; side++) {
            dsk_model_config c;
            CHECK(dsk_config_preset(&c, "nano") == 0);
            c.vocab_size = V;
            m[side] = dsk_model_create(&c, be);
            m[side]->head_rows = side ? 5 : 0;
            dsk_model_init_weights(m[side], 7);
            dsk_model_alloc_batch(m[side], B, TT);
            make_batch(m[side]);
            dsk_model_zero_grad(m[side]);
            if (via_loss_grad) {
                dsk_model_forward(m[side], 0);
                dsk_model_loss_grad(m[side], w);
            } else {
                dsk_model_forward(m[side], 0.1f);
            }
            dsk_model_backward(m[side]);
        }
        CHECK(m[0]->logit_rows == B * TT && m[1]->logit_rows == 5);
        CHECK_NEAR(m[1]->loss_sum, m[0]->loss_sum, 1e-5 * m[0]->loss_sum);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < m[0]->n_params; i++) {
            worst = fmax(worst, fabs(m[1]->grads[i] - m[0]->grads[i]));
            scale = fmax(scale, fabs(m[0]->grads[i]));
        }
        CHECK(scale > 0 && worst < 1e-5 * scale);
        dsk_model_free(m[0]);
        dsk_model_free(m[1]);
    }
    be->destroy(be);
}

/* The automatic chunk: the whole batch when it fits, else chunks of about
 * one size in multiples of 128 rows within the budget. */
TEST(head_chunk_rows)
{
    const size_t MiB = (size_t)1 << 20;
    CHECK(dsk_model_logit_rows(0, 16384, 50304, 0) == 640);             /* 128 MiB: 667 rows fit */
    CHECK(dsk_model_logit_rows(0, 16384, 50304, 128 * MiB) == 640);
    CHECK(dsk_model_logit_rows(0, 16384, 50304, 1024 * MiB) == 4096);   /* 4 x 4096, not 3 x 5248 + 640 */
    CHECK(dsk_model_logit_rows(0, 12000, 50304, 1024 * MiB) == 4096);   /* 3 chunks: 4000 rounded up */
    CHECK(dsk_model_logit_rows(0, 2048, 32000, 0) == 1024);
    CHECK(dsk_model_logit_rows(0, 1000, 32000, 0) == 1000);             /* the whole batch */
    CHECK(dsk_model_logit_rows(0, 1000, 32000, 64 * 32000 * 4) == 64);   /* few rows fit: as many */
    CHECK(dsk_model_logit_rows(0, 1000, 32000, 100) == 1);               /* not one row: one */
    CHECK(dsk_model_logit_rows(5, 1000, 32000, 0) == 5);
    CHECK(dsk_model_logit_rows(5000, 1000, 32000, 0) == 1000);
    for (int n = 1; n <= 40000; n += 997) {
        int rows = dsk_model_logit_rows(0, n, 50304, 1024 * MiB);
        CHECK(rows >= 1 && rows <= n && (size_t)rows * 50304 * 4 <= 1024 * MiB);
        CHECK(rows == n || rows % 128 == 0);
    }
}

TEST(tensor_names_are_llama_names)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make("LHG", 0, be);
    CHECK(dsk_model_find_tensor(m, "model.embed_tokens.weight") != NULL);
    CHECK(dsk_model_find_tensor(m, "model.layers.2.self_attn.k_proj.weight")->shape[0] == 16);   /* 2 kv heads x 8 */
    CHECK(dsk_model_find_tensor(m, "model.layers.1.self_attn.hybrid_alpha") != NULL);
    CHECK(dsk_model_find_tensor(m, "model.layers.0.self_attn.hybrid_alpha") == NULL);
    CHECK(dsk_model_find_tensor(m, "model.layers.1.mlp.down_proj.weight")->shape[1] == 96);
    CHECK(dsk_model_find_tensor(m, "lm_head.weight") != NULL);
    CHECK(m->n_params == dsk_config_param_count(&m->cfg));
    CHECK(!dsk_model_find_tensor(m, "model.norm.weight")->decay);
    CHECK(dsk_model_find_tensor(m, "model.layers.0.mlp.up_proj.weight")->decay);
    dsk_model_free(m);
    be->destroy(be);
}

TEST(bad_batches_are_refused)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make("G", 1, be);
    make_batch(m);
    dsk_err err = {0};
    tokens[3] = V;
    dsk_batch b = {B, TT, tokens, targets, pos, NULL};
    CHECK(dsk_model_set_batch(m, &b, &err) == EX_DATAERR);
    tokens[3] = 0;
    pos[2] = 5;   /* a position beyond its place in the row */
    CHECK(dsk_model_set_batch(m, &b, &err) == EX_DATAERR);
    dsk_model_free(m);
    be->destroy(be);
}

/* A batch whose rows are one document each (every position its place in
 * the row) is marked so for the attention (dsk_attn_shape.whole_rows:
 * kernels without document masks may take it); a document starting
 * inside a row unmarks it. */
TEST(whole_rows_are_marked)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make("G", 1, be);
    make_batch(m);   /* row 1 holds two documents */
    CHECK(m->whole_rows == 0);
    for (int i = 0; i < B * TT; i++)
        pos[i] = i % TT;
    dsk_batch b = {B, TT, tokens, targets, pos, NULL};
    dsk_err err = {0};
    CHECK(dsk_model_set_batch(m, &b, &err) == 0);
    CHECK(m->whole_rows == 1);
    pos[B * TT - 1] = 0;   /* the last token begins a document */
    CHECK(dsk_model_set_batch(m, &b, &err) == 0);
    CHECK(m->whole_rows == 0);
    dsk_model_free(m);
    be->destroy(be);
}

TEST(overfits_one_batch)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make("LHG", 1, be);
    make_batch(m);
    dsk_adamw_opts o;
    dsk_adamw_defaults(&o);
    o.lr = 1e-2;
    o.warmup = 0;
    o.weight_decay = 0;
    dsk_optimizer *opt = dsk_optimizer_create(m, &o);
    double first = 0, last = 0;
    for (int s = 0; s < 300; s++) {
        dsk_model_zero_grad(m);
        dsk_model_forward(m, (float)(1.0 / m->n_targets));
        dsk_model_backward(m);
        last = m->loss_sum / m->n_targets;
        if (s == 0)
            first = last;
        dsk_optimizer_step(opt);
    }
    printf("# loss %.4f -> %.4f\n", first, last);
    CHECK(first > 3.0);
    CHECK(last < 0.05);
    dsk_optimizer_free(opt);
    dsk_model_free(m);
    be->destroy(be);
}

/* The KV-cache generator gives the batch forward's logits, position by
 * position, for every attention kind. */
TEST(generator_matches_forward)
{
    dsk_backend *be = dsk_backend_cpu(1);
    dsk_model *m = make("LHG", 0, be);
    make_batch(m);   /* row 0 is one document: pos = t */
    dsk_model_forward(m, 0);
    float *want = malloc((size_t)B * TT * V * sizeof *want);
    be->download(be, want, m->logits, (size_t)B * TT * V * sizeof *want);
    dsk_generator *g = dsk_generator_new(m, TT);
    dsk_err err = {0};
    double worst = 0;
    for (int t = 0; t < TT; t++) {
        CHECK(dsk_generator_feed(g, tokens[t], &err) == 0);
        for (int v = 0; v < V; v++)
            worst = fmax(worst, fabs(g->host_logits[v] - want[(size_t)t * V + v]));
    }
    CHECK(worst < 1e-4);
    CHECK(dsk_generator_feed(g, 0, &err) == EX_DATAERR);   /* the cache is full */
    /* Greedy sampling picks the largest logit; top-k 1 does too at any temperature. */
    float l[5] = {0.1f, 2.0f, -1.0f, 1.9f, 0.0f};
    int scratch[5];
    dsk_rng r;
    dsk_rng_seed(&r, 1);
    dsk_sampler_opts greedy = {0, 0, 1, 0}, top1 = {5.0, 1, 1, 0};
    CHECK(dsk_sample(l, 5, &greedy, &r, scratch) == 1);
    CHECK(dsk_sample(l, 5, &top1, &r, scratch) == 1);
    /* top-p 0.5 over {0.6, 0.4, ...}: only the first survives. */
    int counts[5] = {0};
    dsk_sampler_opts topp = {1.0, 0, 0.5, 0};
    for (int i = 0; i < 200; i++) {
        float z[5] = {logf(0.6f), logf(0.3f), logf(0.05f), logf(0.03f), logf(0.02f)};
        counts[dsk_sample(z, 5, &topp, &r, scratch)]++;
    }
    CHECK(counts[0] == 200);
    dsk_generator_free(g);
    free(want);
    dsk_model_free(m);
    be->destroy(be);
}

/* The exact distribution dsk_sample should draw from, the slow way: sort
 * the whole vocabulary, cut to top-k, then to the top-p nucleus. */
static int ref_desc(const void *a, const void *b)
{
    const double *x = a, *y = b;
    return x[0] != y[0] ? (x[0] < y[0] ? 1 : -1) : (x[1] < y[1] ? -1 : 1);
}

static void reference_probs(const float *logits, int n_vocab, const dsk_sampler_opts *o, double *prob)
{
    double(*s)[2] = malloc((size_t)n_vocab * sizeof *s);
    for (int i = 0; i < n_vocab; i++)
        s[i][0] = logits[i], s[i][1] = i;
    qsort(s, (size_t)n_vocab, sizeof *s, ref_desc);
    int n = n_vocab;
    while (o->min_p > 0 && exp((s[n - 1][0] - s[0][0]) / o->temperature) < o->min_p)
        n--;   /* sorted: the tokens under min_p of the likeliest are a suffix */
    n = o->top_k > 0 && o->top_k < n ? o->top_k : n;
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += exp((s[i][0] - s[0][0]) / o->temperature);
    int keep = n;
    if (o->top_p < 1) {
        double cum = 0;
        for (keep = 0; keep < n;) {
            cum += exp((s[keep++][0] - s[0][0]) / o->temperature) / sum;
            if (cum >= o->top_p)
                break;
        }
    }
    double z = 0;
    for (int i = 0; i < keep; i++)
        z += exp((s[i][0] - s[0][0]) / o->temperature);
    for (int i = 0; i < n_vocab; i++)
        prob[i] = 0;
    for (int i = 0; i < keep; i++)
        prob[(int)s[i][1]] = exp((s[i][0] - s[0][0]) / o->temperature) / z;
    free(s);
}

TEST(sampler_draws_the_exact_distribution)
{
    enum { NV = 40, N = 40000 };
    float base[NV];
    dsk_rng r;
    dsk_rng_seed(&r, 7);
    for (int i = 0; i < NV; i++)
        base[i] = (float)(2 * dsk_rng_normal(&r));
    base[3] = base[17];   /* a tie */
    const dsk_sampler_opts opts[] = {{1.0, 0, 1, 0},     {0.7, 0, 1, 0},      {1.0, 5, 1, 0},
                                     {1.0, 0, 0.8, 0},   {1.3, 12, 0.9, 0},   {0.5, 0, 0.3, 0},
                                     {2.0, 39, 0.99, 0}, {1.0, 1000, 1, 0},   {1.0, 1, 1, 0},
                                     {1.0, 2, 0.999, 0}, {1.0, 0, 1, 0.05},   {0.7, 0, 1, 0.2},
                                     {1.5, 8, 1, 0.1},   {1.0, 0, 0.9, 0.02}, {1.0, 0, 1, 1}};
    for (size_t c = 0; c < sizeof opts / sizeof *opts; c++) {
        double prob[NV], freq[NV] = {0};
        reference_probs(base, NV, &opts[c], prob);
        int scratch[NV];
        for (int i = 0; i < N; i++) {
            float l[NV];
            memcpy(l, base, sizeof l);
            freq[dsk_sample(l, NV, &opts[c], &r, scratch)] += 1.0 / N;
        }
        double worst = 0;
        int outside = 0;
        for (int i = 0; i < NV; i++) {
            worst = fmax(worst, fabs(freq[i] - prob[i]));
            outside += prob[i] == 0 && freq[i] > 0;
        }
        CHECK(outside == 0);
        CHECK(worst < 0.012);   /* over 4.5 standard deviations at N draws */
    }
}

/* Vocabularies of many blocks of the sampler's sums (the last one part
 * full, and one past what it keeps on the stack): the mass on a few
 * tokens spread over the blocks, drawn in proportion; greedy picks the
 * first of tied maxima and skips NaN unless it comes first. */
TEST(sampler_blocks_and_first_max)
{
    static const int sizes[] = {1000, 300007};
    static const int at[] = {0, 5, 127, 128, 257, 511, 640, 767, 900, 999};
    enum { NT = sizeof at / sizeof *at, N = 40000 };
    dsk_rng r;
    dsk_rng_seed(&r, 11);
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        int nv = sizes[si];
        float *base = malloc((size_t)nv * sizeof *base), *l = malloc((size_t)nv * sizeof *l);
        int *scratch = malloc((size_t)nv * sizeof *scratch);
        double z = 0, want[NT];
        for (int i = 0; i < nv; i++)
            base[i] = -200;
        for (int t = 0; t < NT; t++) {
            int where = si ? at[t] * 300 : at[t];
            base[where] = (float)(0.3 * t);
            z += exp(0.3 * t);
        }
        for (int t = 0; t < NT; t++)
            want[t] = exp(0.3 * t) / z;
        double freq[NT] = {0};
        int outside = 0;
        dsk_sampler_opts o = {1.0, 0, 1, 0};
        for (int d = 0; d < N; d++) {
            memcpy(l, base, (size_t)nv * sizeof *l);
            int tok = dsk_sample(l, nv, &o, &r, scratch), hit = -1;
            for (int t = 0; t < NT; t++)
                hit = tok == (si ? at[t] * 300 : at[t]) ? t : hit;
            if (hit < 0)
                outside++;
            else
                freq[hit] += 1.0 / N;
        }
        double worst = 0;
        for (int t = 0; t < NT; t++)
            worst = fmax(worst, fabs(freq[t] - want[t]));
        CHECK(outside == 0);
        CHECK(worst < 0.012);
        /* greedy: the first of two equal maxima */
        memcpy(l, base, (size_t)nv * sizeof *l);
        l[nv - 1] = l[nv - 2] = 50;
        dsk_sampler_opts greedy = {0, 0, 1, 0};
        CHECK(dsk_sample(l, nv, &greedy, &r, scratch) == nv - 2);
        l[nv / 2] = NAN;
        CHECK(dsk_sample(l, nv, &greedy, &r, scratch) == nv - 2);
        l[0] = NAN;
        CHECK(dsk_sample(l, nv, &greedy, &r, scratch) == 0);
        /* banned tokens (-inf) get no mass at all (the sampler leaves its
         * probabilities in the logits it was given): no rounding
         * fallback can land on one */
        for (int i = 0; i < nv; i++)
            l[i] = i % 3 ? -INFINITY : (float)(i % 7);
        int t = dsk_sample(l, nv, &o, &r, scratch), massless = 0;
        CHECK(t % 3 == 0);
        for (int i = 0; i < nv; i++)
            massless += i % 3 && l[i] != 0;
        CHECK(massless == 0);
        free(base), free(l), free(scratch);
    }
}

/* A temperature whose inverse is past float's range picks the best token
 * (its probability was 0 x inf = NaN: any token came out). */
TEST(sampler_tiny_temperature_is_greedy)
{
    enum { NV = 300 };
    dsk_rng r;
    dsk_rng_seed(&r, 3);
    int scratch[NV];
    const double temps[] = {1e-300, 1e-40, 1e-39};
    for (size_t t = 0; t < sizeof temps / sizeof *temps; t++)
        for (int k = 0; k < 2; k++)
            for (int draw = 0; draw < 50; draw++) {
                float l[NV];
                for (int i = 0; i < NV; i++)
                    l[i] = (float)dsk_rng_normal(&r);
                l[123] = 10;
                dsk_sampler_opts o = {temps[t], k ? 1 : 0, k ? 1 : 0.5, k ? 0.5 : 0};
                CHECK(dsk_sample(l, NV, &o, &r, scratch) == 123);
            }
}

RUN_TESTS(T(sampler_draws_the_exact_distribution), T(sampler_blocks_and_first_max), T(sampler_tiny_temperature_is_greedy), T(gradients_hybrid_local_global_tied), T(overfits_one_batch),
          T(generator_matches_forward), T(moe_gradients_softmax_aux_seq_z), T(moe_gradients_sigmoid_bias_dropping_noise),
          T(moe_gradients_gumbel), T(gradients_global_untied), T(recompute_is_bit_exact_dense),
          T(recompute_is_bit_exact_moe_with_noise), T(head_in_chunks_matches_whole), T(head_chunk_rows),
          T(tensor_names_are_llama_names), T(bad_batches_are_refused), T(whole_rows_are_marked))
