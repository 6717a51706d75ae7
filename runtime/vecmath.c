#include "runtime/vecmath.h"

#include <sleef.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

float bllm_vec_exp_sub_sum(float *x, int n, float max)
{
    int i = 0;
    float sum = 0.0f;
#if defined(__SSE2__)
    /* SLEEF's 4-wide entry point dispatches at run time to the best SSE
     * variant, so baseline x86-64 builds still get a vector exp. */
    __m128 vmax = _mm_set1_ps(max), vsum = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 e = Sleef_expf4_u10(_mm_sub_ps(_mm_loadu_ps(x + i), vmax));
        _mm_storeu_ps(x + i, e);
        vsum = _mm_add_ps(vsum, e);
    }
    float lanes[4];
    _mm_storeu_ps(lanes, vsum);
    sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
#endif
    for (; i < n; i++) {
        x[i] = Sleef_expf_u10(x[i] - max);
        sum += x[i];
    }
    return sum;
}

void bllm_vec_swiglu(float *gate, const float *up, size_t n)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128 one = _mm_set1_ps(1.0f), zero = _mm_setzero_ps();
    for (; i + 4 <= n; i += 4) {
        __m128 g = _mm_loadu_ps(gate + i);
        __m128 e = Sleef_expf4_u10(_mm_sub_ps(zero, g));
        __m128 silu = _mm_div_ps(g, _mm_add_ps(one, e));
        _mm_storeu_ps(gate + i, _mm_mul_ps(silu, _mm_loadu_ps(up + i)));
    }
#endif
    for (; i < n; i++) {
        float g = gate[i];
        gate[i] = g / (1.0f + Sleef_expf_u10(-g)) * up[i];
    }
}
