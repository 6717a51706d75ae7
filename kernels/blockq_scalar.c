/* The scalar reference of the q8/q6/q4/q4nl matmuls: kernels/blockq.h. */
#include <stdlib.h>
#include <string.h>

#include "kernels/blockq.h"
#include "runtime/format/blockq.h"

static void matmul_blockq(bllm_type ty, float *y, const float *x, const void *w, int n_tok, int cols, int rows,
                          int r0, int r1)
{
    const int nb = cols / BLLM_QBLOCK, bs = bllm_blockq_block_bytes(ty);
    const size_t row_bytes = (size_t)nb * bs;
    int8_t qx[BLLM_QBLOCK], qw[BLLM_QBLOCK];
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * cols;
        for (int r = r0; r < r1; r++) {
            const uint8_t *blk = (const uint8_t *)w + (size_t)r * row_bytes;
            float acc = 0.0f;
            for (int b = 0; b < nb; b++, blk += bs) {
                float dx = bllm_blockq_quantize_x(xt + (size_t)b * BLLM_QBLOCK, qx);
                uint16_t h;
                memcpy(&h, blk, 2);
                float dw = bllm_f16_to_f32(h);
                bllm_blockq_levels(ty, blk, qw);
                int32_t s = 0;
                for (int i = 0; i < BLLM_QBLOCK; i++)
                    s += (int32_t)qw[i] * qx[i];
                acc += (dw * dx) * (float)s;
            }
            y[(size_t)t * rows + r] = acc;
        }
    }
}

void bllm_matmul_q8_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q8, y, x, w, n_tok, cols, rows, r0, r1);
}

void bllm_matmul_q4_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q4, y, x, w, n_tok, cols, rows, r0, r1);
}

void bllm_matmul_q6_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q6, y, x, w, n_tok, cols, rows, r0, r1);
}

void bllm_matmul_q4nl_scalar(float *y, const float *x, const void *w, int n_tok, int cols, int rows, int r0, int r1)
{
    matmul_blockq(BLLM_TYPE_Q4NL, y, x, w, n_tok, cols, rows, r0, r1);
}
