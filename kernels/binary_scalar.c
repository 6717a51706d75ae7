/* Scalar reference matmuls for the packed binary types. Each weight is the
 * f32 value runtime/format/binary.h defines (decoded 64 columns at a time by
 * bllm_binary_dequant_group), and each output is summed exactly like the f32
 * reference in kernels/scalar.c: s = 0, then s += w[c] * x[c] for c in
 * increasing order, a separate multiply and add. So the result is
 * bit-identical to the f32 scalar matmul over the dequantized matrix (tests
 * check this), and the SIMD kernels are measured against it. */
#include <string.h>
#include "kernels/binary_scalar.h"

#include "runtime/format/binary.h"

/* Tokens whose partial sums are carried across column groups at once; the
 * group is decoded once per chunk. */
#define TOK_CHUNK 16

static void matmul_packed(bllm_type type, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                          int r0, int r1)
{
    float wg[BLLM_GROUP], acc[TOK_CHUNK];
    int ngrp = cols / BLLM_GROUP;
    for (int r = r0; r < r1; r++)
        for (int t0 = 0; t0 < n_tok; t0 += TOK_CHUNK) {
            int nt = n_tok - t0 < TOK_CHUNK ? n_tok - t0 : TOK_CHUNK;
            for (int t = 0; t < nt; t++)
                acc[t] = 0.0f;
            for (int grp = 0; grp < ngrp; grp++) {
                bllm_binary_dequant_group(type, w, rows, cols, r, grp, wg);
                for (int t = 0; t < nt; t++) {
                    const float *xt = x + (size_t)(t0 + t) * cols + (size_t)grp * BLLM_GROUP;
                    float s = acc[t];
                    for (int c = 0; c < BLLM_GROUP; c++)
                        s += wg[c] * xt[c];
                    acc[t] = s;
                }
            }
            for (int t = 0; t < nt; t++)
                y[(size_t)(t0 + t) * rows + r] = acc[t];
        }
}

#define DEFINE(name, TYPE, KTYPE)                                                                         \
    void bllm_matmul_##name##_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, \
                                     int r0, int r1)                                                      \
    {                                                                                                     \
        matmul_packed(KTYPE, y, x, w, n_tok, cols, rows, r0, r1);                                         \
    }
BLLM_TILE_TYPES(DEFINE)
BLLM_BLOCK_TYPES(DEFINE)

/* pb8's salient part: one correction per salient weight, since its int8
 * value replaces the binary value stored at the same place. This is the
 * reference of bllm_kernel_set.salient_matvec (kernels/salient_avx2.c is the
 * SIMD one). Summation order, per row r and token t:
 *   d_e = (float)q_e * scale[r] - b(r, c_e)     for the row's entries e in
 *                                               increasing column order
 *   a = 0; a += d_e * x[t][c_e] (a multiply, then an add) for each e in turn
 *   y[t][r] += a
 * The add runs over ~10% of all weights on every token, and its signs and
 * columns are random, so the loop is written without data-dependent
 * branches: b is alpha with its sign bit set from the stored bit, and each
 * entry addresses its tile directly instead of tracking group changes. */

/* Groups per row at most: columns are u16 (docs/format.md, cols <= 65536). */
#define SALIENT_MAX_GROUPS (65536 / BLLM_GROUP)

void bllm_salient_matvec(float *y, const float *x, const void *w, const bllm_pb8_salient *s, int n_tok, int cols,
                         int rows, int r0, int r1)
{
    enum { E_CHUNK = 256 };
    float d[E_CHUNK], acc[TOK_CHUNK], alpha[SALIENT_MAX_GROUPS];
    const int ngrp = cols / BLLM_GROUP;
    for (int r = r0; r < r1; r++) {
        uint32_t e0 = s->row_ptr[r], e1 = s->row_ptr[r + 1];
        if (e0 == e1)
            continue;
        /* b1g layout (docs/format.md): tile (r / 32, grp) is 320 bytes, 256
         * sign bytes then alpha fp16[32]; row j = r % 32 of it has alpha at
         * 256 + 2j and the sign of tile column cc in bit (j / 16) * 4 + cc % 4
         * of byte 16 (cc / 4) + j % 16. */
        const uint8_t *tiles = (const uint8_t *)w + (size_t)(r / 32) * (size_t)ngrp * 320;
        const int j = r % 32;
        for (int g = 0; g < ngrp; g++) { /* one conversion per group, not per entry */
            uint16_t a;
            memcpy(&a, tiles + (size_t)g * 320 + 256 + 2 * j, 2);
            alpha[g] = bllm_f16_to_f32(a);
        }
        const float scale = bllm_f16_to_f32(s->scale[r]);
        for (int t0 = 0; t0 < n_tok; t0 += TOK_CHUNK) {
            int nt = n_tok - t0 < TOK_CHUNK ? n_tok - t0 : TOK_CHUNK;
            for (int t = 0; t < nt; t++)
                acc[t] = 0.0f;
            for (uint32_t ec = e0; ec < e1; ec += E_CHUNK) {
                int ne = e1 - ec < E_CHUNK ? (int)(e1 - ec) : E_CHUNK;
                for (int e = 0; e < ne; e++) {
                    int c = s->col[ec + e], g = c / 64, cc = c % 64;
                    unsigned bit = tiles[(size_t)g * 320 + 16 * (cc / 4) + (j & 15)] >> ((j >> 4) * 4 + (cc & 3)) & 1;
                    d[e] = (float)s->val[ec + e] * scale - bllm_b1g_signed(alpha[g], bit);
                }
                for (int t = 0; t < nt; t++) {
                    const float *xt = x + (size_t)(t0 + t) * cols;
                    float a = acc[t];
                    for (int e = 0; e < ne; e++)
                        a += d[e] * xt[s->col[ec + e]];
                    acc[t] = a;
                }
            }
            for (int t = 0; t < nt; t++)
                y[(size_t)(t0 + t) * rows + r] += acc[t];
        }
    }
}
