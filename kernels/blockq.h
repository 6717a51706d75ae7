/* Matmuls of the block-quantized row types q8, q6, q4, q4nl (runtime/format/
 * blockq.h) on int8 activations, as llama.cpp does for Q8_0/Q4_0: each
 * token's x is quantized per 32 columns (below), and
 *   y[t][r] = sum_b (d_w,b * d_x,b) * sum_i q_w,i q_x,i
 * with the integer sums exact (|q_x| <= 127; q8 and q4nl |q_w| <= 127, q6
 * -32..31, q4 -8..7).
 * The scalar reference (kernels/blockq_scalar.c) adds the blocks in order
 * in f32; the SIMD kernels (kernels/blockq_avx2.c: maddubs on AVX2,
 * vpdpbusd where AVX-512 VNNI is there; kernels/blockq_neon.c: vmull_s8,
 * or sdot where the CPU has the dot product extension)
 * per lane, then across lanes, so they agree with it to f32 summation
 * order. */
#ifndef BLLM_KERNELS_BLOCKQ_H
#define BLLM_KERNELS_BLOCKQ_H

#include <stdint.h>

#include "kernels/act_quant.h"
#include "kernels/kernels.h"

/* The activation quantization, per token per 32 columns (kernels/
 * act_quant.h, as the binary LUT path's per 64), shared by every kernel so
 * the integer sums agree. */
static inline float bllm_blockq_quantize_x(const float *x, int8_t q[32]) { return bllm_act_quantize(x, 32, q); }

/* The SIMD kernels' working memory: every token's x quantized once per
 * call, dx (n_tok x cols/32 scales) then qx (n_tok x cols, where
 * bllm_blockq_act_q points), in mem of bllm_blockq_act_bytes; returns qx. */
static inline size_t bllm_blockq_act_bytes(int n_tok, int cols)
{
    return (size_t)n_tok * cols + (size_t)n_tok * (cols / 32) * sizeof(float) + 64;
}
static inline int8_t *bllm_blockq_act_q(void *mem, int n_tok, int cols)
{
    return (int8_t *)((float *)mem + (size_t)n_tok * (cols / 32));
}
static inline int8_t *bllm_blockq_quantize_tokens(const float *x, int n_tok, int cols, void *mem)
{
    const int nb = cols / 32;
    float *dx = mem;
    int8_t *qx = bllm_blockq_act_q(mem, n_tok, cols);
    for (int t = 0; t < n_tok; t++)
        for (int b = 0; b < nb; b++)
            dx[(size_t)t * nb + b] = bllm_blockq_quantize_x(x + (size_t)t * cols + (size_t)b * 32,
                                                            qx + (size_t)t * cols + (size_t)b * 32);
    return qx;
}

void bllm_matmul_q8_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q6_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4nl_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
/* x86 only; need AVX2, FMA, F16C (the _vnni ones AVX-512 VNNI and VL too). */
void bllm_matmul_q8_avx2(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4_avx2(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q8_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q6_avx2(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q6_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4nl_avx2(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4nl_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
/* The row-interleaved "x16" layout of q4 and q4nl matrices, which a kernel
 * set may run faster than the file's row-major one (bllm_kernel_set.
 * matmul_x16; the forward pass repacks the output head into it at load).
 * Rows go in groups of 16; per group and 32-column block, 288 bytes, the
 * same as the 16 rows' blocks in the file: the 16 fp16 scales, then 256
 * bytes in which byte 64 j + 4 r + i holds row r's code of column 4 j + i
 * in its low nibble and of column 16 + 4 j + i in its high nibble (j < 4,
 * i < 4). One 64-byte load and a nibble split then give 16 rows x 4
 * columns as one vpdpbusd multiplies them by 4 broadcast activation bytes,
 * one row's sum per int32 lane: no per-row horizontal sums, and one scale
 * vector per 16 rows (kernels/blockq_x16_vnni.c; with AVX-VNNI's 256-bit
 * vpdpbusd, two halves of 8 rows). Needs rows a multiple
 * of 16 (bllm_blockq_x16_fits); r0 and r1 of its matmuls too. */
#define BLLM_BLOCKQ_X16_ROWS 16
int bllm_blockq_x16_fits(bllm_type ty, int rows, int cols);
void bllm_blockq_repack_x16(bllm_type ty, const void *w, int rows, int cols, void *out);
/* The scalar reference on that layout: bllm_matmul_q4(nl)_scalar's
 * operations in its order, so equal to it bit for bit on the same weights
 * (kernels/blockq_x16.c). */
void bllm_matmul_q4_x16_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                               int r1);
void bllm_matmul_q4nl_x16_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                                 int r1);
/* x86 with AVX-512 F, BW, VL and VNNI, and (_avxvnni) with AVX2, FMA, F16C
 * and AVX-VNNI (kernels/blockq_x16_vnni.c). */
void bllm_matmul_q4_x16_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1);
void bllm_matmul_q4nl_x16_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                               int r1);
void bllm_matmul_q4_x16_avxvnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                                int r1);
void bllm_matmul_q4nl_x16_avxvnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                                  int r1);
/* aarch64 only (kernels/blockq_neon.c): the kernel sets' entries, which run
 * the _dotprod build (ARMv8.2 sdot, kernels/blockq_neon_dotprod.c) where
 * bllm_neon_has_dotprod() and the _base one (base Advanced SIMD)
 * elsewhere; both are exported for the tests. */
#define BLLM_BLOCKQ_NEON_DECL(name)                                                                            \
    void bllm_matmul_##name##_neon(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, \
                                   int r1);                                                                    \
    void bllm_matmul_##name##_neon_base(float *y, const float *x, const void *w, int n_tok, int cols, int rows,    \
                                        int r0, int r1);                                                       \
    void bllm_matmul_##name##_neon_dotprod(float *y, const float *x, const void *w, int n_tok, int cols, int rows, \
                                           int r0, int r1);
BLLM_BLOCKQ_NEON_DECL(q8)
BLLM_BLOCKQ_NEON_DECL(q4)
BLLM_BLOCKQ_NEON_DECL(q6)
BLLM_BLOCKQ_NEON_DECL(q4nl)
int bllm_neon_has_dotprod(void);

#endif
