/* ggml block formats: encoding and decoding (see ggml_quant.h for the
 * layouts).  Written from the format description; the scale choices are
 * explained where they are made. */
#include "quant/ggml_quant.h"

#include <math.h>
#include <string.h>
#include <strings.h>

/* ---- type table ----------------------------------------------------------------------------- */

static const struct {
    int type;
    const char *name;
    size_t block_len, block_bytes;
} types[] = {
    {DSK_GGUF_F32, "f32", 1, 4},
    {DSK_GGUF_F16, "f16", 1, 2},
    {DSK_GGUF_Q4_0, "q4_0", DSK_QK4_0, 2 + DSK_QK4_0 / 2},
    {DSK_GGUF_Q8_0, "q8_0", DSK_QK8_0, 2 + DSK_QK8_0},
    {DSK_GGUF_Q4_K, "q4_K", DSK_QK_K, 2 + 2 + 12 + DSK_QK_K / 2},
};
#define N_TYPES (sizeof types / sizeof types[0])

static int type_index(int type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (types[i].type == type)
            return (int)i;
    return -1;
}

size_t dsk_ggml_block_len(int type)
{
    int i = type_index(type);
    return i < 0 ? 0 : types[i].block_len;
}

size_t dsk_ggml_block_bytes(int type)
{
    int i = type_index(type);
    return i < 0 ? 0 : types[i].block_bytes;
}

const char *dsk_ggml_type_name(int type)
{
    int i = type_index(type);
    return i < 0 ? NULL : types[i].name;
}

int dsk_ggml_type_from_name(const char *name)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcasecmp(name, types[i].name) == 0)
            return types[i].type;
    return -1;
}

int dsk_ggml_nbytes(int type, uint64_t n, uint64_t *bytes)
{
    int i = type_index(type);
    if (i < 0 || n % types[i].block_len)
        return -1;
    uint64_t blocks = n / types[i].block_len;
    if (blocks > UINT64_MAX / types[i].block_bytes)
        return -1;
    *bytes = blocks * types[i].block_bytes;
    return 0;
}

/* ---- half precision --------------------------------------------------------------------------- */

uint16_t dsk_ggml_fp32_to_fp16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000)                       /* inf stays inf; NaN becomes a quiet NaN */
        return sign | (ax > 0x7f800000 ? 0x7e00 : 0x7c00);
    if (ax >= 0x477ff000)                       /* >= 65520 rounds past 65504, the largest half */
        return sign | 0x7c00;
    uint32_t e = ax >> 23, mant = ax & 0x7fffff;
    if (e < 113) {
        /* Below 2^-14 the half is subnormal, in units of 2^-24: the value
         * is (mant | implicit 1) * 2^(e - 150), so shift right by 126 - e. */
        if (e == 0)
            return sign;                        /* float subnormals are far below 2^-25 */
        uint32_t m = mant | 0x800000, shift = 126 - e;
        if (shift > 24)
            return sign;                        /* below half the smallest subnormal */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1)))
            q++;                                /* may carry into the smallest normal: still right */
        return sign | (uint16_t)q;
    }
    uint32_t h = ((e - 112) << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
        h++;                                    /* a carry into the exponent is the right rounding */
    return sign | (uint16_t)h;
}

float dsk_ggml_fp16_to_fp32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, mant = h & 0x3ff, x;
    if (e == 0x1f)
        x = sign | 0x7f800000 | (mant << 13);
    else if (e == 0) {
        float v = (float)mant * 0x1p-24f;       /* exact: subnormal halves are multiples of 2^-24 */
        return sign ? -v : v;
    } else
        x = sign | ((e + 112) << 23) | (mant << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* A scale as stored: rounded to half, and kept finite so that a block of
 * enormous values saturates instead of decoding to inf * 0 = NaN. */
static uint16_t half_scale(float d)
{
    if (!(d < 65504.0f))
        d = 65504.0f;
    if (!(d > -65504.0f))
        d = -65504.0f;
    return dsk_ggml_fp32_to_fp16(d);
}

static void put_half(uint8_t *p, uint16_t h)
{
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static float get_half(const uint8_t *p) { return dsk_ggml_fp16_to_fp32((uint16_t)(p[0] | p[1] << 8)); }

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* The nearest 4-bit code to v: clamped first, so a huge or NaN v cannot
 * overflow the conversion, then rounded half up (a plain cast, much
 * cheaper than lrintf in the q4_K search's inner loops). */
static int code4(float v)
{
    if (!(v > 0))              /* NaN too */
        return 0;
    return v >= 15 ? 15 : (int)(v + 0.5f);
}

/* ---- q8_0 ----------------------------------------------------------------------------------------- */

/* d = max|x| / 127, so the largest value maps to ±127.  The codes are
 * computed against the half-rounded d that is stored, which keeps every
 * error within d/2. */
static void quantize_q8_0(const float *x, uint8_t *out, size_t n)
{
    for (size_t b = 0; b < n / DSK_QK8_0; b++, x += DSK_QK8_0, out += 34) {
        float amax = 0;
        for (int i = 0; i < DSK_QK8_0; i++)
            amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        uint16_t h = half_scale(amax / 127.0f);
        float d = dsk_ggml_fp16_to_fp32(h), id = d > 0 ? 1.0f / d : 0;
        put_half(out, h);
        for (int i = 0; i < DSK_QK8_0; i++)
            out[2 + i] = (uint8_t)(int8_t)clampi((int)lrintf(x[i] * id), -127, 127);
    }
}

static void dequantize_q8_0(const uint8_t *in, float *y, size_t n)
{
    for (size_t b = 0; b < n / DSK_QK8_0; b++, in += 34, y += DSK_QK8_0) {
        float d = get_half(in);
        for (int i = 0; i < DSK_QK8_0; i++)
            y[i] = d * (float)(int8_t)in[2 + i];
    }
}

/* ---- q4_0 ----------------------------------------------------------------------------------------- */

/* Codes 0..15 stand for -8..7, one more step on the negative side.  As in
 * llama.cpp, d takes the sign that maps the value of largest magnitude to
 * -8 (d = that value / -8), so it is represented exactly and only values
 * near the opposite extreme (code 16, clamped to 15) can be off by up to a
 * full step; all others are within d/2. */
static void quantize_q4_0(const float *x, uint8_t *out, size_t n)
{
    for (size_t b = 0; b < n / DSK_QK4_0; b++, x += DSK_QK4_0, out += 18) {
        float amax = 0, vmax = 0;
        for (int i = 0; i < DSK_QK4_0; i++)
            if (fabsf(x[i]) > amax) {
                amax = fabsf(x[i]);
                vmax = x[i];
            }
        uint16_t h = half_scale(vmax / -8.0f);
        float d = dsk_ggml_fp16_to_fp32(h), id = d != 0 ? 1.0f / d : 0;
        put_half(out, h);
        uint8_t q[DSK_QK4_0];
        for (int i = 0; i < DSK_QK4_0; i++)
            q[i] = (uint8_t)code4(x[i] * id + 8.0f);
        for (int j = 0; j < DSK_QK4_0 / 2; j++)
            out[2 + j] = (uint8_t)(q[j] | q[j + DSK_QK4_0 / 2] << 4);
    }
}

static void dequantize_q4_0(const uint8_t *in, float *y, size_t n)
{
    for (size_t b = 0; b < n / DSK_QK4_0; b++, in += 18, y += DSK_QK4_0) {
        float d = get_half(in);
        for (int j = 0; j < DSK_QK4_0 / 2; j++) {
            y[j] = d * (float)((in[2 + j] & 0xf) - 8);
            y[j + DSK_QK4_0 / 2] = d * (float)((in[2 + j] >> 4) - 8);
        }
    }
}

/* ---- q4_K ----------------------------------------------------------------------------------------- */

#define SUB 32                 /* values per sub-block */
#define NSUB (DSK_QK_K / SUB)  /* sub-blocks per super-block */

/* Squared error of x ≈ s*q - m with q = round((x + m) / s) in 0..15. */
static float sub_error(const float *x, float s, float m)
{
    float e = 0, is = s > 0 ? 1.0f / s : 0;
    for (int i = 0; i < SUB; i++) {
        int q = code4((x[i] + m) * is);
        float r = s * (float)q - m - x[i];
        e += r * r;
    }
    return e;
}

/* Scale s > 0 and min m >= 0 for one sub-block, x ≈ s*q - m, q in 0..15.
 * The plain choice spans [min(x, 0), max(x)] in 15 steps.  A span a little
 * narrower or wider often fits better (an outlier clipped, the grid
 * shifted), so, like llama.cpp's reference, try steps from 14 to 16 across
 * the range, refit s and m to the codes each one gives by least squares,
 * and keep the fit with the smallest squared error.  m >= 0 because the
 * format stores it unsigned: the range always reaches down to 0 or below. */
static void fit_sub_block(const float *x, float *s_out, float *m_out)
{
    const float nmax = 15;
    float lo = 0, hi = x[0];
    for (int i = 0; i < SUB; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    if (!(hi > lo)) {          /* constant non-positive block: the min alone represents it */
        *s_out = 0;
        *m_out = -lo;
        return;
    }
    float best_s = (hi - lo) / nmax, best_m = -lo, best_e = sub_error(x, best_s, best_m);
    for (int step = -10; step <= 10; step++) {
        float iscale = (nmax + 0.1f * (float)step) / (hi - lo);
        double sq = 0, sqq = 0, sx = 0, sqx = 0;
        for (int i = 0; i < SUB; i++) {
            int q = code4((x[i] - lo) * iscale);
            sq += q;
            sqq += (double)q * q;
            sx += x[i];
            sqx += (double)q * x[i];
        }
        double det = SUB * sqq - sq * sq;
        if (det <= 0)
            continue;
        double s = (SUB * sqx - sq * sx) / det, b = (sqq * sx - sq * sqx) / det;   /* x ≈ s*q + b */
        if (b > 0) {           /* the fit wants a positive offset; the format allows none */
            b = 0;
            s = sqx / sqq;
        }
        if (!(s > 0))
            continue;
        float e = sub_error(x, (float)s, (float)-b);
        if (e < best_e) {
            best_e = e;
            best_s = (float)s;
            best_m = (float)-b;
        }
    }
    *s_out = best_s;
    *m_out = best_m;
}

static void pack_scales(uint8_t *p, const uint8_t *sc, const uint8_t *mn)
{
    memset(p, 0, 12);
    for (int j = 0; j < NSUB; j++) {
        if (j < 4) {
            p[j] |= sc[j];
            p[j + 4] |= mn[j];
        } else {
            p[j + 4] = (uint8_t)((sc[j] & 0xf) | (mn[j] & 0xf) << 4);
            p[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            p[j] |= (uint8_t)((mn[j] >> 4) << 6);
        }
    }
}

static void unpack_scale(const uint8_t *p, int j, int *sc, int *mn)
{
    if (j < 4) {
        *sc = p[j] & 63;
        *mn = p[j + 4] & 63;
    } else {
        *sc = (p[j + 4] & 0xf) | (p[j - 4] >> 6) << 4;
        *mn = (p[j + 4] >> 4) | (p[j] >> 6) << 4;
    }
}

/* Each sub-block's (s, m) is fitted, then stored as 6-bit multiples of the
 * super-block's d = max s / 63 and dmin = max m / 63 (halves).  The codes
 * are computed last, against the scales as stored. */
static void quantize_q4_K(const float *xs, uint8_t *outs, size_t n)
{
    /* The search costs ~100x a plain rounding per value; super-blocks are
     * independent, so threads change nothing in the output. */
    long nb = (long)(n / DSK_QK_K);
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        const float *x = xs + (size_t)b * DSK_QK_K;
        uint8_t *out = outs + (size_t)b * 144;
        float s[NSUB], m[NSUB], max_s = 0, max_m = 0;
        for (int j = 0; j < NSUB; j++) {
            fit_sub_block(x + j * SUB, &s[j], &m[j]);
            max_s = fmaxf(max_s, s[j]);
            max_m = fmaxf(max_m, m[j]);
        }
        uint16_t hd = half_scale(max_s / 63.0f), hm = half_scale(max_m / 63.0f);
        float d = dsk_ggml_fp16_to_fp32(hd), dmin = dsk_ggml_fp16_to_fp32(hm);
        uint8_t sc[NSUB], mn[NSUB];
        for (int j = 0; j < NSUB; j++) {
            sc[j] = (uint8_t)(d > 0 ? clampi((int)lrintf(s[j] / d), 0, 63) : 0);
            mn[j] = (uint8_t)(dmin > 0 ? clampi((int)lrintf(m[j] / dmin), 0, 63) : 0);
        }
        put_half(out, hd);
        put_half(out + 2, hm);
        pack_scales(out + 4, sc, mn);
        uint8_t q[DSK_QK_K];
        for (int j = 0; j < NSUB; j++) {
            float S = d * sc[j], M = dmin * mn[j], iS = S > 0 ? 1.0f / S : 0;
            for (int i = 0; i < SUB; i++)
                q[j * SUB + i] = (uint8_t)code4((x[j * SUB + i] + M) * iS);
        }
        uint8_t *qs = out + 16;
        for (int c = 0; c < DSK_QK_K / 64; c++)
            for (int l = 0; l < 32; l++)
                qs[32 * c + l] = (uint8_t)(q[64 * c + l] | q[64 * c + 32 + l] << 4);
    }
}

static void dequantize_q4_K(const uint8_t *in, float *y, size_t n)
{
    for (size_t b = 0; b < n / DSK_QK_K; b++, in += 144, y += DSK_QK_K) {
        float d = get_half(in), dmin = get_half(in + 2);
        const uint8_t *qs = in + 16;
        for (int c = 0; c < DSK_QK_K / 64; c++) {
            int sc0, m0, sc1, m1;
            unpack_scale(in + 4, 2 * c, &sc0, &m0);
            unpack_scale(in + 4, 2 * c + 1, &sc1, &m1);
            float S0 = d * (float)sc0, M0 = dmin * (float)m0, S1 = d * (float)sc1, M1 = dmin * (float)m1;
            for (int l = 0; l < 32; l++) {
                y[64 * c + l] = S0 * (float)(qs[32 * c + l] & 0xf) - M0;
                y[64 * c + 32 + l] = S1 * (float)(qs[32 * c + l] >> 4) - M1;
            }
        }
    }
}

/* ---- dispatch ------------------------------------------------------------------------------------- */

void dsk_ggml_quantize(int type, const float *x, void *out, size_t n)
{
    uint8_t *o = out;
    switch (type) {
    case DSK_GGUF_F32:
        memcpy(o, x, n * sizeof *x);   /* little-endian hosts only, as everywhere in dsk */
        break;
    case DSK_GGUF_F16:
        for (size_t i = 0; i < n; i++)
            put_half(o + 2 * i, dsk_ggml_fp32_to_fp16(x[i]));
        break;
    case DSK_GGUF_Q8_0:
        quantize_q8_0(x, o, n);
        break;
    case DSK_GGUF_Q4_0:
        quantize_q4_0(x, o, n);
        break;
    case DSK_GGUF_Q4_K:
        quantize_q4_K(x, o, n);
        break;
    }
}

double dsk_ggml_max_abs(int type)
{
    switch (type) {
    case DSK_GGUF_F16: return 65504.0;
    case DSK_GGUF_Q8_0: return 127 * 65504.0;
    case DSK_GGUF_Q4_0: return 8 * 65504.0;
    case DSK_GGUF_Q4_K: return 63 * 65504.0;
    default: return HUGE_VAL;
    }
}

void dsk_ggml_dequantize(int type, const void *in, float *y, size_t n)
{
    const uint8_t *p = in;
    switch (type) {
    case DSK_GGUF_F32:
        memcpy(y, p, n * sizeof *y);
        break;
    case DSK_GGUF_F16:
        for (size_t i = 0; i < n; i++)
            y[i] = get_half(p + 2 * i);
        break;
    case DSK_GGUF_Q8_0:
        dequantize_q8_0(p, y, n);
        break;
    case DSK_GGUF_Q4_0:
        dequantize_q4_0(p, y, n);
        break;
    case DSK_GGUF_Q4_K:
        dequantize_q4_K(p, y, n);
        break;
    }
}
