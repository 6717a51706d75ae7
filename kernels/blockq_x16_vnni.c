/* q4/q4nl matmuls on the x16 layout (kernels/blockq.h) with AVX-512 VNNI.
 * Per 16 rows and 32-column block: four 64-byte loads split into 8 code
 * vectors (q4nl: looked up to level + 128 by one vpshufb each), 8
 * vpdpbusd against broadcast activation quads, whose int32 lanes are the
 * 16 rows' sums, and one scale vector: about 2 vector operations per block
 * and row, where the row-major kernel (blockq_avx2.c) needs about 7. The
 * codes are unsigned (q4: level + 8; q4nl: level + 128), so each block's
 * sum starts at -offset times the sum of its activation bytes. */
#include <immintrin.h>
#include <string.h>

#include "kernels/blockq.h"
#include "kernels/thread_scratch.h"
#include "runtime/format/blockq.h"

#define INLINE static inline __attribute__((always_inline))

enum { GB = BLLM_BLOCKQ_X16_ROWS * 18 }; /* bytes per group and block */

/* Prefetch distance in group blocks, into L1. Cold 32000 x 2048 q4nl GEMV,
 * one thread, Emerald Rapids VM: 4 ahead 13.5 GB/s, 8 ahead 13.8, 16 into
 * L2 12.6. */
#define X16_PFD 8

/* The activations of n_tok tokens per block: dx (scales), qx (int8),
 * bias = -offset * sum of the block's qx, in one scratch buffer. */
typedef struct {
    const float *dx;
    const int8_t *qx;
    const int32_t *bias;
} x16_act;

static int quantize_act(bllm_type ty, const float *x, int n_tok, int cols, x16_act *a)
{
    const int nb = cols / BLLM_QBLOCK, off = ty == BLLM_TYPE_Q4NL ? 128 : 8;
    const size_t act = bllm_blockq_act_bytes(n_tok, cols);
    uint8_t *mem = scratch(act + (size_t)n_tok * nb * sizeof(int32_t) + 64);
    if (!mem)
        return 0;
    a->dx = (const float *)mem;
    a->qx = bllm_blockq_quantize_tokens(x, n_tok, cols, mem);
    int32_t *bias = (int32_t *)(mem + ((act + 63) & ~(size_t)63));
    for (size_t i = 0; i < (size_t)n_tok * nb; i++) {
        int32_t s = 0;
        for (int c = 0; c < BLLM_QBLOCK; c++)
            s += a->qx[i * BLLM_QBLOCK + c];
        bias[i] = -off * s;
    }
    a->bias = bias;
    return 1;
}

/* The 8 code vectors of one group block: c[2j] columns 4j..4j+3, c[2j+1]
 * columns 16+4j.., as unsigned bytes (q4nl through the level table). */
INLINE void load_codes(bllm_type ty, const uint8_t *blk, __m512i c[8])
{
    const __m512i m4 = _mm512_set1_epi8(15);
    static const int8_t lv[16] = BLLM_Q4NL_LEVELS;
    const __m512i tab = _mm512_broadcast_i32x4(_mm_xor_si128(_mm_loadu_si128((const __m128i *)lv),
                                                             _mm_set1_epi8((char)0x80)));
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        const __m512i v = _mm512_loadu_si512((const void *)(blk + 2 * BLLM_BLOCKQ_X16_ROWS + 64 * j));
        __m512i lo = _mm512_and_si512(v, m4), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        if (ty == BLLM_TYPE_Q4NL) {
            lo = _mm512_shuffle_epi8(tab, lo);
            hi = _mm512_shuffle_epi8(tab, hi);
        }
        c[2 * j] = lo;
        c[2 * j + 1] = hi;
    }
}

/* acc + (d_w * d_x) * (sum over the block), the 16 rows of one group. */
INLINE __m512 block_sum(const __m512i c[8], const uint8_t *blk, const int8_t *xb, int32_t bias, float dx,
                        __m512 acc)
{
    __m512i s0 = _mm512_set1_epi32(bias), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        int32_t lo, hi;
        memcpy(&lo, xb + 4 * j, 4);
        memcpy(&hi, xb + 16 + 4 * j, 4);
        s0 = _mm512_dpbusd_epi32(s0, c[2 * j], _mm512_set1_epi32(lo));
        s1 = _mm512_dpbusd_epi32(s1, c[2 * j + 1], _mm512_set1_epi32(hi));
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)blk));
    return _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(dx)), _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)),
                           acc);
}

/* One token, NG groups side by side (independent chains, shared
 * activation loads). */
INLINE void gemv_groups(bllm_type ty, int NG, const uint8_t *w, size_t group_bytes, int nb, const x16_act *a,
                        int t, float *y)
{
    __m512 acc[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
    const int8_t *qx = a->qx + (size_t)t * nb * BLLM_QBLOCK;
    const float *dx = a->dx + (size_t)t * nb;
    const int32_t *bias = a->bias + (size_t)t * nb;
    for (int b = 0; b < nb; b++) {
#pragma GCC unroll 2
        for (int k = 0; k < NG; k++) {
            const uint8_t *blk = w + k * group_bytes + (size_t)b * GB;
            for (int o = 0; o < GB; o += 64)
                _mm_prefetch((const char *)blk + X16_PFD * GB + o, _MM_HINT_T0);
            __m512i c[8];
            load_codes(ty, blk, c);
            acc[k] = block_sum(c, blk, qx + (size_t)b * BLLM_QBLOCK, bias[b], dx[b], acc[k]);
        }
    }
    for (int k = 0; k < NG; k++)
        _mm512_storeu_ps(y + BLLM_BLOCKQ_X16_ROWS * k, acc[k]);
}

/* Tokens t..t+3 of one group: each block's codes split once for four. */
INLINE void group_tok4(bllm_type ty, const uint8_t *w, int nb, const x16_act *a, int t, float *y, int rows)
{
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t)b * GB;
        __m512i c[8];
        load_codes(ty, blk, c);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) {
            const size_t i = (size_t)(t + k) * nb + b;
            acc[k] = block_sum(c, blk, a->qx + i * BLLM_QBLOCK, a->bias[i], a->dx[i], acc[k]);
        }
    }
    for (int k = 0; k < 4; k++)
        _mm512_storeu_ps(y + (size_t)(t + k) * rows, acc[k]);
}

INLINE void matmul_x16(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                       int r1, bllm_matmul_fn fallback)
{
    if (n_tok <= 0 || r0 >= r1)
        return;
    x16_act a;
    if (!quantize_act(ty, x, n_tok, cols, &a)) {
        fallback(y, x, w, n_tok, cols, rows, r0, r1);
        return;
    }
    const int nb = cols / BLLM_QBLOCK, t4 = n_tok / 4 * 4;
    const size_t group_bytes = (size_t)nb * GB;
    const int g0 = r0 / BLLM_BLOCKQ_X16_ROWS, g1 = r1 / BLLM_BLOCKQ_X16_ROWS;
    for (int g = g0; g < g1; g++)
        for (int t = 0; t < t4; t += 4)
            group_tok4(ty, (const uint8_t *)w + g * group_bytes, nb, &a, t, y + (size_t)g * BLLM_BLOCKQ_X16_ROWS,
                       rows);
    for (int t = t4; t < n_tok; t++) {
        float *yt = y + (size_t)t * rows;
        int g = g0;
        for (; g + 2 <= g1; g += 2)
            gemv_groups(ty, 2, (const uint8_t *)w + g * group_bytes, group_bytes, nb, &a, t,
                        yt + g * BLLM_BLOCKQ_X16_ROWS);
        if (g < g1)
            gemv_groups(ty, 1, (const uint8_t *)w + g * group_bytes, group_bytes, nb, &a, t,
                        yt + g * BLLM_BLOCKQ_X16_ROWS);
    }
}

void bllm_matmul_q4_x16_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_x16(BLLM_TYPE_Q4, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q4_x16_scalar);
}

void bllm_matmul_q4nl_x16_vnni(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                               int r1)
{
    matmul_x16(BLLM_TYPE_Q4NL, y, x, w, n_tok, cols, rows, r0, r1, bllm_matmul_q4nl_x16_scalar);
}
