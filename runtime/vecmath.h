/* Elementwise math of the forward pass on top of SLEEF's vectorized exp. */
#ifndef BLLM_VECMATH_H
#define BLLM_VECMATH_H

#include <stddef.h>

/* x[i] = exp(x[i] - max) for i < n; returns the sum of the new values. */
float bllm_vec_exp_sub_sum(float *x, int n, float max);
/* gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). */
void bllm_vec_swiglu(float *gate, const float *up, size_t n);

#endif
