/* The CPU kernels, written once over REAL (float or double) and compiled
 * by cpu_kernels_f32.c and cpu_kernels_f64.c.  Not a header to include
 * anywhere else.
 *
 * Threading: OpenMP with static schedules, and every reduction either
 * owned by one thread or summed in a fixed order afterwards, so a run is
 * bit-for-bit repeatable at a given thread count. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#include "ops/cpu_kernels.h"

#ifndef REAL
#error "define REAL, KS and CBLAS_GEMM before including cpu_kernels_impl.h"
#endif

typedef REAL real;

void KS(gemm)(int trans_a, int trans_b, int M, int N, int K, real alpha, const real *A, const real *B, real beta,
              real *C)
{
    if (M == 0 || N == 0)
        return;
    CBLAS_GEMM(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
               alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C, N);
}

void KS(add)(real *y, const real *x, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

void KS(scale)(real *x, size_t n, real s)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        x[i] *= s;
}

double KS(sumsq)(const real *x, size_t n)
{
    /* Fixed blocks summed in order: the same value at any thread count. */
    enum { BLOCK = 4096 };
    size_t nb = (n + BLOCK - 1) / BLOCK;
    double *part = malloc((nb ? nb : 1) * sizeof *part);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        double s = 0;
        size_t end = (b + 1) * BLOCK < n ? (b + 1) * BLOCK : n;
        for (size_t i = b * BLOCK; i < end; i++)
            s += (double)x[i] * (double)x[i];
        part[b] = s;
    }
    double total = 0;
    for (size_t b = 0; b < nb; b++)
        total += part[b];
    free(part);
    return total;
}

void KS(embedding_fwd)(real *out, const real *table, const int32_t *tokens, int n, int C)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * C, table + (size_t)tokens[i] * C, (size_t)C * sizeof(real));
}

void KS(embedding_bwd)(real *dtable, const real *dout, const int32_t *tokens, int n, int C)
{
    /* Split by columns, so each table entry has one writer and tokens
     * that repeat add up in order. */
    enum { COLS = 32 };
    int nblocks = (C + COLS - 1) / COLS;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < nblocks; b++) {
        int c0 = b * COLS, c1 = c0 + COLS < C ? c0 + COLS : C;
        for (int i = 0; i < n; i++) {
            real *dst = dtable + (size_t)tokens[i] * C;
            const real *src = dout + (size_t)i * C;
            for (int c = c0; c < c1; c++)
                dst[c] += src[c];
        }
    }
}

void KS(rmsnorm_fwd)(real *out, real *rstd, const real *x, const real *w, int n, int C, real eps)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * C;
        real *oi = out + (size_t)i * C;
        real ss = 0;
        for (int c = 0; c < C; c++)
            ss += xi[c] * xi[c];
        real r = 1 / sqrt(ss / C + eps);
        rstd[i] = r;
        for (int c = 0; c < C; c++)
            oi[c] = xi[c] * r * w[c];
    }
}

void KS(rmsnorm_bwd)(real *dx, real *dw, const real *dout, const real *x, const real *w, const real *rstd, int n,
                     int C)
{
    /* y = x r w, r = (mean(x^2) + eps)^-1/2:
     * dx = r (dy w) - x r^3 mean(dy w x). */
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        const real *xi = x + (size_t)i * C, *di = dout + (size_t)i * C;
        real *dxi = dx + (size_t)i * C;
        real r = rstd[i], dot = 0;
        for (int c = 0; c < C; c++)
            dot += di[c] * w[c] * xi[c];
        real k = r * r * r * dot / C;
        for (int c = 0; c < C; c++)
            dxi[c] += r * di[c] * w[c] - k * xi[c];
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        real s = 0;
        for (int i = 0; i < n; i++)
            s += dout[(size_t)i * C + c] * x[(size_t)i * C + c] * rstd[i];
        dw[c] += s;
    }
}

void KS(rope_table)(real *cos_sin, int max_pos, int hd, double theta)
{
    int half = hd / 2;
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < half; i++) {
            /* As transformers computes it: inv_freq in float, then p * inv_freq. */
            double inv_freq = 1.0 / pow(theta, (double)(2 * i) / hd);
            double a = (double)p * inv_freq;
            cos_sin[((size_t)p * half + i) * 2] = (real)cos(a);
            cos_sin[((size_t)p * half + i) * 2 + 1] = (real)sin(a);
        }
}

void KS(rope)(real *x, const int32_t *pos, const real *cos_sin, int n, int heads, int hd, int inverse)
{
    /* rotate-half: the pair is (x[i], x[i + hd/2]), not adjacent elements. */
    int half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n; t++) {
        const real *cs = cos_sin + (size_t)pos[t] * half * 2;
        for (int h = 0; h < heads; h++) {
            real *v = x + (size_t)t * heads * hd + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                real c = cs[2 * i], s = inverse ? -cs[2 * i + 1] : cs[2 * i + 1];
                real a = v[i], b = v[i + half];
                v[i] = a * c - b * s;
                v[i + half] = b * c + a * s;
            }
        }
    }
}

/* ---- attention ------------------------------------------------------------------------- */

/* The keys query i may see: [first, i]. */
static inline int KS(attn_first)(int i, int32_t pos_i, int local, int window)
{
    int first = i - pos_i;
    if (first < 0)
        first = 0;
    if (local && i - window + 1 > first)
        first = i - window + 1;
    return first;
}

/* p[first..i] = softmax(scale * q . k_j). */
static void KS(attn_row)(real *p, const real *qi, const real *k, size_t k_stride, int first, int i, int hd,
                         real scale)
{
    real mx = -INFINITY;
    for (int j = first; j <= i; j++) {
        const real *kj = k + (size_t)j * k_stride;
        real s = 0;
        for (int d = 0; d < hd; d++)
            s += qi[d] * kj[d];
        s *= scale;
        p[j] = s;
        if (s > mx)
            mx = s;
    }
    real sum = 0;
    for (int j = first; j <= i; j++) {
        p[j] = exp(p[j] - mx);
        sum += p[j];
    }
    for (int j = first; j <= i; j++)
        p[j] /= sum;
}

void KS(attention_fwd)(real *out, real *probs_g, real *probs_l, const real *q, const real *k, const real *v,
                       const int32_t *pos, const real *alpha, const dsk_attn_shape *s)
{
    int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, group = H / KV;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
    real scale = 1 / sqrt((real)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    real a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const real *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hd;
            const real *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hd;
            for (int i = 0; i < T; i++) {
                const real *qi = q + ((size_t)b * T + i) * qs + (size_t)h * hd;
                real *oi = out + ((size_t)b * T + i) * qs + (size_t)h * hd;
                int32_t pi = pos[(size_t)b * T + i];
                for (int d = 0; d < hd; d++)
                    oi[d] = 0;
                for (int part = 0; part < 2; part++) {
                    if (part == 0 ? !use_g : !use_l)
                        continue;
                    real *p = (part == 0 ? probs_g : probs_l) + (((size_t)b * H + h) * T + i) * T;
                    real wgt = part == 0 ? a : 1 - a;
                    int first = KS(attn_first)(i, pi, part == 1, s->window);
                    KS(attn_row)(p, qi, kb, ks, first, i, hd, scale);
                    for (int j = first; j <= i; j++) {
                        const real *vj = vb + (size_t)j * ks;
                        real pj = wgt * p[j];
                        for (int d = 0; d < hd; d++)
                            oi[d] += pj * vj[d];
                    }
                }
            }
        }
}

void KS(attention_bwd)(real *dq, real *dk, real *dv, real *dalpha, const real *dout, const real *q, const real *k,
                       const real *v, const real *probs_g, const real *probs_l, const int32_t *pos,
                       const real *alpha, const dsk_attn_shape *s)
{
    int B = s->B, T = s->T, H = s->H, KV = s->KV, hd = s->hd, group = H / KV;
    size_t qs = (size_t)H * hd, ks = (size_t)KV * hd;
    real scale = 1 / sqrt((real)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    real a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
    /* One task per (row, kv head) owns its slices of dk and dv: the query
     * heads of a group add into them in order, without races. */
    real *dalpha_part = calloc((size_t)B * KV, sizeof *dalpha_part);
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int kh = 0; kh < KV; kh++) {
            real *dov = malloc((size_t)T * sizeof *dov);   /* do_i . v_j for the current query */
            const real *kb = k + (size_t)b * T * ks + (size_t)kh * hd;
            const real *vb = v + (size_t)b * T * ks + (size_t)kh * hd;
            real *dkb = dk + (size_t)b * T * ks + (size_t)kh * hd;
            real *dvb = dv + (size_t)b * T * ks + (size_t)kh * hd;
            for (int j = 0; j < T; j++)
                for (int d = 0; d < hd; d++)
                    dkb[(size_t)j * ks + d] = dvb[(size_t)j * ks + d] = 0;
            real da = 0;
            for (int h = kh * group; h < (kh + 1) * group; h++)
                for (int i = 0; i < T; i++) {
                    const real *qi = q + ((size_t)b * T + i) * qs + (size_t)h * hd;
                    const real *doi = dout + ((size_t)b * T + i) * qs + (size_t)h * hd;
                    real *dqi = dq + ((size_t)b * T + i) * qs + (size_t)h * hd;
                    int32_t pi = pos[(size_t)b * T + i];
                    for (int d = 0; d < hd; d++)
                        dqi[d] = 0;
                    int first_all = KS(attn_first)(i, pi, !use_g, s->window);
                    for (int j = first_all; j <= i; j++) {
                        const real *vj = vb + (size_t)j * ks;
                        real t = 0;
                        for (int d = 0; d < hd; d++)
                            t += doi[d] * vj[d];
                        dov[j] = t;
                    }
                    size_t row = (((size_t)b * H + h) * T + i) * T;
                    const real *pg = use_g ? probs_g + row : NULL, *pl = use_l ? probs_l + row : NULL;
                    if (use_g && use_l) {
                        int first_l = KS(attn_first)(i, pi, 1, s->window);
                        for (int j = first_all; j <= i; j++)
                            da += (pg[j] - (j >= first_l ? pl[j] : 0)) * dov[j];
                    }
                    for (int part = 0; part < 2; part++) {
                        if (part == 0 ? !use_g : !use_l)
                            continue;
                        const real *p = part == 0 ? pg : pl;
                        real wgt = part == 0 ? a : 1 - a;
                        int first = KS(attn_first)(i, pi, part == 1, s->window);
                        /* dP_j = wgt dov_j; dS_j = P_j (dP_j - sum_j P_j dP_j). */
                        real rowdot = 0;
                        for (int j = first; j <= i; j++)
                            rowdot += p[j] * dov[j];
                        for (int j = first; j <= i; j++) {
                            real ds = wgt * p[j] * (dov[j] - rowdot) * scale;
                            const real *kj = kb + (size_t)j * ks;
                            real *dkj = dkb + (size_t)j * ks, *dvj = dvb + (size_t)j * ks;
                            real pw = wgt * p[j];
                            for (int d = 0; d < hd; d++) {
                                dqi[d] += ds * kj[d];
                                dkj[d] += ds * qi[d];
                                dvj[d] += pw * doi[d];
                            }
                        }
                    }
                }
            dalpha_part[(size_t)b * KV + kh] = da;
            free(dov);
        }
    if (use_g && use_l && dalpha) {
        real da = 0;
        for (size_t i = 0; i < (size_t)B * KV; i++)
            da += dalpha_part[i];
        dalpha[0] += da;
    }
    free(dalpha_part);
}

void KS(attention_decode)(real *out, const real *q, const real *k_cache, const real *v_cache, int n_keys,
                          const real *alpha, const dsk_attn_shape *s)
{
    int H = s->H, KV = s->KV, hd = s->hd, group = H / KV, i = n_keys - 1;
    size_t ks = (size_t)KV * hd;
    real scale = 1 / sqrt((real)hd);
    int use_g = s->kind != DSK_ATTN_LOCAL, use_l = s->kind != DSK_ATTN_GLOBAL;
    real a = s->kind == DSK_ATTN_GLOBAL ? 1 : s->kind == DSK_ATTN_LOCAL ? 0 : alpha[0];
#pragma omp parallel for schedule(static)
    for (int h = 0; h < H; h++) {
        real *p = malloc((size_t)n_keys * sizeof *p);
        const real *qh = q + (size_t)h * hd;
        const real *kb = k_cache + (size_t)(h / group) * hd, *vb = v_cache + (size_t)(h / group) * hd;
        real *oh = out + (size_t)h * hd;
        for (int d = 0; d < hd; d++)
            oh[d] = 0;
        for (int part = 0; part < 2; part++) {
            if (part == 0 ? !use_g : !use_l)
                continue;
            int first = KS(attn_first)(i, i, part == 1, s->window);
            real wgt = part == 0 ? a : 1 - a;
            KS(attn_row)(p, qh, kb, ks, first, i, hd, scale);
            for (int j = first; j <= i; j++)
                for (int d = 0; d < hd; d++)
                    oh[d] += wgt * p[j] * vb[(size_t)j * ks + d];
        }
        free(p);
    }
}

/* ---- feed-forward, loss, optimizer ------------------------------------------------------------ */

void KS(swiglu_fwd)(real *out, const real *g, const real *u, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = g[i] / (1 + exp(-g[i])) * u[i];
}

void KS(swiglu_bwd)(real *dg, real *du, const real *dout, const real *g, const real *u, size_t n)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real sig = 1 / (1 + exp(-g[i]));
        real silu = g[i] * sig;
        du[i] = dout[i] * silu;
        dg[i] = dout[i] * u[i] * sig * (1 + g[i] * (1 - sig));
    }
}

void KS(softmax_xent)(real *loss, real *logits, const int32_t *targets, const real *weight, int n, int V,
                      real grad_scale)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++) {
        real *z = logits + (size_t)i * V;
        int32_t t = targets[i];
        real w = t < 0 || t >= V ? 0 : weight ? weight[i] : 1;
        real mx = -INFINITY;
        for (int c = 0; c < V; c++)
            if (z[c] > mx)
                mx = z[c];
        real sum = 0;
        for (int c = 0; c < V; c++)
            sum += exp(z[c] - mx);
        real lse = mx + log(sum);
        loss[i] = w == 0 ? 0 : w * (lse - z[t]);
        if (grad_scale != 0) {
            real k = grad_scale * w;
            for (int c = 0; c < V; c++)
                z[c] = k * exp(z[c] - lse);
            if (w != 0)
                z[t] -= k;
        }
    }
}

void KS(adamw)(real *param, const real *grad, real *m, real *v, size_t n, real lr, real beta1, real beta2, real eps,
               real weight_decay, real c1, real c2)
{
    /* PyTorch's AdamW, operation for operation, so the reference test can
     * compare weights after several steps. */
    real step_size = lr / c1, c2_sqrt = sqrt(c2), decay = 1 - lr * weight_decay;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real g = grad[i];
        param[i] *= decay;
        m[i] += (g - m[i]) * (1 - beta1);
        v[i] = v[i] * beta2 + (1 - beta2) * g * g;
        real denom = sqrt(v[i]) / c2_sqrt + eps;
        param[i] -= step_size * (m[i] / denom);
    }
}
