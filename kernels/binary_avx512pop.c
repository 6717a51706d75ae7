/* The popcount path of the tile-shaped binary types (b1 .. pb8), AVX-512
 * VPOPCNTDQ: kernels/binary_x86.h built with VPOPCNTDQ and VBMI on top of
 * the AVX-512 flags (kernels/meson.build), which switches on its
 * BINARY_X86_POP part. Per 32-row tile and 64 columns: the sign tile
 * transposed into row words (vpermt2b), then 8 AND + vpopcntq per 8 rows
 * and bit plane of the int8 activations (kernels/binary_pop.h). Every f32
 * step is the LUT path's, so the results equal the scalar reference
 * (kernels/binary_pop_scalar.c) bit for bit, and the LUT path's too where
 * that sums all columns in one block. dispatch.c offers the "avx512-pop" set
 * only when CPUID and XCR0 grant all of these; tests/kernels/
 * binary_avx512pop_emu.c runs this file over SIMDe where they do not. */
#include "kernels/binary_x86.h"

#include "kernels/binary_pop.h"

#if !BINARY_X86_POP
#error "binary_avx512pop.c needs -mavx512f -mavx512bw -mavx512vl -mavx512vpopcntdq -mavx512vbmi"
#endif

#define POP_DEFINE(name, TYPE, KTYPE)                                                                         \
    static void mm_##name##_pop(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, \
                                int r1)                                                                         \
    {                                                                                                           \
        /* ragged row ranges go to the scalar reference, which these equal */                               \
        matmul_binary(TYPE, PATH_POP, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_##name##_pop_scalar);     \
    }
BLLM_TILE_TYPES(POP_DEFINE)

/* The popcount kernels for the types that have one; billm and stbllm keep
 * what mm holds. */
void bllm_binary_avx512pop_fill(bllm_matmul_fn *mm)
{
#define POP_SET(name, TYPE, KTYPE) mm[TYPE] = mm_##name##_pop;
    BLLM_TILE_TYPES(POP_SET)
#undef POP_SET
}
