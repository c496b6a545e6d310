/* GPTQ on one weight matrix.  Notation as in the paper: H = 2XᵀX over
 * the calibration inputs, U the upper Cholesky factor of H⁻¹
 * (H⁻¹ = UᵀU); quantizing column i leaves the error e = (w_i - q_i) /
 * U[i][i], which the columns after i absorb as w_k -= e U[i][k]. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"

/* LAPACK (OpenBLAS ships it).  Column-major: a row-major symmetric
 * matrix is its own transpose, and the 'L' factor of the column-major
 * view is the row-major upper factor U with A = UᵀU. */
extern void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
extern void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

/* U with H⁻¹ = UᵀU, in place; the lower triangle is zeroed.  Nonzero
 * when H is not positive definite. */
static int inverse_cholesky(double *H, int n)
{
    int info = 0;
    dpotrf_("L", &n, H, &n, &info);
    if (info)
        return info;
    dpotri_("L", &n, H, &n, &info);
    if (info)
        return info;
    for (int i = 0; i < n; i++)          /* row-major upper triangle holds H⁻¹: mirror it */
        for (int j = 0; j < i; j++)
            H[(size_t)i * n + j] = H[(size_t)j * n + i];
    dpotrf_("L", &n, H, &n, &info);
    if (info)
        return info;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            H[(size_t)i * n + j] = 0;
    return 0;
}

static const double *sort_diag;
static int by_diag_desc(const void *a, const void *b)
{
    double x = sort_diag[*(const int *)a], y = sort_diag[*(const int *)b];
    if (x != y)
        return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;   /* stable: torch.argsort is not, but ties are rare */
}

int dsk_quant_gptq(const float *W, double *H, const dsk_gptq_opts *o, dsk_qmat *q, dsk_err *err)
{
    int rows = q->rows, n = q->cols, G = q->group_size;
    int grouped = G < n;
    int Bk = o->block > 0 ? o->block : 128;
    if (grouped)
        Bk = (Bk + G - 1) / G * G;   /* a group's parameters come from one block */
    double *diag = dsk_xmalloc((size_t)n * sizeof *diag);
    int *perm = dsk_xmalloc((size_t)n * sizeof *perm);
    float *Wp = dsk_xmalloc((size_t)rows * n * sizeof *Wp);
    for (int i = 0; i < n; i++) {
        perm[i] = i;
        diag[i] = H[(size_t)i * n + i];
    }
    if (o->act_order) {
        sort_diag = diag;
        qsort(perm, (size_t)n, sizeof *perm, by_diag_desc);
    }
    /* The working copy, columns in processing order; a dead input's
     * weight is 0 (its H row is then the identity's). */
    for (int j = 0; j < rows; j++)
        for (int p = 0; p < n; p++)
            Wp[(size_t)j * n + p] = diag[perm[p]] == 0 ? 0 : W[(size_t)j * n + perm[p]];
    double *Hp = dsk_xmalloc((size_t)n * n * sizeof *Hp);
    double mean = 0;
    for (int p = 0; p < n; p++)
        for (int r = 0; r < n; r++)
            Hp[(size_t)p * n + r] = H[(size_t)perm[p] * n + perm[r]];
    for (int p = 0; p < n; p++) {
        if (Hp[(size_t)p * n + p] == 0)
            Hp[(size_t)p * n + p] = 1;
        mean += Hp[(size_t)p * n + p] / n;
    }
    double damp = (o->damp > 0 ? o->damp : 0.01) * mean;
    int info = 1;
    for (int tries = 0; tries < 4 && info; tries++, damp *= 10) {
        memcpy(H, Hp, (size_t)n * n * sizeof *H);
        for (int p = 0; p < n; p++)
            H[(size_t)p * n + p] += damp;
        info = inverse_cholesky(H, n);
    }
    free(Hp);
    if (info) {
        free(diag), free(perm), free(Wp);
        return dsk_fail(err, EX_SOFTWARE, "GPTQ: the Hessian is not positive definite even with 1000x the damping "
                        "(leading minor %d); more calibration rows may help", info);
    }
    float *U = dsk_xmalloc((size_t)n * n * sizeof *U);
    for (size_t i = 0; i < (size_t)n * n; i++)
        U[i] = (float)H[i];
    uint8_t *codes = dsk_xmalloc((size_t)rows * n);
    float *Err = dsk_xmalloc((size_t)rows * Bk * sizeof *Err);
    if (!grouped)
        for (int j = 0; j < rows; j++)
            (o->search ? dsk_quant_params_search : dsk_quant_params)(Wp + (size_t)j * n, 1, n, o->sym, &q->scales[j],
                                                                     &q->zeros[j]);
    for (int i1 = 0; i1 < n; i1 += Bk) {
        int i2 = i1 + Bk < n ? i1 + Bk : n, count = i2 - i1;
        #pragma omp parallel for schedule(static)
        for (int j = 0; j < rows; j++) {
            float *w = Wp + (size_t)j * n, *e = Err + (size_t)j * Bk;
            float scale = 0;
            uint8_t zero = 0;
            if (!grouped)
                scale = q->scales[j], zero = q->zeros[j];
            for (int p = i1; p < i2; p++) {
                if (grouped && p % G == 0) {
                    int gn = p + G <= n ? G : n - p;
                    size_t at = (size_t)(p / G) * rows + j;
                    (o->search ? dsk_quant_params_search : dsk_quant_params)(w + p, 1, gn, o->sym, &q->scales[at],
                                                                             &q->zeros[at]);
                    scale = q->scales[at], zero = q->zeros[at];
                }
                uint8_t c = dsk_quant_code(w[p], scale, zero);
                codes[(size_t)j * n + p] = c;
                float d = U[(size_t)p * n + p];
                float ep = (w[p] - scale * ((int)c - (int)zero)) / d;
                const float *u = U + (size_t)p * n;
                for (int k = p + 1; k < i2; k++)
                    w[k] -= ep * u[k];
                e[p - i1] = ep;
            }
        }
        /* The lazy update: the rest of the columns absorb this block's
         * errors in one product. */
        if (i2 < n)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n - i2, count, -1.0f, Err, Bk,
                        U + (size_t)i1 * n + i2, n, 1.0f, Wp + i2, n);
    }
    for (int p = 0; p < n; p++)
        q->g_idx[perm[p]] = grouped ? p / G : 0;
    for (int j = 0; j < rows; j++)
        for (int p = 0; p < n; p++)
            q->codes[(size_t)j * n + perm[p]] = codes[(size_t)j * n + p];
    free(codes), free(Err), free(U), free(diag), free(perm), free(Wp);
    return 0;
}
