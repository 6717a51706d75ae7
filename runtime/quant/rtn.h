/* Round-to-nearest binarization: from float weights to the decomposition
 * of each packed type (runtime/format/binary.h), with no calibration data.
 * The floor the calibrated methods (runtime/quant/) must beat, and the way
 * test models are made. */
#ifndef BLLM_QUANT_RTN_H
#define BLLM_QUANT_RTN_H

#include "runtime/format/binary.h"

typedef struct {
    float salient_frac; /* pb8: fraction of each row kept as int8 (0.1) */
    int onebit_iters;   /* onebit: power iterations for the rank-1 |W| (32) */
} bllm_rtn_options;

void bllm_rtn_options_default(bllm_rtn_options *o);
/* Binarize w (rows x cols f32, row-major) into d (initialized here), by
 * type: b1 alpha = mean|w| per row; b1g per row per 64 columns; b1mg mu =
 * mean, alpha = mean|w - mu|; rb2g the same on the residual, twice; nmNM
 * keeps the N largest |w| of every M (ties to the lower column), then b1mg
 * over the kept weights of each 64 columns; onebit signs of w and g, h from
 * the leading singular vectors of |W| (power iteration), balanced as
 * sqrt(sigma) u, sqrt(sigma) v; pb8 the top salient_frac |w| of each row in
 * int8 with scale max|w| / 127 per row, the rest b1g (alpha over the
 * non-salient weights). Scales are computed in f32/f64, rounded to fp16,
 * and the rounded values are used from then on (signs of residuals
 * included). Sign of 0 is +1. */
bllm_status bllm_binary_rtn(bllm_type type, const float *w, int rows, int cols, const bllm_rtn_options *o,
                            bllm_binary_decomp *d);
/* Salient weights RTN pb8 keeps in every row: lround(salient_frac * cols)
 * (so a writer can size the companion before quantizing). */
int bllm_rtn_pb8_per_row(int cols, float salient_frac);

#endif
