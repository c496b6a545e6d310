#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "model/ffn.h"
#include "model/moe.h"

static int shared_ff(const dsk_model_config *c) { return c->n_shared_experts * c->d_ff_expert; }

/* ---- the experts' products, grouped ---------------------------------------------------------- */

/* One gemm_grouped call being put together: a product per expert with
 * rows (the backend skips the empty ones). */
typedef struct grouped {
    int n;
    int *M, *N, *K;
    const float **A, **B;
    float **C;
} grouped;

static void grouped_init(grouped *g, int cap)
{
    g->n = 0;
    g->M = dsk_xmalloc(3 * (size_t)cap * sizeof *g->M);
    g->N = g->M + cap;
    g->K = g->N + cap;
    g->A = dsk_xmalloc(2 * (size_t)cap * sizeof *g->A);
    g->B = g->A + cap;
    g->C = dsk_xmalloc((size_t)cap * sizeof *g->C);
}

static void grouped_free(grouped *g)
{
    free(g->M);
    free(g->A);
    free(g->C);
}

static void grouped_add(grouped *g, int M, int N, int K, const float *A, const float *B, float *C)
{
    g->M[g->n] = M;
    g->N[g->n] = N;
    g->K[g->n] = K;
    g->A[g->n] = A;
    g->B[g->n] = B;
    g->C[g->n++] = C;
}

/* Runs the products put together so far and starts the next call. */
static void grouped_run(dsk_backend *be, grouped *g, int ta, int tb, float beta)
{
    if (g->n)
        be->gemm_grouped(be, ta, tb, g->n, g->M, g->N, g->K, 1, g->A, g->B, beta, g->C);
    g->n = 0;
}

void dsk_moe_bufs_alloc(dsk_moe_bufs *b, dsk_backend *be, const dsk_model_config *c, int n)
{
    memset(b, 0, sizeof *b);
    size_t N = (size_t)n, E = (size_t)c->n_routed_experts, k = (size_t)c->top_k, d = (size_t)c->d_model;
    size_t Fe = (size_t)c->d_ff_expert, Fs = (size_t)shared_ff(c);
#define A(count) be->alloc(be, (count) * sizeof(float))
    b->n = n;
    b->logits = A(N * E);
    b->noisy = A(N * E);
    b->probs = A(N * E);
    b->gate = A(N * k);
    b->aux_w = A(N * E);   /* rows of E per sequence: at most one per token */
    b->sel = be->alloc(be, N * k * sizeof(int32_t));
    b->slot_row = be->alloc(be, N * k * sizeof(int32_t));
    b->row_token = be->alloc(be, N * k * sizeof(int32_t));
    b->xp = A(N * k * d);
    b->gp = A(N * k * Fe);
    b->up = A(N * k * Fe);
    b->ap = A(N * k * Fe);
    b->yp = A(N * k * d);
    if (Fs) {
        b->sg = A(N * Fs);
        b->su = A(N * Fs);
        b->sa = A(N * Fs);
    }
#undef A
    b->offsets = dsk_xcalloc(E + 1, sizeof *b->offsets);
}

void dsk_moe_bufs_free(dsk_moe_bufs *b, dsk_backend *be)
{
    void *p[] = {b->logits, b->noisy, b->probs, b->gate, b->aux_w, b->sel, b->slot_row, b->row_token, b->xp,
                 b->gp, b->up, b->ap, b->yp, b->sg, b->su, b->sa};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i])
            be->free(be, p[i]);
    free(b->offsets);
    memset(b, 0, sizeof *b);
}

void dsk_moe_grads_alloc(dsk_moe_grads *g, dsk_backend *be, const dsk_model_config *c, int n)
{
    memset(g, 0, sizeof *g);
    size_t N = (size_t)n, E = (size_t)c->n_routed_experts, k = (size_t)c->top_k, d = (size_t)c->d_model;
    size_t Fe = (size_t)c->d_ff_expert, Fs = (size_t)shared_ff(c);
#define A(count) be->alloc(be, (count) * sizeof(float))
    g->dyp = A(N * k * d);
    g->dap = A(N * k * Fe);
    g->dgp = A(N * k * Fe);
    g->dup = A(N * k * Fe);
    g->dxp = A(N * k * d);
    g->dgate = A(N * k);
    g->dlogits = A(N * E);
    if (Fs) {
        g->dsa = A(N * Fs);
        g->dsg = A(N * Fs);
        g->dsu = A(N * Fs);
    }
#undef A
}

void dsk_moe_grads_free(dsk_moe_grads *g, dsk_backend *be)
{
    float *p[] = {g->dyp, g->dap, g->dgp, g->dup, g->dxp, g->dgate, g->dlogits, g->dsa, g->dsg, g->dsu};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++)
        if (p[i])
            be->free(be, p[i]);
    memset(g, 0, sizeof *g);
}

void dsk_moe_stats_init(dsk_moe_stats *s, const dsk_model_config *c)
{
    memset(s, 0, sizeof *s);
    s->selected = dsk_xcalloc((size_t)c->n_routed_experts, sizeof *s->selected);
}

void dsk_moe_stats_reset(dsk_moe_stats *s, const dsk_model_config *c)
{
    long *sel = s->selected;
    memset(sel, 0, (size_t)c->n_routed_experts * sizeof *sel);
    memset(s, 0, sizeof *s);
    s->selected = sel;
}

void dsk_moe_stats_free(dsk_moe_stats *s)
{
    free(s->selected);
    s->selected = NULL;
}

/* ---- forward ------------------------------------------------------------------------------ */

/* Router noise, training only: Gaussian added to the logits, or Gumbel
 * noise added and the sum divided by the temperature. */
static const float *noisy_logits(dsk_backend *be, const dsk_model_config *c, dsk_moe_bufs *b, int n,
                                 const dsk_moe_run *run)
{
    if (!run->train || !run->rng || c->router_noise == DSK_NOISE_NONE)
        return b->logits;
    size_t count = (size_t)n * c->n_routed_experts;
    float *host = dsk_xmalloc(count * sizeof *host);
    for (size_t i = 0; i < count; i++) {
        if (c->router_noise == DSK_NOISE_GAUSSIAN) {
            host[i] = (float)(c->noise_std * dsk_rng_normal(run->rng));
        } else {
            double u = dsk_rng_uniform(run->rng);
            host[i] = (float)-log(-log(u > 1e-300 ? u : 1e-300));
        }
    }
    be->upload(be, b->noisy, host, count * sizeof *host);
    free(host);
    be->add(be, b->noisy, b->logits, count);
    if (c->router_noise == DSK_NOISE_GUMBEL)
        be->scale(be, b->noisy, count, (float)(1.0 / c->gumbel_temp));
    return b->noisy;
}

/* The balancing losses' value, their gradient with respect to the
 * probabilities (uploaded to aux_w), and the layer's statistics.  The
 * selection fractions f are constants to the gradient, as in Switch.
 * The per-token work (normalising, entropy, logsumexp) is the backend's
 * moe_balance_stats, so that only R*E sums come back to the host. */
static double balance_losses(dsk_backend *be, const dsk_model_config *c, dsk_moe_bufs *b, dsk_moe_stats *stats,
                             const long *selected, int n, const dsk_moe_run *run)
{
    int E = c->n_routed_experts, k = c->top_k, T = run->rows_per > 0 ? run->rows_per : n, R = (n + T - 1) / T;
    /* q: what the losses see, the probabilities (softmax) or the scores
     * normalised over all experts (sigmoid); P its mean per expert over
     * all tokens, Pr over each sequence's; fr the sequence's selection
     * fractions. */
    double *qs = dsk_xmalloc((size_t)R * E * sizeof *qs), sums[2];
    long *cnt = dsk_xmalloc((size_t)R * E * sizeof *cnt);
    be->moe_balance_stats(be, qs, cnt, sums, b->probs, b->sel, b->logits, T, n, E, k);
    double entropy = sums[0], zsum = sums[1];
    double aux = 0, seq = 0;
    float *w = dsk_xcalloc((size_t)R * E, sizeof *w);
    int use_aux = c->balance == DSK_BALANCE_AUX && c->aux_coef > 0;
    for (int e = 0; e < E; e++) {
        double f = (double)selected[e] / ((double)n * k), P = 0;
        for (int r = 0; r < R; r++)
            P += qs[(size_t)r * E + e];
        P /= n;
        if (use_aux)
            aux += c->aux_coef * E * f * P;
        for (int r = 0; r < R; r++) {
            double Pr = qs[(size_t)r * E + e] / T, fr = (double)cnt[(size_t)r * E + e] / ((double)T * k);
            if (c->seq_aux_coef > 0)
                seq += c->seq_aux_coef * E * fr * Pr / R;
            double g = (use_aux ? c->aux_coef * E * f / n : 0) +
                       (c->seq_aux_coef > 0 ? c->seq_aux_coef * E * fr / ((double)T * R) : 0);
            w[(size_t)r * E + e] = (float)(g * run->aux_grad_scale);
        }
    }
    if (c->router_noise == DSK_NOISE_GUMBEL && run->train && run->rng)
        for (size_t i = 0; i < (size_t)R * E; i++)
            w[i] /= (float)c->gumbel_temp;
    be->upload(be, b->aux_w, w, (size_t)R * E * sizeof *w);
    double zl = c->z_loss_coef * zsum / n;
    if (stats) {
        stats->aux_loss += aux + seq;
        stats->z_loss += zl;
        stats->entropy += entropy;
        stats->tokens += n;
        stats->forwards++;
    }
    free(qs), free(cnt), free(w);
    return aux + seq + zl;
}

static int capacity(const dsk_model_config *c, int n, int train)
{
    if (!train || c->capacity_factor <= 0)
        return n * c->top_k;
    double cap = ceil(c->capacity_factor * n * c->top_k / c->n_routed_experts);
    return cap < 1 ? 1 : cap > n ? n : (int)cap;
}

double dsk_moe_forward(dsk_backend *be, const dsk_model_config *c, const dsk_moe_w *w, dsk_moe_bufs *b,
                       dsk_moe_stats *stats, const float *h, float *out, int n, const dsk_moe_run *run)
{
    int E = c->n_routed_experts, k = c->top_k, d = c->d_model, Fe = c->d_ff_expert, Fs = shared_ff(c);
    be->gemm(be, 0, 1, n, E, d, 1, h, w->router, 0, b->logits);
    const float *scores = noisy_logits(be, c, b, n, run);
    be->moe_route(be, b->probs, b->sel, b->gate, scores, c->balance == DSK_BALANCE_BIAS ? w->bias : NULL, n, E, k,
                  c->router);
    long *selected = dsk_xcalloc((size_t)E, sizeof *selected);
    b->kept = be->moe_dispatch(be, b->slot_row, b->row_token, b->offsets, selected, b->sel, n, k, E,
                               capacity(c, n, run->train));
    /* The shared experts after the dispatch (a GPU backend waits for the
     * routing there: their large products then keep the GPU busy while
     * the host queues the routed experts' many small ones), and before
     * the gather (whose copy of the rows in expert order the routed
     * products read). */
    if (Fs) {
        dsk_ffn shared = {w->s_gate, w->s_up, w->s_down, b->sg, b->su, b->sa};
        dsk_ffn_fwd(be, &shared, h, out, out, n, d, Fs);
    }
    be->moe_gather(be, b->xp, h, b->row_token, b->kept, d);
    /* Each expert: one SwiGLU over its contiguous block of rows, its
     * products grouped with the other experts' (gate and up in one call),
     * the activation over all kept rows at once. */
    grouped g;
    grouped_init(&g, 2 * E);
    for (int e = 0; e < E; e++) {
        int off = b->offsets[e], rows = b->offsets[e + 1] - off;
        size_t wo = (size_t)e * Fe * d;
        grouped_add(&g, rows, Fe, d, b->xp + (size_t)off * d, w->e_gate + wo, b->gp + (size_t)off * Fe);
        grouped_add(&g, rows, Fe, d, b->xp + (size_t)off * d, w->e_up + wo, b->up + (size_t)off * Fe);
    }
    grouped_run(be, &g, 0, 1, 0);
    be->swiglu_fwd(be, b->ap, b->gp, b->up, (size_t)b->kept * Fe);
    for (int e = 0; e < E; e++) {
        int off = b->offsets[e], rows = b->offsets[e + 1] - off;
        grouped_add(&g, rows, d, Fe, b->ap + (size_t)off * Fe, w->e_down + (size_t)e * d * Fe, b->yp + (size_t)off * d);
    }
    grouped_run(be, &g, 0, 1, 0);
    grouped_free(&g);
    be->moe_combine(be, out, b->yp, b->slot_row, b->gate, n, k, d);
    if (!run->train) {   /* evaluation and generation: no losses, no statistics */
        free(selected);
        return 0;
    }
    if (stats) {
        for (int e = 0; e < E; e++)
            stats->selected[e] += selected[e];
        stats->assignments += (long)n * k;
        stats->dropped += (long)n * k - b->kept;
    }
    double loss = balance_losses(be, c, b, stats, selected, n, run);
    free(selected);
    return loss;
}

/* ---- backward ------------------------------------------------------------------------------ */

void dsk_moe_backward(dsk_backend *be, const dsk_model_config *c, const dsk_moe_w *w, dsk_moe_w *gw,
                      dsk_moe_bufs *b, dsk_moe_grads *g, const float *h, const float *dout, float *dh, int n,
                      const dsk_moe_run *run)
{
    int E = c->n_routed_experts, k = c->top_k, d = c->d_model, Fe = c->d_ff_expert, Fs = shared_ff(c);
    /* Routed experts, all at once in grouped products (the steps of
     * dsk_ffn_bwd, each over every expert), then back to token order. */
    be->moe_combine_bwd(be, g->dyp, g->dgate, dout, b->yp, b->slot_row, b->gate, n, k, d);
    grouped p;
    grouped_init(&p, 2 * E);
#define EACH_EXPERT(...)                                                                   \
    for (int e = 0; e < E; e++) {                                                          \
        int off = b->offsets[e], rows = b->offsets[e + 1] - off;                           \
        size_t wo = (size_t)e * Fe * d, ro = (size_t)off * Fe, xo = (size_t)off * d;       \
        (void)wo, (void)ro, (void)xo;                                                      \
        __VA_ARGS__;                                                                       \
    }
    /* d act = dy down; d down += dy^T act. */
    EACH_EXPERT(grouped_add(&p, rows, Fe, d, g->dyp + xo, w->e_down + wo, g->dap + ro));
    grouped_run(be, &p, 0, 0, 0);
    EACH_EXPERT(grouped_add(&p, d, Fe, rows, g->dyp + xo, b->ap + ro, gw->e_down + wo));
    grouped_run(be, &p, 1, 0, 1);
    be->swiglu_bwd(be, g->dgp, g->dup, g->dap, b->gp, b->up, (size_t)b->kept * Fe);
    /* dx = dg gate + du up (two calls: both write dx). */
    EACH_EXPERT(grouped_add(&p, rows, d, Fe, g->dgp + ro, w->e_gate + wo, g->dxp + xo));
    grouped_run(be, &p, 0, 0, 0);
    EACH_EXPERT(grouped_add(&p, rows, d, Fe, g->dup + ro, w->e_up + wo, g->dxp + xo));
    grouped_run(be, &p, 0, 0, 1);
    /* d gate += dg^T x, d up += du^T x. */
    EACH_EXPERT(grouped_add(&p, Fe, d, rows, g->dgp + ro, b->xp + xo, gw->e_gate + wo);
                grouped_add(&p, Fe, d, rows, g->dup + ro, b->xp + xo, gw->e_up + wo));
    grouped_run(be, &p, 1, 0, 1);
#undef EACH_EXPERT
    grouped_free(&p);
    be->zero(be, dh, (size_t)n * d * sizeof(float));
    be->moe_scatter_add(be, dh, g->dxp, b->slot_row, n, k, d);

    /* The router: gates and balancing losses back to the logits. */
    int gumbel = c->router_noise == DSK_NOISE_GUMBEL && run->train && run->rng;
    if (gumbel)
        be->scale(be, g->dgate, (size_t)n * k, (float)(1.0 / c->gumbel_temp));
    int T = run->rows_per > 0 ? run->rows_per : n;
    /* The balancing losses exist only in a training forward (see dsk_moe_forward). */
    int balance = run->train && ((c->balance == DSK_BALANCE_AUX && c->aux_coef > 0) || c->seq_aux_coef > 0);
    double z_coef = run->train ? c->z_loss_coef : 0;
    be->moe_route_bwd(be, g->dlogits, g->dgate, b->probs, b->sel, b->gate, b->logits, balance ? b->aux_w : NULL, T,
                      (float)(z_coef * run->aux_grad_scale / n), n, E, k, c->router);
    be->gemm(be, 0, 0, n, d, E, 1, g->dlogits, w->router, 1, dh);
    be->gemm(be, 1, 0, E, d, n, 1, g->dlogits, h, 1, gw->router);

    if (Fs) {
        dsk_ffn shared = {w->s_gate, w->s_up, w->s_down, b->sg, b->su, b->sa};
        dsk_ffn_bwd(be, &shared, gw->s_gate, gw->s_up, gw->s_down, h, dout, g->dsg, g->dsu, g->dsa, dh, 1, n, d, Fs);
    }
}

void dsk_moe_update_bias(dsk_backend *be, const dsk_model_config *c, float *bias, const dsk_moe_stats *s)
{
    int E = c->n_routed_experts;
    if (s->assignments == 0 || c->bias_rate <= 0)
        return;
    float *host = dsk_xmalloc((size_t)E * sizeof *host);
    be->download(be, host, bias, (size_t)E * sizeof *host);
    double mean = (double)s->assignments / E;
    for (int e = 0; e < E; e++) {
        double load = (double)s->selected[e];
        host[e] += (float)(c->bias_rate * (load < mean ? 1 : load > mean ? -1 : 0));
    }
    be->upload(be, bias, host, (size_t)E * sizeof *host);
    free(host);
}
