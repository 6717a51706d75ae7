/* Per-layer N:M allocation for the sparse methods: a probe pass of the
 * calibration engine over the float model (engine.h, probe mode) measures
 * every block, and N is chosen per block so that the model-wide average is
 * the target N exactly (all blocks of a Llama hold the same number of
 * weights, so averaging N averages the kept share).
 *
 *  - BLLM_NM_ALLOC_OUTLIER (stbllm, after OWL as STBLLM's code uses it):
 *    the block's outlier share D_l, the share of Standardized Importance
 *    scores above 6 times their matrix's mean (weighted over its seven
 *    matrices); keep_l = N/M + 2 lambda (d_l - mean d), d the min-max
 *    normalized D, lambda 0.08 (OWL's default); N_l = round(M keep_l) in
 *    [1, M], then the rounding is corrected one step at a time, where it
 *    moved least, until the N_l average N.
 *  - BLLM_NM_ALLOC_SEARCH (pbs2p, the coarse stage of its coarse-to-fine
 *    search): each matrix is quantized by STBLLM's one-shot method (a cheap
 *    stand-in for the progressive one) at N - 1, N and N + 1 kept per group
 *    and its relative output error measured; starting from N
 *    everywhere, one block goes up and another down while that lowers the
 *    summed squared errors, each block moving at most one step. */
#ifndef BLLM_QUANT_NM_ALLOC_H
#define BLLM_QUANT_NM_ALLOC_H

#include "runtime/quant/engine.h"

typedef enum {
    BLLM_NM_ALLOC_UNIFORM = 0,
    BLLM_NM_ALLOC_OUTLIER = 1,
    BLLM_NM_ALLOC_SEARCH = 2,
} bllm_nm_alloc_mode;

/* base: the engine parameters of the real run (method, options, calibration);
 * the probe uses its first `samples` windows. layer_n[hp->n_layers] gets N
 * per block; score[n_layers] (may be NULL) the per-block measure (outlier
 * share, or the error gained by one more kept weight per group). */
bllm_status bllm_nm_allocate(const bllm_engine_source *src, const bllm_llama_hparams *hp,
                             const bllm_tokenizer_spec *tok, const bllm_engine_params *base, bllm_nm_alloc_mode mode,
                             int samples, int *layer_n, double *score);

/* The outlier rule above on given shares (exposed for tests). */
void bllm_nm_alloc_outlier(const double *share, int n_layers, int n, int m, double lambda, int *layer_n);

#endif
