/* The x16 layout of q4/q4nl matrices (kernels/blockq.h): the repack and
 * the scalar reference on it. */
#include <string.h>

#include "kernels/blockq.h"
#include "runtime/format/blockq.h"

enum { X16_BLOCK = BLLM_BLOCKQ_X16_ROWS * 18 }; /* bytes per group and block */

int bllm_blockq_x16_fits(bllm_type ty, int rows, int cols)
{
    return (ty == BLLM_TYPE_Q4 || ty == BLLM_TYPE_Q4NL) && rows > 0 && rows % BLLM_BLOCKQ_X16_ROWS == 0 &&
           cols > 0 && cols % BLLM_QBLOCK == 0;
}

/* Byte of code (row r, column c) within a group's block: column c < 16 in
 * the low nibble, c + 16 in the high one. */
static inline int x16_byte(int r, int c) { return 2 * BLLM_BLOCKQ_X16_ROWS + 64 * (c / 4) + 4 * r + c % 4; }

void bllm_blockq_repack_x16(bllm_type ty, const void *w, int rows, int cols, void *out)
{
    const int nb = cols / BLLM_QBLOCK;
    const size_t row_bytes = (size_t)nb * 18;
    for (int g = 0; g < rows / BLLM_BLOCKQ_X16_ROWS; g++)
        for (int b = 0; b < nb; b++) {
            uint8_t *o = (uint8_t *)out + ((size_t)g * nb + b) * X16_BLOCK;
            for (int r = 0; r < BLLM_BLOCKQ_X16_ROWS; r++) {
                const uint8_t *blk = (const uint8_t *)w + (size_t)(BLLM_BLOCKQ_X16_ROWS * g + r) * row_bytes +
                                     (size_t)b * 18;
                memcpy(o + 2 * r, blk, 2);
                for (int c = 0; c < 16; c++) /* file: byte 2 + c = column c | column c + 16 << 4 */
                    o[x16_byte(r, c)] = blk[2 + c];
            }
        }
    (void)ty;
}

static void matmul_x16(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                       int r1)
{
    const int nb = cols / BLLM_QBLOCK;
    int8_t qx[BLLM_QBLOCK];
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * cols;
        for (int r = r0; r < r1; r++) {
            const int g = r / BLLM_BLOCKQ_X16_ROWS, rr = r % BLLM_BLOCKQ_X16_ROWS;
            float acc = 0.0f;
            for (int b = 0; b < nb; b++) {
                const uint8_t *blk = (const uint8_t *)w + ((size_t)g * nb + b) * X16_BLOCK;
                float dx = bllm_blockq_quantize_x(xt + (size_t)b * BLLM_QBLOCK, qx);
                uint16_t h;
                memcpy(&h, blk + 2 * rr, 2);
                float dw = bllm_f16_to_f32(h);
                int32_t s = 0;
                for (int c = 0; c < 16; c++) {
                    const int lo = blk[x16_byte(rr, c)] & 15, hi = blk[x16_byte(rr, c)] >> 4;
                    s += bllm_blockq_level(ty, lo) * qx[c] + bllm_blockq_level(ty, hi) * qx[c + 16];
                }
                acc += (dw * dx) * (float)s;
            }
            y[(size_t)t * rows + r] = acc;
        }
    }
}

void bllm_matmul_q4_x16_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                               int r1)
{
    matmul_x16(BLLM_TYPE_Q4, y, x, w, n_tok, cols, rows, r0, r1);
}

void bllm_matmul_q4nl_x16_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0,
                                 int r1)
{
    matmul_x16(BLLM_TYPE_Q4NL, y, x, w, n_tok, cols, rows, r0, r1);
}
