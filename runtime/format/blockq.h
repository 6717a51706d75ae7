/* Block-quantized rows, q8, q6, q4 and q4nl (runtime/format/types.h,
 * docs/format.md): the types of the matrices that stay out of
 * binarization, the token embedding and the output head. Rows are stored
 * one after another, each as cols / 32 blocks:
 *   q8    fp16 d, then 32 int8 q              34 bytes   w = d * q
 *   q4    fp16 d, then 16 bytes: byte j holds q of column j (low nibble)
 *         and of column j + 16 (high nibble)   18 bytes   w = d * (q - 8)
 *   q4nl  q4's bytes                           18 bytes   w = d * level[q]
 *   q6    fp16 d, then q4's 16 bytes of low nibbles, then 8 bytes: byte j
 *         holds the top two bits of columns j, j + 8, j + 16, j + 24
 *         (bits 0-1, 2-3, 4-5, 6-7)            26 bytes   w = d * (q - 32)
 * q4nl's 16 int8 levels (BLLM_Q4NL_LEVELS) are spaced as the values of a
 * block are: runtime/format/q4nl_levels.py fits them (Lloyd-Max) to blocks of 32
 * Gaussian values scaled so that the largest magnitude is -1, the first
 * level; on SmolLM2's embedding/head they cut the KL divergence of q4 by a
 * third at the same size (docs/results.md).
 * Rows are whole bytes, so an embedding row is read alone. Without
 * importance the quantizers round to nearest: q8 d = max |w| / 127; q4 d =
 * -m / 8 with m the block's value of largest magnitude (its sign kept), so
 * m lands exactly on q = 0 and the opposite side reaches 7 d: q =
 * clamp(round(w / d) + 8, 0, 15); q6 the same at 6 bits, d = -m / 32, q =
 * clamp(round(w / d) + 32, 0, 63); q4nl d = m / level[0], q the nearest
 * level. Every operation is one f32 rounding; d is rounded to fp16 first
 * and q computed with it, so dequantize(quantize(w)) is what a kernel
 * sees. */
#ifndef BLLM_BLOCKQ_H
#define BLLM_BLOCKQ_H

#include <stdint.h>

#include "bllm.h"
#include "runtime/format/types.h"

#define BLLM_QBLOCK 32

/* The embedding and head of the binary models bllm-quantize and
 * bllm-random write, unless --embed-type / --head-type say otherwise.
 * q4nl: with the calibration's importance, on a BiLLM-binarized SmolLM2 it
 * costs KL 0.12 nats/token against an f16 head (q6 0.010, uniform q4
 * 0.16), 4% of what the binarization itself costs, and it is what brings
 * the whole b1g file under 2 bits per parameter (q6: 2.34); --head-type q6
 * buys the difference back (docs/results.md, "Embedding and head in 8, 6
 * or 4 bits"). */
#define BLLM_BINARY_HEAD_TYPE BLLM_TYPE_Q4NL

/* q4nl's levels, ascending; the first, of largest magnitude, takes a
 * block's largest value. */
#define BLLM_Q4NL_LEVELS {-127, -102, -81, -64, -49, -35, -22, -9, 3, 16, 29, 42, 57, 73, 91, 113}
static const int8_t bllm_q4nl_levels[16] = BLLM_Q4NL_LEVELS;

/* Bytes of one 32-column block. */
static inline int bllm_blockq_block_bytes(bllm_type t)
{
    return t == BLLM_TYPE_Q8 ? 34 : t == BLLM_TYPE_Q6 ? 26 : 18;
}

/* The signed level of a code (w = d * level): q8's code itself (a byte
 * taken as int8), q4's code - 8, q6's code - 32, q4nl's level[code]. */
static inline int bllm_blockq_level(bllm_type t, int code)
{
    return t == BLLM_TYPE_Q8 ? (int8_t)code : t == BLLM_TYPE_Q6 ? code - 32
                                            : t == BLLM_TYPE_Q4NL ? bllm_q4nl_levels[code]
                                                                  : code - 8;
}

/* The 32 signed levels of one block. */
static inline void bllm_blockq_levels(bllm_type t, const uint8_t *blk, int8_t q[BLLM_QBLOCK])
{
    if (t == BLLM_TYPE_Q8) {
        for (int i = 0; i < BLLM_QBLOCK; i++)
            q[i] = (int8_t)bllm_blockq_level(t, blk[2 + i]);
        return;
    }
    for (int j = 0; j < 16; j++) {
        int lo = blk[2 + j] & 15, hi = blk[2 + j] >> 4;
        if (t == BLLM_TYPE_Q6) {
            lo |= (blk[18 + j % 8] >> (2 * (j / 8)) & 3) << 4;
            hi |= (blk[18 + j % 8] >> (2 * (j / 8) + 4) & 3) << 4;
        }
        q[j] = (int8_t)bllm_blockq_level(t, lo);
        q[j + 16] = (int8_t)bllm_blockq_level(t, hi);
    }
}

/* One row of cols (a multiple of 32) values into its blocks. */
void bllm_blockq_quantize_row(bllm_type t, const float *x, int cols, uint8_t *out);
/* The same, each block's d chosen to minimize sum_c imp[c] (x_c - w_c)^2
 * (imp: cols non-negative weights, e.g. the mean square of the input
 * column c, as llama.cpp's importance matrix); the rule above is one of
 * the candidates, so the weighted error is never larger. imp NULL: the
 * rule above. */
void bllm_blockq_quantize_row_weighted(bllm_type t, const float *x, const float *imp, int cols, uint8_t *out);
/* One row back to f32. */
void bllm_blockq_dequant_row(bllm_type t, const uint8_t *row, int cols, float *out);
/* Every scale finite, or BLLM_ERR_FORMAT naming the tensor, row and block. */
bllm_status bllm_blockq_check(bllm_type t, const void *data, int rows, int cols, const char *name);

#endif
