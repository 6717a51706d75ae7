/* The popcount path of the tile-shaped binary types (b1, b1g, b1mg, rb2g,
 * nm24 .. nm68, onebit, pb8's b1g part): docs/binary-kernels.md.
 *
 * x is quantized to int8 per token and 64 columns exactly as the LUT path
 * quantizes it (kernels/act_quant.h) and split into its eight two's-
 * complement bit planes (bit c of plane b = bit b of q_c). With a row's 64
 * signs (or kept columns) of the group as one word s, bit c = column c,
 *     P(s) = sum_c s_c q_c = sum_{b<7} 2^b popcount(s & p_b) - 2^7 popcount(s & p_7)
 * and every sum the LUT path looks up is such a P (its table entries are P
 * offset by the group's negative sum, kneg), so both paths hand the same
 * exact integers to the same f32 steps and agree bit for bit. Eight AND +
 * popcount per row and group against the LUT path's one table lookup per 4
 * columns: which is faster depends on the CPU (measured in the doc).
 *
 * bllm_binary_pop_fill_scalar gives the scalar reference of that path, the
 * definition the SIMD popcount kernels (kernels/binary_avx512pop.c) match
 * bit for bit: the f32 steps below are the x86 kernels' (binary_x86.h,
 * tg_token), each group added to the row's sum in column order. */
#ifndef BLLM_KERNELS_BINARY_POP_H
#define BLLM_KERNELS_BINARY_POP_H

#include <stdint.h>

#include "kernels/kernels.h"

static inline void bllm_pop_planes(const int8_t q[64], uint64_t p[8])
{
    for (int b = 0; b < 8; b++) {
        uint64_t v = 0;
        for (int c = 0; c < 64; c++)
            v |= (uint64_t)(((uint8_t)q[c] >> b) & 1) << c;
        p[b] = v;
    }
}

/* sum_c s_c q_c from the planes of q. */
static inline int32_t bllm_pop_dot(uint64_t s, const uint64_t p[8])
{
    int32_t acc = 0;
    for (int b = 0; b < 7; b++)
        acc += __builtin_popcountll(s & p[b]) << b;
    return acc - (__builtin_popcountll(s & p[7]) << 7);
}

/* One token's 64-column group, prepared: q's planes, the quantization
 * step d, the f32 sum of x in the x86 kernels' order (the mu terms of b1mg
 * and rb2g), sum |q| and the sum of the negative q. x: already times h for
 * onebit. */
typedef struct {
    uint64_t p[8];
    float d, sum, kabs, kneg;
} bllm_pop_group;
void bllm_pop_prep_group(const float *x, bllm_pop_group *g);

/* The scalar popcount reference of each tile-shaped type (pb8: its b1g
 * part), and mm[t] set to them for those types (others untouched). */
#define BLLM_POP_SCALAR_DECL(name, TYPE, KTYPE)                                                               \
    void bllm_matmul_##name##_pop_scalar(float *y, const float *x, const void *w, int n_tok, int cols,         \
                                         int rows, int r0, int r1);
BLLM_TILE_TYPES(BLLM_POP_SCALAR_DECL)
#undef BLLM_POP_SCALAR_DECL
void bllm_binary_pop_fill_scalar(bllm_matmul_fn *mm);

/* kernels/binary_avx512pop.c (x86 only; call after checking the CPU). The
 * NEON kernels are bllm_matmul_*_neon_pop (kernels/binary_neon.h). */
void bllm_binary_avx512pop_fill(bllm_matmul_fn *mm);

#endif
