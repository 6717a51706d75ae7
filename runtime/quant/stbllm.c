/* STBLLM (Dong et al. 2024): N:M-sparse binarization on top of BiLLM,
 * stored as stbllm (runtime/format/binary.h), with the N:M structure kept
 * for real.
 *
 *  1. Mask, once per matrix from the original weights, before any
 *     compensation: the Standardized Importance of each weight,
 *        SI_rc = (|w_rc| / sum_c' |w_rc'| + |w_rc| / sum_r' |w_r'c|) * ||x_c||^(1/2)
 *     with ||x_c|| the RMS of input feature c over the calibration tokens
 *     (sqrt(H_cc / 2), H = 2 X X^T / n). In every group of M consecutive
 *     columns of a row the N highest scores are kept (ties to the lower
 *     column). The paper then standardizes SI (minus its mean, over its
 *     standard deviation); that is an increasing affine map of the whole
 *     matrix's scores, so it cannot change which weights a group keeps and
 *     is left out.
 *  2. BiLLM's binarization of the kept weights, per block of 128 columns
 *     (bllm_billm_family_run, runtime/quant/billm.c): salient columns by
 *     the Hessian score with their count searched, residual (order-2)
 *     binarization for them; the rest in three magnitude regions (|w| < p,
 *     p <= |w| < 2p, 2p <= |w|) with their own mean and scale per row, p
 *     searched over the quantiles of |w|; GPTQ error compensation.
 *  3. The mask never changes: a pruned weight quantizes to 0 in its column,
 *     its whole value becomes error fed to the later columns (as SparseGPT
 *     does), and no update is ever written back into a pruned position.
 *     The authors' code re-fills the zeros with later updates, so the model
 *     it evaluates is not N:M-sparse (field notes); here the stored tensor
 *     is exactly N:M by construction, and tests/quant checks it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/quant/method.h"

bllm_status bllm_stbllm_scores(const float *w, int rows, int cols, const double *H, float *score)
{
    double *rsum = calloc((size_t)rows, sizeof *rsum), *csum = calloc((size_t)cols, sizeof *csum);
    double *feat = malloc((size_t)cols * sizeof *feat);
    if (!rsum || !csum || !feat) {
        free(rsum), free(csum), free(feat);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for stbllm's importance scores");
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double a = fabs((double)w[(size_t)r * cols + c]);
            rsum[r] += a;
            csum[c] += a;
        }
    for (int c = 0; c < cols; c++) {
        double hc = H[(size_t)c * cols + c];
        feat[c] = hc > 0.0 ? sqrt(sqrt(hc / 2.0)) : 0.0; /* ||x_c||^(1/2) */
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            double a = fabs((double)w[(size_t)r * cols + c]);
            double v = (rsum[r] > 0.0 ? a / rsum[r] : 0.0) + (csum[c] > 0.0 ? a / csum[c] : 0.0);
            score[(size_t)r * cols + c] = (float)(v * feat[c]);
        }
    free(rsum), free(csum), free(feat);
    return BLLM_OK;
}

bllm_status bllm_nm_mask_top(const float *score, int rows, int cols, int n, int m, uint8_t *keep)
{
    if (m < 1 || m > 32 || n < 0 || n > m || cols % m)
        return bllm_fail(BLLM_ERR_ARG, "N:M %d:%d does not fit %d columns (1 <= M <= 32, N <= M, M dividing the "
                         "columns)", n, m, cols);
    for (size_t g = 0; g < (size_t)rows * cols; g += (size_t)m) {
        const float *sc = score + g;
        /* keep the N best: rank = how many beat p (ties: lower column wins) */
        for (int p = 0; p < m; p++) {
            int rank = 0;
            for (int q = 0; q < m; q++)
                rank += sc[q] > sc[p] || (sc[q] == sc[p] && q < p);
            keep[g + (size_t)p] = rank < n;
        }
    }
    return BLLM_OK;
}

bllm_status bllm_method_stbllm(const float *w, int rows, int cols, const double *H, const bllm_gptq_hinv *h,
                               const bllm_method_options *o, bllm_pool *pool, bllm_binary_decomp *d, float *sim,
                               bllm_method_report *rep)
{
    uint8_t *keep = malloc((size_t)rows * cols);
    float *score = malloc((size_t)rows * cols * sizeof *score);
    bllm_status s = keep && score ? BLLM_OK
                                  : bllm_fail(BLLM_ERR_NOMEM, "out of memory for the stbllm mask of a %d x %d matrix",
                                              rows, cols);
    if (!s)
        s = bllm_stbllm_scores(w, rows, cols, H, score);
    if (!s)
        s = bllm_nm_mask_top(score, rows, cols, o->nm_n, o->nm_m, keep);
    free(score);
    float *w0 = NULL;
    if (!s && o->nm_refill) {
        /* the authors' code: zero the pruned weights, then compensate and
         * binarize every position, the pruned ones included */
        w0 = malloc((size_t)rows * cols * sizeof *w0);
        if (!w0)
            s = bllm_fail(BLLM_ERR_NOMEM, "out of memory for a %d x %d matrix", rows, cols);
        for (size_t i = 0; !s && i < (size_t)rows * cols; i++) {
            w0[i] = keep[i] ? w[i] : 0.0f;
            keep[i] = 1;
        }
    }
    if (!s)
        s = bllm_billm_family_run(BLLM_TYPE_STBLLM, keep, w0 ? w0 : w, rows, cols, H, h, o, pool, d, sim, rep);
    free(w0);
    free(keep);
    return s;
}
