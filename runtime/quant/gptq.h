/* GPTQ/OBC-style error compensation, shared by the calibrated methods.
 *
 * With H = 2 X X^T / n the Hessian of a linear layer's squared output
 * error over its calibration inputs X (cols x n), quantizing the columns
 * one at a time and spreading each column's error over the columns not yet
 * quantized, in proportion to the inverse Hessian, keeps ||W X - Q X||
 * small (Frantar et al., GPTQ). The inverse is used through its upper
 * Cholesky factor U (H^-1 = U^T U): column i's scaled error (w - q) / U_ii
 * updates the later columns j by -err * U_ij. Columns go in blocks (128 by
 * default); inside a block the update is applied column by column, and the
 * block's errors reach the later blocks in one matrix product. */
#ifndef BLLM_QUANT_GPTQ_H
#define BLLM_QUANT_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "bllm.h"
#include "runtime/threadpool.h"

typedef struct {
    int n;
    double *U;       /* n x n, row-major, upper triangle (the rest 0) */
    uint8_t *dead;   /* columns whose input was always 0 */
    double damp;     /* added to the diagonal: percdamp * mean(diag H), times
                        any retries' growth */
    int retries;     /* times the damping was multiplied by 10 for the
                        factorization to succeed */
} bllm_gptq_hinv;

/* Damp H (n x n, symmetric, double) by percdamp times the mean of its
 * diagonal (a dead column's diagonal counts as 1), invert and factor as
 * above. If H + damp is not positive definite the damping grows tenfold, at
 * most 6 times. H is not modified. */
bllm_status bllm_gptq_hinv_init(const double *H, int n, double percdamp, bllm_gptq_hinv *out);
void bllm_gptq_hinv_free(bllm_gptq_hinv *h);

/* What a method does inside the loop. W is the working matrix (rows x cols,
 * row-major, double): the original weights with the errors of the columns
 * already quantized fed into it. */
typedef struct {
    /* Once per block [c0, c1), before its first column: choose what the
     * block's columns share (masks, scales) from the current W. May be
     * NULL. */
    bllm_status (*block_begin)(void *ctx, const double *W, int rows, int cols, int c0, int c1);
    /* Quantize column c: q[r] for every row, from the current W. */
    void (*column)(void *ctx, const double *W, int rows, int cols, int c, float *q);
} bllm_gptq_method;

/* Run the loop on W (modified; on return it holds the quantized values),
 * writing each quantized column into Q (rows x cols f32, row-major).
 * intra_block false: within a block every column is quantized from W as it
 * was when the block began (BiLLM's code does this); the block's errors
 * still reach the later blocks. Columns are processed in blocks of `block`
 * (rounded to a multiple of 64 the methods' groups share). pool may be NULL. */
bllm_status bllm_gptq_run(double *W, int rows, int cols, const bllm_gptq_hinv *h, int block, bool intra_block,
                          const bllm_gptq_method *m, void *ctx, float *Q, bllm_pool *pool);

/* ||(W - Q) X||^2 / ||W X||^2 over the calibration inputs, from the
 * (undamped) H: trace(D H D^T) / trace(W H W^T), D = W - Q. Rows are split
 * across pool (may be NULL); NaN if memory runs out. */
double bllm_gptq_output_error(const float *W, const float *Q, int rows, int cols, const double *H, bllm_pool *pool);

#endif
