/* The scalar reference matmuls of the packed binary types, registered in the
 * scalar kernel set (kernels/scalar.c). Same contract as every matmul in
 * kernels/kernels.h; r0 and r1 may be any rows (the forward pass passes
 * multiples of 32). */
#ifndef BLLM_BINARY_SCALAR_H
#define BLLM_BINARY_SCALAR_H

#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

/* pb8: the b1g part only (bllm_salient_matvec adds the salient part). */
#define BLLM_SCALAR_DECL(name, TYPE, KTYPE)                                                                   \
    void bllm_matmul_##name##_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows,  \
                                     int r0, int r1);
BLLM_TILE_TYPES(BLLM_SCALAR_DECL)
BLLM_BLOCK_TYPES(BLLM_SCALAR_DECL)
#undef BLLM_SCALAR_DECL

/* The b1g value of sign bit `bit`: +alpha for 1, -alpha for 0, as a sign-bit
 * xor (the same bits as bit ? alpha : -alpha, which compiles to a branch that
 * mispredicts half the time on random signs). */
static inline float bllm_b1g_signed(float alpha, unsigned bit)
{
    uint32_t u;
    memcpy(&u, &alpha, 4);
    u ^= (uint32_t)(bit ^ 1u) << 31;
    memcpy(&alpha, &u, 4);
    return alpha;
}

#endif
