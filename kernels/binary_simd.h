/* The SIMD matmuls of the packed binary types (kernels/binary_avx2.c,
 * kernels/binary_avx512.c): how dispatch.c gets them, and the activation
 * quantization of their lookup-table path, written out here so the tests
 * can rebuild it bit for bit.
 *
 * Two paths (docs/binary-kernels.md):
 * - LUT: x is quantized to int8 per token per 64 columns (below), a
 *   16-entry table of subset sums is built per 4 activations, and the 4-bit
 *   sign nibbles of 32 rows index it at once with a byte shuffle. The
 *   integer sums are exact; the only error is the quantization of x.
 * - FLOAT: the same tables in f32, no quantization: exact up to the f32
 *   summation order, for accuracy-critical use.
 * Kernel sets (kernels/dispatch.c): "avx2" picks a path per type and n_tok
 * by measurement (the LUT path throughout), "avx2-lut" and "avx2-float"
 * force one, "avx512" is "avx2" with AVX-512 LUT kernels. */
#ifndef BLLM_BINARY_SIMD_H
#define BLLM_BINARY_SIMD_H

#include <math.h>
#include <stdint.h>

#include "kernels/act_quant.h"
#include "kernels/kernels.h"

typedef enum {
    BLLM_BINARY_AUTO = 0, /* the measured choice per type and n_tok */
    BLLM_BINARY_LUT = 1,
    BLLM_BINARY_FLOAT = 2,
} bllm_binary_path;

/* Fill mm[t] for every packed type t with the kernels of one path.
 * Only call after checking the CPU (dispatch.c). */
void bllm_binary_avx2_fill(bllm_matmul_fn *mm, bllm_binary_path path);
void bllm_binary_avx512_fill(bllm_matmul_fn *mm, bllm_binary_path path);
/* the same kernels with VBMI + VNNI lookups (kernels/binary_avx512vnni.c) */
void bllm_binary_avx512vnni_fill(bllm_matmul_fn *mm, bllm_binary_path path);

/* From this many tokens on, the block types (billm, stbllm) run a batch
 * through their weights expanded to f32 per 32-row tile (on either path, so
 * with f32 activations): kernels/binary_x86.h. */
#define BLLM_BLK_GEMM_MIN_TOK 8

/* ---- the LUT path's activation quantization (per token, per 64 columns):
 * kernels/act_quant.h. The kernels do exactly this in SIMD; the mu terms of
 * b1mg and rb2g use the f32 sum of the group's x instead (exact, and
 * cheap). */
#define BLLM_BINARY_QMAX 127

static inline float bllm_binary_quantize_group(const float *x, int8_t q[64]) { return bllm_act_quantize(x, 64, q); }

#endif
