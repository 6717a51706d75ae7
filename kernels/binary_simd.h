/* The SIMD matmuls of the packed binary types (kernels/binary_avx2.c,
 * kernels/binary_avx512.c): how dispatch.c gets them, and the activation
 * quantization of their lookup-table path, written out here so the tests
 * can rebuild it bit for bit.
 *
 * Two paths (docs/binary-kernels.md):
 * - LUT: x is quantized to int8 per token per 64 columns (below), a
 *   16-entry table of subset sums is built per 4 activations, and the 4-bit
 *   sign nibbles of 32 rows index it at once with a byte shuffle. The
 *   integer sums are exact; the only error is the quantization of x. The
 *   VNNI build's dense types quantize the tables' entries instead (below:
 *   one byte each, half the lookups, about int8 x's error; less where one
 *   value dominates its group).
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

/* ---- the VNNI build's dense tables (kernels/binary_avx512vnni.c: b1, b1g,
 * b1mg, rb2g, onebit, pb8's b1g part): the signed sums of each quad are
 * formed from x in f32 and quantized themselves, to one byte, instead of x.
 * Per quad (columns 4q..4q+3) and sign nibble b,
 *     V[b] = ((v0 + v1) + v2) + v3,  v_k = b_k ? x_k : -x_k
 * so V[15 - b] = -V[b] exactly and |V[b]| <= A_q = sum |x_k| (the entry of
 * the quad's own sign pattern); with m = max_q A_q, T[b] = V[b] * (127 / m)
 * rounded to nearest, ties to even (so T[15 - b] = -T[b]), stored as int8
 * at tab[16 q + b]. Then sum_c (2 s_c - 1) x_c ~ (m / 127) sum_q T_q[s_q],
 * exact in the integers: one byte per entry where int8 x needs two (the
 * sums of int8 x span 0..508), so each tile takes half the lookups. The
 * error is one rounding per quad of a step m / 127, antisymmetric in the
 * signs: about int8 x's four roundings per quad for even x, a third of
 * their variance where one x dominates its group (docs/binary-kernels.md).
 * Returns the step m / 127 and in *K the sum over quads of T at their own
 * sign pattern (|sum_q T_q[s_q]| <= K, a bound for tests); a group whose
 * A_q is not finite (inf or NaN in x) returns NaN with T = 0 and K = 0,
 * one with m < 2^-96 (127 / m would overflow) 0. */
static inline float bllm_binary_tq_group(const float *x, int8_t tab[256], int32_t *K)
{
    float a[16], m = 0.0f;
    int bad = 0;
    for (int q = 0; q < 16; q++) {
        const float *xq = x + 4 * q;
        a[q] = ((fabsf(xq[0]) + fabsf(xq[1])) + fabsf(xq[2])) + fabsf(xq[3]);
        bad |= !(a[q] - a[q] == 0.0f);
        m = a[q] > m ? a[q] : m;
    }
    float inv = m >= 0x1p-96f ? 127.0f / m : 0.0f;
    *K = 0;
    for (int q = 0; q < 16; q++) {
        const float *xq = x + 4 * q;
        for (int b = 0; b < 16; b++) {
            float v[4];
            for (int k = 0; k < 4; k++)
                v[k] = b >> k & 1 ? xq[k] : -xq[k];
            tab[16 * q + b] = bad ? 0 : (int8_t)nearbyintf((((v[0] + v[1]) + v[2]) + v[3]) * inv);
        }
        *K += bad ? 0 : (int32_t)nearbyintf(a[q] * inv);
    }
    return bad ? NAN : inv > 0.0f ? m / 127.0f : 0.0f;
}

#endif
