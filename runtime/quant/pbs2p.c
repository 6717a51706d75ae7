/* PBS²P (Yan et al. 2025), "progressive binarization with semi-structured
 * pruning", from the paper's description (no code is public), stored as
 * stbllm: the same N:M-sparse BiLLM-style binarization as STBLLM
 * (bllm_billm_family_run: residual salient columns, three magnitude
 * regions, GPTQ compensation that keeps the zeros), with the mask chosen
 * differently. What the paper leaves open, and what is chosen here:
 *
 *  - SPBO (stepwise pruning with binarization optimization): the N:M
 *    sparsity is reached in M - N steps, one more weight pruned per group
 *    of M at each step; after each step the binarization parameters
 *    (salient columns, break point, every scale) are optimized again for
 *    the weights still kept, with error compensation, by running the whole
 *    binarization on the new mask. The paper does not say how many weights
 *    a step prunes; one per group is the finest progression N:M allows.
 *  - The fine stage of CFS (which elements to prune): at each step, in each
 *    group, the kept weight whose pruning costs least,
 *        cost_rc = (w_rc^2 - (w_rc - b_rc)^2) / [H^-1]_cc,
 *    the OBS saliency of setting w_rc to 0 (w^2 / [H^-1]_cc, as SparseGPT)
 *    minus what the weight already loses to binarization, b_rc being its
 *    binarized value at the previous step (the first step: the binarization
 *    of the dense matrix). A weight the binarization represents badly is
 *    cheap to prune. Ties go to the lower column.
 *  - The coarse stage of CFS (per-layer ratios): nm_alloc.c's search mode,
 *    which the writer runs before this (bllm-quantize --nm-alloc search, the
 *    default for pbs2p). It measures each block with STBLLM's one-shot mask
 *    at N - 1, N and N + 1 kept per group, a cheap stand-in for the full
 *    progressive method, and moves blocks by one step where that lowers
 *    the summed squared output errors, keeping the average N.
 *  - The binarization itself is STBLLM's (the paper builds on the same
 *    salient/non-salient split), so pbs2p and stbllm differ only in the
 *    mask: what the comparison of the two measures. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/quant/method.h"

bllm_status bllm_method_pbs2p(const float *w, int rows, int cols, const double *H, const bllm_gptq_hinv *h,
                              const bllm_method_options *o, bllm_pool *pool, bllm_binary_decomp *d, float *sim,
                              bllm_method_report *rep)
{
    const int n = o->nm_n, m = o->nm_m;
    if (m < 1 || m > 32 || n < 1 || n > m || cols % m)
        return bllm_fail(BLLM_ERR_ARG, "pbs2p: N:M %d:%d does not fit %d columns", n, m, cols);
    const size_t nw = (size_t)rows * cols;
    uint8_t *keep = malloc(nw);
    float *cost = malloc(nw * sizeof *cost);
    double *hdiag = malloc((size_t)cols * sizeof *hdiag);
    if (!keep || !cost || !hdiag) {
        free(keep), free(cost), free(hdiag);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for pbs2p on a %d x %d matrix", rows, cols);
    }
    /* [H^-1]_cc = sum_k U_kc^2 (H^-1 = U^T U, U upper) */
    for (int c = 0; c < cols; c++) {
        double s = 0.0;
        for (int k = 0; k <= c; k++)
            s += h->U[(size_t)k * cols + c] * h->U[(size_t)k * cols + c];
        hdiag[c] = s > 0.0 ? s : 1.0;
    }
    memset(keep, 1, nw);
    bllm_status s = bllm_billm_family_run(BLLM_TYPE_STBLLM, keep, w, rows, cols, H, h, o, pool, d, sim, rep);
    for (int kept = m - 1; !s && kept >= n; kept--) {
        bllm_binary_decomp_free(d);
        /* pruned weights score -inf, so keeping the `kept` costliest of each
         * group prunes exactly one more of the kept ones */
        for (size_t i = 0; i < nw; i++) {
            double wv = w[i], e = wv - (double)sim[i];
            cost[i] = keep[i] ? (float)((wv * wv - e * e) / hdiag[i % (size_t)cols]) : -INFINITY;
        }
        s = bllm_nm_mask_top(cost, rows, cols, kept, m, keep);
        if (!s)
            s = bllm_billm_family_run(BLLM_TYPE_STBLLM, keep, w, rows, cols, H, h, o, pool, d, sim, rep);
    }
    free(keep), free(cost), free(hdiag);
    return s;
}
