/* AWQ: activation-aware scaling of input channels, and clipping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

/* W·diag(s) quantized by RTN, scaled back: the weight the model sees. */
static void scaled_rtn(const float *W, int rows, int cols, const float *s, int group, int sym, float *out)
{
    float *Ws = dsk_xmalloc((size_t)rows * cols * sizeof *Ws);
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++)
            Ws[(size_t)j * cols + i] = W[(size_t)j * cols + i] * s[i];
    dsk_qmat q;
    dsk_qmat_init(&q, rows, cols, group);
    dsk_quant_rtn(Ws, sym, 0, &q);   /* AutoAWQ's scale search measures plain min-max rounding */
    dsk_qmat_dequantize(&q, out);
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++)
            out[(size_t)j * cols + i] /= s[i];
    dsk_qmat_free(&q);
    free(Ws);
}

/* Whether trial error e beats best: a NaN (a scale past fp16, say) never
 * does, and any number beats a NaN.  The first trial is always taken, so
 * that every output is written even when every error is NaN (the int4
 * packing then refuses the layer, naming it, as for RTN). */
static int better(int first, double e, double best)
{
    return first || (!isnan(e) && (isnan(best) || e < best));
}

double dsk_awq_search(float *const *W, const int *rows, int n, int cols, const double *H, const double *absmean,
                      int group, int sym, int grid, float *s)
{
    if (grid < 1)
        grid = 20;
    float *trial = dsk_xmalloc((size_t)cols * sizeof *trial);
    double best = INFINITY, best_alpha = 0;
    int max_rows = 0;
    for (int k = 0; k < n; k++)
        max_rows = rows[k] > max_rows ? rows[k] : max_rows;
    float *Wq = dsk_xmalloc((size_t)max_rows * cols * sizeof *Wq);
    for (int g = 0; g < grid; g++) {
        double alpha = (double)g / grid, lo = INFINITY, hi = 0;
        for (int i = 0; i < cols; i++) {
            double v = pow(absmean[i] > 1e-4 ? absmean[i] : 1e-4, alpha);
            trial[i] = (float)v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        double norm = sqrt(lo * hi);
        for (int i = 0; i < cols; i++)
            trial[i] = (float)(trial[i] / norm);
        double e = 0;
        for (int k = 0; k < n; k++) {
            scaled_rtn(W[k], rows[k], cols, trial, group, sym, Wq);
            e += dsk_quant_output_sq_error(W[k], Wq, rows[k], cols, H);
        }
        if (better(g == 0, e, best)) {
            best = e;
            best_alpha = alpha;
            memcpy(s, trial, (size_t)cols * sizeof *s);
        }
    }
    free(trial);
    free(Wq);
    return best_alpha;
}

void dsk_awq_quantize_clipped(const float *W, const double *H, int sym, int grid, dsk_qmat *q)
{
    if (grid < 1)
        grid = 20;
    int G = q->group_size, rows = q->rows, cols = q->cols;
    #pragma omp parallel for schedule(dynamic, 4)
    for (int j = 0; j < rows; j++) {
        const float *row = W + (size_t)j * cols;
        double *e = dsk_xmalloc((size_t)G * sizeof *e);
        for (int g = 0; g < q->n_groups; g++) {
            int c0 = g * G, n = c0 + G <= cols ? G : cols - c0;
            size_t at = (size_t)g * rows + j;
            double best = INFINITY;
            for (int r = 0; r < grid; r++) {
                /* Ratios 1, 1 - 0.5/grid, ... down to just above 0.5. */
                float ratio = 1.0f - 0.5f * (float)r / (float)grid, scale;
                uint8_t zero;
                dsk_quant_params_clip(row + c0, 1, n, sym, ratio, &scale, &zero);
                for (int i = 0; i < n; i++)
                    e[i] = row[c0 + i] - scale * ((int)dsk_quant_code(row[c0 + i], scale, zero) - (int)zero);
                double err = 0;
                for (int a = 0; a < n; a++) {
                    const double *h = H + (size_t)(c0 + a) * cols + c0;
                    double t = 0;
                    for (int b = 0; b < n; b++)
                        t += h[b] * e[b];
                    err += e[a] * t;
                }
                if (better(r == 0, err, best)) {
                    best = err;
                    q->scales[at] = scale;
                    q->zeros[at] = zero;
                }
            }
            for (int i = c0; i < c0 + n; i++)
                q->codes[(size_t)j * cols + i] = dsk_quant_code(row[i], q->scales[at], q->zeros[at]);
        }
        free(e);
    }
}
