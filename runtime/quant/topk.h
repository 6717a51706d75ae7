/* Top-k selection for the quantizers' salient weights. */
#ifndef BLLM_QUANT_TOPK_H
#define BLLM_QUANT_TOPK_H

#include <stddef.h>
#include <stdint.h>

#include "bllm.h"

/* Set sel[i] = 1 for the k largest of score[0..n) (sel is not cleared
 * first): every score above the k-th largest value, then scores equal to
 * it from the lowest index until k are taken. Scores must not be NaN. */
bllm_status bllm_topk_mask(const float *score, size_t n, size_t k, uint8_t *sel);

#endif
