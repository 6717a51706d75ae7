/* PB-LLM (Shang et al. 2024), post-training form ("PB-GPTQ"): a fraction of
 * salient weights kept at 8 bits, the rest binarized, the binarization's
 * error compensated GPTQ-style; stored as pb8 (runtime/format/binary.h:
 * b1g signs and scales plus an int8 companion).
 *
 *  - Salient weights: the salient_frac share of the matrix with the largest
 *    w^2 / U_cc^2 (U the Cholesky factor of H^-1), chosen once from the
 *    original weights over the whole matrix, as the authors' "hessian"
 *    criterion does (github.com/hahnyuan/PB-LLM, gptq_pb/). Rows therefore
 *    hold different counts; pb8's companion stores them row by row.
 *  - Their 8 bits: symmetric int8 with one fp16 scale per row, max |w| of
 *    the row's salient weights / 127 (values that drift beyond it during
 *    compensation are clipped). The authors use an asymmetric 8-bit grid
 *    over the whole row's range; pb8 stores no zero point.
 *  - The binary part: sign(w) times the optimal scale, the mean |w| of the
 *    group's non-salient weights, per row per 64 columns (pb8's b1g
 *    layout), computed when the loop reaches the group, from the weights as
 *    compensated so far (GPTQ's grouping). The authors' "xnor" keeps one
 *    scale and mean per row; b1g has finer scales and no mean.
 * Each column's error (8-bit and binary alike) goes to the later columns. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/quant/gptq.h"
#include "runtime/quant/method.h"
#include "runtime/quant/topk.h"

typedef struct {
    bllm_binary_decomp *d;
    int rows, cols;
    bool bad_scale;
} pbllm_ctx;

static void column(void *arg, const double *W, int rows, int cols, int c, float *q)
{
    pbllm_ctx *x = arg;
    bllm_binary_decomp *d = x->d;
    const int ngrp = cols / BLLM_GROUP, g = c / BLLM_GROUP;
    if (c % BLLM_GROUP == 0)
        for (int r = 0; r < rows; r++) {
            double sum = 0.0;
            int n = 0;
            for (int cc = c; cc < c + BLLM_GROUP; cc++)
                if (!d->salient[(size_t)r * cols + cc])
                    sum += fabs(W[(size_t)r * cols + cc]), n++;
            float a = bllm_fp16_round(n ? (float)(sum / n) : 0.0f);
            if (!isfinite(a))
                x->bad_scale = true, a = 0.0f;
            d->alpha[(size_t)r * ngrp + g] = a;
        }
    for (int r = 0; r < rows; r++) {
        const size_t i = (size_t)r * cols + c;
        const double w = W[i];
        d->sign[i] = w >= 0.0;
        if (d->salient[i]) {
            double scale = d->sal_scale[r];
            long v = scale > 0.0 ? lrint(w / scale) : 0;
            d->q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        q[r] = bllm_binary_decomp_value(d, r, c);
    }
}

bllm_status bllm_method_pbllm(const float *w, int rows, int cols, const double *H, const bllm_gptq_hinv *h,
                              const bllm_method_options *o, bllm_pool *pool, bllm_binary_decomp *d, float *sim,
                              bllm_method_report *rep)
{
    memset(rep, 0, sizeof *rep);
    if (!(o->salient_frac >= 0.0f && o->salient_frac <= 1.0f))
        return bllm_fail(BLLM_ERR_ARG, "pb-llm salient fraction %g is not in [0, 1]", (double)o->salient_frac);
    bllm_status s = bllm_binary_decomp_init(d, BLLM_TYPE_PB8, rows, cols);
    if (s)
        return s;
    const size_t n = (size_t)rows * cols;
    const size_t k = (size_t)llround((double)o->salient_frac * (double)n);
    float *score = malloc(n * sizeof *score);
    double *W = malloc(n * sizeof *W);
    if (!score || !W) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory for pb-llm on a %d x %d matrix", rows, cols);
        goto done;
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            double u = h->U[(size_t)c * cols + c], wv = h->dead[c] ? 0.0 : w[i];
            score[i] = (float)(wv * wv / (u * u));
        }
    if ((s = bllm_topk_mask(score, n, k, d->salient)))
        goto done;
    for (int r = 0; r < rows; r++) {
        float mx = 0.0f;
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            if (d->salient[i] && fabsf(w[i]) > mx)
                mx = fabsf(w[i]);
        }
        d->sal_scale[r] = bllm_fp16_round(mx / 127.0f);
        if (!isfinite(d->sal_scale[r])) {
            s = bllm_fail(BLLM_ERR_UNSUPPORTED, "pb-llm: row %d's salient scale is beyond the fp16 range", r);
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++)
        W[i] = w[i];
    pbllm_ctx x = {.d = d, .rows = rows, .cols = cols};
    bllm_gptq_method m = {NULL, column};
    if ((s = bllm_gptq_run(W, rows, cols, h, o->block, true, &m, &x, sim, pool)))
        goto done;
    if (x.bad_scale) {
        s = bllm_fail(BLLM_ERR_UNSUPPORTED, "pb-llm: a binary scale is beyond the fp16 range");
        goto done;
    }
    rep->salient_share = n ? (double)k / (double)n : 0.0;
    rep->rel_error = sqrt(bllm_gptq_output_error(w, sim, rows, cols, H, pool));
done:
    free(score);
    free(W);
    if (s)
        bllm_binary_decomp_free(d);
    return s;
}
