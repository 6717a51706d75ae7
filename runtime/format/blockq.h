/* Block-quantized rows, q8 and q4 (runtime/format/types.h, docs/format.md):
 * the types of the matrices that stay out of binarization, the token
 * embedding and the output head. Rows are stored one after another, each
 * as cols / 32 blocks:
 *   q8  fp16 d, then 32 int8 q              34 bytes   w = d * q
 *   q4  fp16 d, then 16 bytes: byte j holds q of column j (low nibble) and
 *       of column j + 16 (high nibble)     18 bytes   w = d * (q - 8)
 * Rows are whole bytes, so an embedding row is read alone. The quantizers
 * round to nearest: q8 d = max |w| / 127; q4 d = -m / 8 with m the block's
 * value of largest magnitude (its sign kept), so m lands exactly on q = 0
 * and the opposite side reaches 7 d: q = clamp(round(w / d) + 8, 0, 15).
 * Every operation is one f32 rounding; d is rounded to fp16 first and q
 * computed with it, so dequantize(quantize(w)) is what a kernel sees. */
#ifndef BLLM_BLOCKQ_H
#define BLLM_BLOCKQ_H

#include <stdint.h>

#include "bllm.h"
#include "runtime/format/types.h"

#define BLLM_QBLOCK 32

/* Bytes of one 32-column block. */
static inline int bllm_blockq_block_bytes(bllm_type t) { return t == BLLM_TYPE_Q8 ? 34 : 18; }

/* One row of cols (a multiple of 32) values into its blocks. */
void bllm_blockq_quantize_row(bllm_type t, const float *x, int cols, uint8_t *out);
/* One row back to f32. */
void bllm_blockq_dequant_row(bllm_type t, const uint8_t *row, int cols, float *out);
/* Every scale finite, or BLLM_ERR_FORMAT naming the tensor, row and block. */
bllm_status bllm_blockq_check(bllm_type t, const void *data, int rows, int cols, const char *name);

#endif
