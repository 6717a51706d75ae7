/* NEON matmuls of the packed binary types (kernels/binary_neon.c), for the
 * aarch64 kernel sets in kernels/neon.c. Same contract as every matmul in
 * kernels/kernels.h; r0 and r1 may be any rows (the forward pass passes
 * multiples of 32, which wastes no work).
 *
 * Two paths per type:
 *   _neon        the lookup (T-MAC style) path: x quantized to int8 per token
 *                per 64 columns, integer sums by vqtbl1q_u8 table lookups;
 *                bit-exact against the int8 reference described in
 *                binary_neon.c (tests/neon checks this).
 *   _neon_float  the float path: the exact f32 weights of runtime/format/binary.h,
 *                decoded a 32x64 tile at a time, times x with f32 FMAs;
 *                equal to the scalar reference up to summation order. */
#ifndef BLLM_BINARY_NEON_H
#define BLLM_BINARY_NEON_H

#include "kernels/kernels.h"

#define BLLM_NEON_DECLARE(name, TYPE, KTYPE)                                                                           \
    void bllm_matmul_##name##_neon(float *y, const float *x, const void *w, int n_tok, int cols, int rows, \
                                   int r0, int r1);                                                       \
    void bllm_matmul_##name##_neon_float(float *y, const float *x, const void *w, int n_tok, int cols,      \
                                       int rows, int r0, int r1);
BLLM_TILE_TYPES(BLLM_NEON_DECLARE) /* pb8: the b1g part only, like the scalar pb8 matmul */
BLLM_BLOCK_TYPES(BLLM_NEON_DECLARE)
#undef BLLM_NEON_DECLARE

/* The popcount path (kernels/binary_pop.h) of the tile-shaped types: x
 * quantized as above, integer sums by vcnt; bit-exact against the scalar
 * popcount reference (bllm_matmul_*_pop_scalar). */
#define BLLM_NEON_POP_DECLARE(name, TYPE, KTYPE)                                                                          \
    void bllm_matmul_##name##_neon_pop(float *y, const float *x, const void *w, int n_tok, int cols,          \
                                       int rows, int r0, int r1);
BLLM_TILE_TYPES(BLLM_NEON_POP_DECLARE)
#undef BLLM_NEON_POP_DECLARE

#endif
