/* int4 GPTQ layout: validation, packing, unpacking and dequantization
 * (the scales' half-precision conversions are lib/ops/half.c's).  The
 * runtime layout, the kernels and dsk_q4_free are in int4_matmul.c. */
#include "quant/int4.h"

#include <stdlib.h>
#include <string.h>

/* ---- validation --------------------------------------------------------------------------------- */

/* Sizes a layer may have: generous for any real model (the largest have
 * about 2^30 weights per matrix), small enough that every index fits in
 * an int or size_t and a hostile header cannot ask for terabytes. */
enum { Q4_MAX_DIM = 1 << 24 };
#define Q4_MAX_WEIGHTS (1ull << 34)

static int check_shape(const dsk_q4_linear *L, dsk_err *err)
{
    int r = L->rows, c = L->cols, G = L->group_size;
    if (r <= 0 || c <= 0 || r > Q4_MAX_DIM || c > Q4_MAX_DIM)
        return dsk_fail(err, EX_DATAERR, "int4 layer: shape %dx%d is out of range (1..%d each)", r, c, Q4_MAX_DIM);
    if ((unsigned long long)r * (unsigned long long)c > Q4_MAX_WEIGHTS)
        return dsk_fail(err, EX_DATAERR, "int4 layer: shape %dx%d has more than 2^34 weights", r, c);
    if (r % 8 || c % 8)
        return dsk_fail(err, EX_DATAERR, "int4 layer %dx%d: rows and columns must be multiples of 8", r, c);
    if (G <= 0 || c % G)
        return dsk_fail(err, EX_DATAERR, "int4 layer %dx%d: group size %d does not divide the %d input columns", r,
                        c, G, c);
    return 0;
}

static int check_g_idx(const int32_t *g_idx, int cols, int ngroups, dsk_err *err)
{
    if (!g_idx)
        return 0;
    for (int i = 0; i < cols; i++)
        if (g_idx[i] < 0 || g_idx[i] >= ngroups)
            return dsk_fail(err, EX_DATAERR, "int4 layer: g_idx[%d] = %d is outside the groups 0..%d", i,
                            (int)g_idx[i], ngroups - 1);
    return 0;
}

int dsk_q4_check(const dsk_q4_linear *L, dsk_err *err)
{
    int rc = check_shape(L, err);
    if (rc)
        return rc;
    if (!L->qweight || !L->qzeros || !L->scales)
        return dsk_fail(err, EX_DATAERR, "int4 layer %dx%d: qweight, qzeros or scales missing", L->rows, L->cols);
    int ngroups = L->cols / L->group_size;
    if ((rc = check_g_idx(L->g_idx, L->cols, ngroups, err)))
        return rc;
    size_t ns = (size_t)ngroups * L->rows;
    for (size_t k = 0; k < ns; k++)
        if ((L->scales[k] & 0x7c00) == 0x7c00)
            return dsk_fail(err, EX_DATAERR, "int4 layer %dx%d: scale of group %zu row %zu is %s", L->rows,
                            L->cols, k / (size_t)L->rows, k % (size_t)L->rows,
                            (L->scales[k] & 0x3ff) ? "NaN" : "infinite");
    return 0;
}

/* ---- pack / unpack ------------------------------------------------------------------------------ */

int dsk_q4_pack(dsk_q4_linear *L, const uint8_t *codes, const uint8_t *zeros, const float *scales,
                const int32_t *g_idx, dsk_err *err)
{
    int rc = check_shape(L, err);
    if (rc)
        return rc;
    int rows = L->rows, cols = L->cols, G = L->group_size, ngroups = cols / G;
    size_t nw = (size_t)rows * cols, ns = (size_t)ngroups * rows;
    /* Validate everything before allocating, so a failure leaves L as it was. */
    for (size_t k = 0; k < nw; k++)
        if (codes[k] > 15)
            return dsk_fail(err, EX_DATAERR, "int4 pack: code %d at row %zu column %zu is not in 0..15", codes[k],
                            k / (size_t)cols, k % (size_t)cols);
    for (size_t k = 0; k < ns; k++) {
        if (zeros[k] < 1 || zeros[k] > 16)
            return dsk_fail(err, EX_DATAERR,
                            "int4 pack: zero point %d of group %zu row %zu is not in 1..16 "
                            "(the GPTQ layout stores zero - 1 in 4 bits)",
                            zeros[k], k / (size_t)rows, k % (size_t)rows);
        if ((dsk_f32_to_f16(scales[k]) & 0x7c00) == 0x7c00)
            return dsk_fail(err, EX_DATAERR, "int4 pack: scale %g of group %zu row %zu does not fit in fp16",
                            (double)scales[k], k / (size_t)rows, k % (size_t)rows);
    }
    if ((rc = check_g_idx(g_idx, cols, ngroups, err)))
        return rc;

    uint32_t *qw = dsk_xmalloc(nw / 8 * sizeof *qw);
    uint32_t *qz = dsk_xmalloc(ns / 8 * sizeof *qz);
    uint16_t *sc = dsk_xmalloc(ns * sizeof *sc);
    int32_t *gi = dsk_xmalloc((size_t)cols * sizeof *gi);
#pragma omp parallel for schedule(static)
    for (int j = 0; j < rows; j++) {
        const uint8_t *row = codes + (size_t)j * cols;
        for (int i8 = 0; i8 < cols / 8; i8++) {
            uint32_t w = 0;
            for (int k = 0; k < 8; k++)
                w |= (uint32_t)row[8 * i8 + k] << (4 * k);
            qw[(size_t)i8 * rows + j] = w;
        }
    }
    for (size_t k8 = 0; k8 < ns / 8; k8++) {
        uint32_t w = 0;
        for (int k = 0; k < 8; k++)
            w |= (uint32_t)(zeros[8 * k8 + k] - 1) << (4 * k);
        qz[k8] = w;
    }
    for (size_t k = 0; k < ns; k++)
        sc[k] = dsk_f32_to_f16(scales[k]);
    for (int i = 0; i < cols; i++)
        gi[i] = g_idx ? g_idx[i] : i / G;

    /* int32_t and uint32_t may alias each other; the tensors are int32 in
     * the checkpoint, the bits are what matter. */
    L->qweight = (int32_t *)qw;
    L->qzeros = (int32_t *)qz;
    L->scales = sc;
    L->g_idx = gi;
    L->owns_packed = 1;
    return 0;
}

void dsk_q4_unpack(const dsk_q4_linear *L, uint8_t *codes, uint8_t *zeros, float *scales)
{
    int rows = L->rows, cols = L->cols, ngroups = cols / L->group_size;
    const uint32_t *qw = (const uint32_t *)L->qweight, *qz = (const uint32_t *)L->qzeros;
    if (codes) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < rows; j++)
            for (int i = 0; i < cols; i++)
                codes[(size_t)j * cols + i] = (uint8_t)((qw[(size_t)(i / 8) * rows + j] >> (4 * (i % 8))) & 15);
    }
    for (int g = 0; g < ngroups; g++)
        for (int j = 0; j < rows; j++) {
            size_t k = (size_t)g * rows + j;
            if (zeros)
                zeros[k] = (uint8_t)(((qz[k / 8] >> (4 * (j % 8))) & 15) + 1);
            if (scales)
                scales[k] = dsk_f16_to_f32(L->scales[k]);
        }
}

void dsk_q4_dequantize(const dsk_q4_linear *L, float *W)
{
    int rows = L->rows, cols = L->cols, G = L->group_size;
    const uint32_t *qw = (const uint32_t *)L->qweight, *qz = (const uint32_t *)L->qzeros;
#pragma omp parallel for schedule(static)
    for (int j = 0; j < rows; j++)
        for (int i = 0; i < cols; i++) {
            int g = L->g_idx ? L->g_idx[i] : i / G;
            size_t k = (size_t)g * rows + j;
            int q = (int)((qw[(size_t)(i / 8) * rows + j] >> (4 * (i % 8))) & 15);
            int z = (int)((qz[k / 8] >> (4 * (j % 8))) & 15) + 1;
            W[(size_t)j * cols + i] = dsk_f16_to_f32(L->scales[k]) * (float)(q - z);
        }
}
