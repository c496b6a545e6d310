/* Group parameters, round-to-nearest, and the unpacked matrix. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/int4.h"
#include "quant/quant.h"

void dsk_qmat_init(dsk_qmat *q, int rows, int cols, int group_size)
{
    memset(q, 0, sizeof *q);
    q->rows = rows;
    q->cols = cols;
    q->group_size = group_size;
    q->n_groups = (cols + group_size - 1) / group_size;
    q->codes = dsk_xmalloc((size_t)rows * cols);
    q->zeros = dsk_xmalloc((size_t)q->n_groups * rows);
    q->scales = dsk_xmalloc((size_t)q->n_groups * rows * sizeof *q->scales);
    q->g_idx = dsk_xmalloc((size_t)cols * sizeof *q->g_idx);
    for (int i = 0; i < cols; i++)
        q->g_idx[i] = i / group_size;
}

void dsk_qmat_free(dsk_qmat *q)
{
    free(q->codes);
    free(q->zeros);
    free(q->scales);
    free(q->g_idx);
    memset(q, 0, sizeof *q);
}

void dsk_qmat_dequantize(const dsk_qmat *q, float *W)
{
    #pragma omp parallel for schedule(static)
    for (int j = 0; j < q->rows; j++)
        for (int i = 0; i < q->cols; i++) {
            size_t g = (size_t)q->g_idx[i] * q->rows + j;
            W[(size_t)j * q->cols + i] = q->scales[g] * ((int)q->codes[(size_t)j * q->cols + i] - (int)q->zeros[g]);
        }
}

static float fp16_scale(float s)
{
    float h = dsk_f16_to_f32(dsk_f32_to_f16(s));
    return h > 0 ? h : 5.9604645e-8f;   /* the smallest fp16 subnormal: never divide by 0 */
}

void dsk_quant_params(const float *w, long stride, int n, int sym, float *scale, uint8_t *zero)
{
    dsk_quant_params_clip(w, stride, n, sym, 1.0f, scale, zero);
}

void dsk_quant_params_clip(const float *w, long stride, int n, int sym, float ratio, float *scale, uint8_t *zero)
{
    float lo = 0, hi = 0;
    for (int i = 0; i < n; i++) {
        float v = w[i * stride];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    lo *= ratio;
    hi *= ratio;
    if (sym) {
        float m = fmaxf(-lo, hi);
        if (m == 0)
            m = 1;
        *scale = fp16_scale(2 * m / 15);
        *zero = 8;
        return;
    }
    if (lo == 0 && hi == 0)
        lo = -1, hi = 1;
    float s = fp16_scale((hi - lo) / 15);
    float z = nearbyintf(-lo / s);
    if (z < 1) {
        /* No negative weight: zero 1 and the 14 steps above it. */
        s = fp16_scale(hi / 14);
        z = 1;
    }
    *scale = s;
    *zero = (uint8_t)(z > 15 ? 15 : z);
}

void dsk_quant_params_search(const float *w, long stride, int n, int sym, float *scale, uint8_t *zero)
{
    enum { GRID = 100, STEPS = 80 };   /* ratios 1 - i / GRID, i < STEPS */
    /* Ratio 1 first and kept unless another does strictly better: a
     * group whose scale overflows fp16 (every error inf or NaN) keeps
     * dsk_quant_params's, which the int4 packing then refuses. */
    double best = 0;
    for (int i = 0; i < STEPS; i++) {
        float s;
        uint8_t z;
        dsk_quant_params_clip(w, stride, n, sym, 1.0f - (float)i / GRID, &s, &z);
        double e = 0;
        for (int k = 0; k < n; k++) {
            float v = w[k * stride], d = s * ((int)dsk_quant_code(v, s, z) - (int)z) - v;
            e += (double)d * d;
        }
        if (i == 0 || e < best)
            best = e, *scale = s, *zero = z;
    }
}

void dsk_quant_rtn(const float *W, int sym, int search, dsk_qmat *q)
{
    int G = q->group_size;
    #pragma omp parallel for schedule(static)
    for (int j = 0; j < q->rows; j++) {
        const float *row = W + (size_t)j * q->cols;
        for (int g = 0; g < q->n_groups; g++) {
            int c0 = g * G, n = c0 + G <= q->cols ? G : q->cols - c0;
            size_t at = (size_t)g * q->rows + j;
            if (search)
                dsk_quant_params_search(row + c0, 1, n, sym, &q->scales[at], &q->zeros[at]);
            else
                dsk_quant_params(row + c0, 1, n, sym, &q->scales[at], &q->zeros[at]);
            for (int i = c0; i < c0 + n; i++)
                q->codes[(size_t)j * q->cols + i] = dsk_quant_code(row[i], q->scales[at], q->zeros[at]);
        }
    }
}

double dsk_quant_output_sq_error(const float *W, const float *Wq, int rows, int cols, const double *H)
{
    size_t n = (size_t)rows * cols;
    double sum = 0;
    if (!H) {
        for (size_t i = 0; i < n; i++) {
            double e = (double)W[i] - (Wq ? Wq[i] : 0);
            sum += e * e;
        }
        return sum;
    }
    /* One product: E H, then the trace against E. */
    double *E = dsk_xmalloc(n * sizeof *E), *EH = dsk_xmalloc(n * sizeof *EH);
    for (size_t i = 0; i < n; i++)
        E[i] = (double)W[i] - (Wq ? Wq[i] : 0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols, cols, 1.0, E, cols, H, cols, 0.0, EH, cols);
    for (size_t i = 0; i < n; i++)
        sum += EH[i] * E[i];
    free(E);
    free(EH);
    return sum;
}

double dsk_quant_output_error(const float *W, const float *Wq, int rows, int cols, const double *H)
{
    double den = dsk_quant_output_sq_error(W, NULL, rows, cols, H);
    return den > 0 ? dsk_quant_output_sq_error(W, Wq, rows, cols, H) / den : 0;
}
