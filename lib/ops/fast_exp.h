#ifndef DSK_OPS_FAST_EXP_H
#define DSK_OPS_FAST_EXP_H

#include <stdint.h>
#include <string.h>

/* exp for the softmaxes and SiLU, written so the compiler vectorizes the
 * loops that call it (libm's expf is a call per element): range reduction
 * to r in [-ln2/2, ln2/2], the Cephes degree-6 polynomial for e^r, and
 * 2^n put into the exponent bits.  Relative error about 2e-7 on the
 * clamped range; NaN stays NaN, which the training loop's guard needs. */
static inline float dsk_fast_expf(float in)
{
    /* NaN is computed as 0 (float-to-int of NaN is undefined) and returned as itself. */
    float x = in < -87.3f ? -87.3f : in > 88.3f ? 88.3f : in == in ? in : 0.0f;
    float t = x * 1.44269504088896341f;
    int n = (int)(t + (t >= 0 ? 0.5f : -0.5f));
    float fn = (float)n;
    float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return in == in ? p * scale : in;
}

#endif
