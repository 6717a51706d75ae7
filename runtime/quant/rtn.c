/* Round-to-nearest binarization: from float weights to the decomposition of
 * each packed type (runtime/format/binary.h), with no calibration data. These are
 * the baselines the calibrated quantizers (a later issue) must beat, and the
 * way test models are made. Every scale is rounded to fp16 as soon as it is
 * computed and the rounded value is what later steps (residuals, signs) see,
 * so the decomposition is exactly what gets stored. Sums run in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/quant/rtn.h"
#include "runtime/error.h"
#include "runtime/quant/topk.h"

void bllm_rtn_options_default(bllm_rtn_options *o)
{
    o->salient_frac = 0.1f;
    o->onebit_iters = 32;
}

/* Round to fp16; a value beyond its range is an error, not an inf weight. */
static bllm_status h16(float x, const char *what, int r, float *out)
{
    float v = bllm_fp16_round(x);
    if (!isfinite(v))
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "row %d: %s %g is beyond the fp16 range of the packed scales",
                         r, what, (double)x);
    *out = v;
    return BLLM_OK;
}

static inline uint8_t sgn(float x) { return x >= 0.0f; }

/* mu = mean (if want_mu), alpha = mean |w - mu| over the weights of one
 * group selected by keep (NULL = all); signs of w - mu. */
static bllm_status group_fit(const float *w, const uint8_t *keep, int n, bool want_mu, int r, float *mu,
                             float *alpha, uint8_t *sign)
{
    double sum = 0;
    int cnt = 0;
    for (int i = 0; i < n; i++)
        if (!keep || keep[i])
            sum += w[i], cnt++;
    float m = 0.0f;
    bllm_status s;
    if (want_mu && cnt && (s = h16((float)(sum / cnt), "mu", r, &m)))
        return s;
    double asum = 0;
    for (int i = 0; i < n; i++) {
        if (keep && !keep[i]) {
            sign[i] = 0;
            continue;
        }
        float d = w[i] - m;
        sign[i] = sgn(d);
        asum += fabsf(d);
    }
    float a = 0.0f;
    if (cnt && (s = h16((float)(asum / cnt), "alpha", r, &a)))
        return s;
    if (mu)
        *mu = m;
    *alpha = a;
    return BLLM_OK;
}

static bllm_status rtn_b1(const float *w, bllm_binary_decomp *d)
{
    for (int r = 0; r < d->rows; r++) {
        bllm_status s = group_fit(w + (size_t)r * d->cols, NULL, d->cols, false, r, NULL, &d->alpha[r],
                                  d->sign + (size_t)r * d->cols);
        if (s)
            return s;
    }
    return BLLM_OK;
}

/* b1g, b1mg, rb2g and the nm types: one fit per row per 64 columns. */
static bllm_status rtn_groups(const float *w, bllm_binary_decomp *d)
{
    int ngrp = d->cols / BLLM_GROUP, n = 0, m = 0;
    bool nm = bllm_nm_params(d->type, &n, &m, NULL);
    bool want_mu = d->mu != NULL;
    for (int r = 0; r < d->rows; r++)
        for (int grp = 0; grp < ngrp; grp++) {
            size_t i0 = (size_t)r * d->cols + (size_t)grp * BLLM_GROUP, gi = (size_t)r * ngrp + grp;
            const float *wg = w + i0;
            uint8_t *keep = NULL;
            if (nm) {
                keep = d->mask + i0;
                /* N largest |w| of every M; ties to the lower column. */
                for (int k = 0; k < BLLM_GROUP; k += m)
                    for (int pick = 0; pick < n; pick++) {
                        int best = -1;
                        for (int p = k; p < k + m; p++)
                            if (!keep[p] && (best < 0 || fabsf(wg[p]) > fabsf(wg[best])))
                                best = p;
                        keep[best] = 1;
                    }
            }
            bllm_status s = group_fit(wg, keep, BLLM_GROUP, want_mu, r, want_mu ? &d->mu[gi] : NULL,
                                      &d->alpha[gi], d->sign + i0);
            if (s)
                return s;
            if (d->type == BLLM_TYPE_RB2G) {
                /* Second pass on what the first leaves, with its stored
                 * (rounded) values; no second mu. */
                float res[BLLM_GROUP];
                for (int cc = 0; cc < BLLM_GROUP; cc++)
                    res[cc] = wg[cc] - (d->mu[gi] + (d->sign[i0 + cc] ? d->alpha[gi] : -d->alpha[gi]));
                if ((s = group_fit(res, NULL, BLLM_GROUP, false, r, NULL, &d->alpha2[gi], d->sign2 + i0)))
                    return s;
            }
        }
    return BLLM_OK;
}

/* OneBit's SVID initialization: W ~ sign(W) * (g h^T) with g h^T the best
 * rank-1 approximation of |W|. |W| is non-negative, so its leading singular
 * vectors are too (Perron-Frobenius) and power iteration from a positive
 * start converges to them. */
static bllm_status rtn_onebit(const float *w, int iters, bllm_binary_decomp *d)
{
    int rows = d->rows, cols = d->cols;
    double *u = malloc((size_t)rows * sizeof *u), *v = malloc((size_t)cols * sizeof *v);
    double *v2 = malloc((size_t)cols * sizeof *v2);
    if (!u || !v || !v2) {
        free(u), free(v), free(v2);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    }
    for (int c = 0; c < cols; c++)
        v[c] = 1.0 / sqrt((double)cols);
    double sigma = 0;
    for (int it = 0; it < (iters > 0 ? iters : 1); it++) {
        double nu = 0;
        for (int r = 0; r < rows; r++) {
            const float *wr = w + (size_t)r * cols;
            double s = 0;
            for (int c = 0; c < cols; c++)
                s += fabs((double)wr[c]) * v[c];
            u[r] = s;
            nu += s * s;
        }
        nu = sqrt(nu);
        if (nu == 0) {
            sigma = 0;
            break;
        }
        for (int r = 0; r < rows; r++)
            u[r] /= nu;
        memset(v2, 0, (size_t)cols * sizeof *v2);
        for (int r = 0; r < rows; r++) {
            const float *wr = w + (size_t)r * cols;
            for (int c = 0; c < cols; c++)
                v2[c] += fabs((double)wr[c]) * u[r];
        }
        double nv = 0, change = 0;
        for (int c = 0; c < cols; c++)
            nv += v2[c] * v2[c];
        sigma = sqrt(nv);
        for (int c = 0; c < cols; c++) {
            double x = v2[c] / sigma;
            change = fmax(change, fabs(x - v[c]));
            v[c] = x;
        }
        if (change < 1e-9)
            break;
    }
    bllm_status s = BLLM_OK;
    double root = sqrt(sigma);
    for (int r = 0; !s && r < rows; r++)
        s = h16(sigma > 0 ? (float)(root * u[r]) : 0.0f, "g", r, &d->g[r]);
    for (int c = 0; !s && c < cols; c++)
        s = h16(sigma > 0 ? (float)(root * v[c]) : 0.0f, "h", 0, &d->h[c]);
    for (size_t i = 0; !s && i < (size_t)rows * cols; i++)
        d->sign[i] = sgn(w[i]);
    free(u), free(v), free(v2);
    return s;
}

int bllm_rtn_pb8_per_row(int cols, float salient_frac)
{
    double k = salient_frac >= 0.0f && salient_frac <= 1.0f ? (double)salient_frac * cols : 0.0;
    return (int)lround(k);
}

static bllm_status rtn_pb8(const float *w, float frac, bllm_binary_decomp *d)
{
    int rows = d->rows, cols = d->cols, ngrp = cols / BLLM_GROUP;
    if (!(frac >= 0.0f && frac <= 1.0f))
        return bllm_fail(BLLM_ERR_ARG, "pb8 salient fraction %g is not in [0, 1]", (double)frac);
    int k = bllm_rtn_pb8_per_row(cols, frac);
    float *tmp = malloc((size_t)cols * sizeof *tmp);
    if (!tmp)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory");
    bllm_status s = BLLM_OK;
    for (int r = 0; !s && r < rows; r++) {
        const float *wr = w + (size_t)r * cols;
        uint8_t *sal = d->salient + (size_t)r * cols;
        int8_t *q = d->q + (size_t)r * cols;
        float maxabs = 0.0f;
        if (k > 0) {
            /* Top k by |w|, ties to the lowest column. */
            for (int c = 0; c < cols; c++)
                tmp[c] = fabsf(wr[c]);
            if ((s = bllm_topk_mask(tmp, (size_t)cols, (size_t)k, sal)))
                break;
            for (int c = 0; c < cols; c++)
                if (sal[c] && fabsf(wr[c]) > maxabs)
                    maxabs = fabsf(wr[c]);
        }
        s = h16(maxabs / 127.0f, "salient scale", r, &d->sal_scale[r]);
        float scale = d->sal_scale[r];
        for (int c = 0; !s && c < cols; c++) {
            if (!sal[c])
                continue;
            long v = scale > 0 ? lrintf(wr[c] / scale) : 0;
            q[c] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        /* The binary part is fitted to the weights it stands for. */
        for (int grp = 0; !s && grp < ngrp; grp++) {
            size_t i0 = (size_t)r * cols + (size_t)grp * BLLM_GROUP;
            uint8_t keep[BLLM_GROUP];
            for (int cc = 0; cc < BLLM_GROUP; cc++)
                keep[cc] = !sal[grp * BLLM_GROUP + cc];
            s = group_fit(w + i0, keep, BLLM_GROUP, false, r, NULL, &d->alpha[(size_t)r * ngrp + grp],
                          d->sign + i0);
            for (int cc = 0; cc < BLLM_GROUP; cc++)
                d->sign[i0 + cc] = sgn(w[i0 + cc]);
        }
    }
    free(tmp);
    return s;
}

bllm_status bllm_binary_rtn(bllm_type type, const float *w, int rows, int cols, const bllm_rtn_options *o,
                            bllm_binary_decomp *d)
{
    bllm_rtn_options def;
    if (!o) {
        bllm_rtn_options_default(&def);
        o = &def;
    }
    if (bllm_type_is_block(type))
        return bllm_fail(BLLM_ERR_ARG, "%s holds a calibrated decomposition; it has no round-to-nearest form "
                         "(quantize with --method %s)", bllm_type_name(type), bllm_type_name(type));
    bllm_status s = bllm_binary_decomp_init(d, type, rows, cols);
    if (s)
        return s;
    for (size_t i = 0; i < (size_t)rows * cols; i++)
        if (!isfinite(w[i])) {
            bllm_binary_decomp_free(d);
            return bllm_fail(BLLM_ERR_ARG, "weight at row %zu column %zu is not finite", i / (size_t)cols,
                             i % (size_t)cols);
        }
    switch (type) {
    case BLLM_TYPE_B1: s = rtn_b1(w, d); break;
    case BLLM_TYPE_ONEBIT: s = rtn_onebit(w, o->onebit_iters, d); break;
    case BLLM_TYPE_PB8: s = rtn_pb8(w, o->salient_frac, d); break;
    default: s = rtn_groups(w, d); break;
    }
    if (s)
        bllm_binary_decomp_free(d);
    return s;
}
