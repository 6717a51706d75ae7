/* The int8 activation quantization every int8-activation kernel shares
 * (the binary LUT path per 64 columns, kernels/binary_simd.h; q8/q4 per 32,
 * kernels/blockq.h), written once so the tests can rebuild it bit for bit:
 * amax = max |x_c| over the group; d = amax / 127; q_c = x_c * (127 / amax)
 * rounded to nearest, ties to even; every operation one f32 rounding. A
 * group of zeros gets d = 0, q = 0; a group holding inf or NaN d = NaN (and
 * q = 0), so the outputs it touches are NaN rather than quietly finite. */
#ifndef BLLM_KERNELS_ACT_QUANT_H
#define BLLM_KERNELS_ACT_QUANT_H

#include <math.h>
#include <stdint.h>

static inline float bllm_act_quantize(const float *x, int n, int8_t *q)
{
    float amax = 0.0f, sum = 0.0f;
    for (int c = 0; c < n; c++) {
        float a = fabsf(x[c]);
        amax = a > amax ? a : amax;
        sum += x[c];
    }
    if (!isfinite(sum) || !isfinite(amax)) {
        for (int c = 0; c < n; c++)
            q[c] = 0;
        return NAN;
    }
    float id = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int c = 0; c < n; c++)
        q[c] = (int8_t)nearbyintf(x[c] * id);
    return amax / 127.0f;
}

#endif
