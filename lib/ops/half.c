#include <string.h>

#include "ops/backend.h"
#include "ops/half.h"

static uint32_t bits_of(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    return x;
}

static float float_of(uint32_t x)
{
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

uint16_t dsk_f32_to_bf16(float f)
{
    uint32_t x = bits_of(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x0040u);   /* NaN: quiet it, keep sign and top payload */
    /* Adding 0x7fff, plus 1 when the kept part is odd, carries into bit 16
     * exactly when the dropped half is above the midpoint, or at it with
     * an odd kept part; a carry out of the mantissa bumps the exponent
     * (up to inf), which is the right result. */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

float dsk_bf16_to_f32(uint16_t h) { return float_of((uint32_t)h << 16); }

uint16_t dsk_f32_to_f16(float f)
{
    uint32_t x = bits_of(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u)   /* NaN */
        return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    if (ax >= 0x477ff000u)  /* 65520 and up, inf included: 65520 ties to the even 65536, which is inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) {
        /* Normal in fp16 (2^-14 and up): drop 13 mantissa bits with the
         * same carry trick as bf16, then rebias the exponent (127 -> 15). */
        uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u);
        return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
    }
    /* Subnormal in fp16: the result counts steps of 2^-24.  With the
     * implicit bit, |f| = mant * 2^(e - 150), so |f| / 2^-24 is mant
     * shifted right by 126 - e (at least 14 here). */
    uint32_t e = ax >> 23;
    if (e < 102)            /* below 2^-25: rounds to zero (2^-25 itself, a tie, too) */
        return sign;
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t q = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u)))
        q++;                /* may reach 0x400: the smallest normal, encoded alike */
    return (uint16_t)(sign | q);
}

float dsk_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1f)          /* inf, NaN */
        return float_of(sign | 0x7f800000u | (m << 13));
    if (e != 0)
        return float_of(sign | ((e + 112) << 23) | (m << 13));
    if (m == 0)
        return float_of(sign);
    /* Subnormal: m * 2^-24, exact in float. */
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
}

/* Parallel only when the array is worth the threads' start-up. */
enum { PAR_MIN = 1 << 15 };

void dsk_round_bf16(float *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = dsk_bf16_to_f32(dsk_f32_to_bf16(src[i]));
}

void dsk_round_f16(float *dst, const float *src, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++)
        dst[i] = dsk_f16_to_f32(dsk_f32_to_f16(src[i]));
}

void dsk_round_dtype(int dtype, float *dst, const float *src, size_t n)
{
    if (dtype == DSK_DTYPE_BF16)
        dsk_round_bf16(dst, src, n);
    else if (dtype == DSK_DTYPE_FP16)
        dsk_round_f16(dst, src, n);
    else if (dst != src && n)
        memmove(dst, src, n * sizeof *dst);
}

static const char *const dtype_names[] = {"fp32", "bf16", "fp16"};

int dsk_dtype_parse(const char *name)
{
    for (int i = 0; i < 3; i++)
        if (name && !strcmp(name, dtype_names[i]))
            return i;
    return -1;
}

const char *dsk_dtype_name(int dtype) { return dtype >= 0 && dtype < 3 ? dtype_names[dtype] : "?"; }
