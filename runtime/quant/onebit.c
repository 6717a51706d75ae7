/* OneBit's decomposition with post-training fitting, stored as onebit
 * (runtime/format/binary.h: W ~ diag(g) sign(W) diag(h), fp16 g and h).
 *
 * OneBit (Xu et al. 2024) initializes g and h by the sign-value-independent
 * decomposition (the rank-1 approximation of |W|) and then trains the whole
 * model by knowledge distillation. This is not that training: the signs stay
 * sign(W), the initialization is bllm_binary_rtn's (the same as
 * `--method rtn --type onebit`), and then g and h alone are refitted to the
 * layer's calibration outputs, minimizing
 *
 *   E(g, h) = trace((W - Q) Hd (W - Q)^T),  Q = diag(g) S diag(h),
 *
 * with Hd = H + damp I (H = 2 X X^T / n, damp from the engine's damped
 * inverse, which also keeps each solve well posed). E is quadratic in g for
 * fixed h and in h for fixed g, so the fit alternates two exact least-squares
 * steps, each of which can only lower E:
 *
 *   g step, per row r with v = s_r * h:  g_r = <W_r Hd, v> / <v Hd, v>
 *   h step: (Hd o (G^T G)) h = b,  G = diag(g) S,  b_c = sum_r g_r S_rc (W Hd)_rc
 *
 * (o the elementwise product; Hd o G^T G is positive definite by the Schur
 * product theorem, so Cholesky solves it). After the last step h is rounded
 * to fp16 and g refitted against the rounded h, then rounded: the stored
 * values are the ones the fit saw. No error compensation between columns:
 * the signs are fixed, so there is nothing for later columns to absorb. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/quant/method.h"
#include "runtime/quant/rtn.h"

typedef struct {
    int rows, cols;
    const double *W, *WH, *Hd; /* W, W Hd (rows x cols), Hd (cols x cols, full) */
    const double *wHw;         /* [rows] W_r Hd W_r^T */
    const uint8_t *sign;
} fit_ctx;

/* g step for every row given h; returns E. V and VH are rows x cols scratch. */
static double g_step(const fit_ctx *f, const double *h, double *g, double *V, double *VH, bool round16)
{
    const int rows = f->rows, cols = f->cols;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            V[i] = f->sign[i] ? h[c] : -h[c];
        }
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, rows, cols, 1.0, f->Hd, cols, V, cols, 0.0, VH, cols);
    double E = 0.0;
    for (int r = 0; r < rows; r++) {
        const double *v = V + (size_t)r * cols, *vh = VH + (size_t)r * cols, *wh = f->WH + (size_t)r * cols;
        double num = 0.0, den = 0.0;
        for (int c = 0; c < cols; c++)
            num += wh[c] * v[c], den += vh[c] * v[c];
        double gr = den > 0.0 ? num / den : 0.0;
        if (round16)
            gr = bllm_fp16_round((float)gr);
        g[r] = gr;
        E += f->wHw[r] - 2.0 * gr * num + gr * gr * den;
    }
    return E;
}

/* h step given g; A and G are cols x cols and rows x cols scratch. */
static bllm_status h_step(const fit_ctx *f, const double *g, double *h, double *A, double *G)
{
    const int rows = f->rows, cols = f->cols;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            G[i] = f->sign[i] ? g[r] : -g[r];
        }
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, cols, rows, 1.0, G, cols, 0.0, A, cols);
    for (int i = 0; i < cols; i++)
        for (int j = i; j < cols; j++)
            A[(size_t)i * cols + j] *= f->Hd[(size_t)i * cols + j];
    for (int c = 0; c < cols; c++)
        h[c] = 0.0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            h[c] += G[i] * f->WH[i];
        }
    /* A is symmetric: row-major upper is column-major lower. */
    lapack_int info = LAPACKE_dposv(LAPACK_COL_MAJOR, 'L', cols, 1, A, cols, h, cols);
    if (info != 0)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "onebit fit: the system for h is not positive definite (%d)",
                         (int)info);
    return BLLM_OK;
}

bllm_status bllm_method_onebit(const float *w, int rows, int cols, const double *H, const bllm_gptq_hinv *hinv,
                               const bllm_method_options *o, bllm_pool *pool, bllm_binary_decomp *d, float *sim,
                               bllm_method_report *rep)
{
    memset(rep, 0, sizeof *rep);
    bllm_rtn_options ro;
    bllm_rtn_options_default(&ro);
    bllm_status s = bllm_binary_rtn(BLLM_TYPE_ONEBIT, w, rows, cols, &ro, d);
    if (s)
        return s;
    const size_t n = (size_t)rows * cols, nn = (size_t)cols * cols;
    double *buf = malloc((5 * n + 2 * nn + 3 * (size_t)rows + 2 * (size_t)cols) * sizeof *buf);
    if (!buf) {
        bllm_binary_decomp_free(d);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the onebit fit of a %d x %d matrix", rows, cols);
    }
    double *W = buf, *WH = W + n, *V = WH + n, *VH = V + n, *G = VH + n;
    double *Hd = G + n, *A = Hd + nn, *wHw = A + nn, *g = wHw + rows, *gbest = g + rows;
    double *h = gbest + rows, *hbest = h + cols;
    for (int i = 0; i < cols; i++)
        for (int j = 0; j < cols; j++)
            Hd[(size_t)i * cols + j] = i <= j ? H[(size_t)i * cols + j] : H[(size_t)j * cols + i];
    for (int i = 0; i < cols; i++)
        Hd[(size_t)i * cols + i] += hinv->damp;
    for (size_t i = 0; i < n; i++)
        W[i] = w[i];
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, rows, cols, 1.0, Hd, cols, W, cols, 0.0, WH, cols);
    for (int r = 0; r < rows; r++) {
        double e = 0.0;
        for (int c = 0; c < cols; c++)
            e += W[(size_t)r * cols + c] * WH[(size_t)r * cols + c];
        wHw[r] = e;
    }
    /* The fit is a few large BLAS products and solves, with the pool idle
     * meanwhile: let OpenBLAS use its threads for them (the engine keeps it
     * single-threaded otherwise, for the products inside the pool). */
    openblas_set_num_threads(pool ? bllm_pool_size(pool) : 1);
    fit_ctx f = {rows, cols, W, WH, Hd, wHw, d->sign};
    for (int r = 0; r < rows; r++)
        g[r] = d->g[r];
    for (int c = 0; c < cols; c++)
        h[c] = d->h[c];
    /* E at the initialization (g, h as stored); the fit keeps the best. */
    double best = 0.0;
    {
        double *Q = V;
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                size_t i = (size_t)r * cols + c;
                Q[i] = W[i] - (double)bllm_binary_decomp_value(d, r, c);
            }
        cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, rows, cols, 1.0, Hd, cols, Q, cols, 0.0, VH, cols);
        for (size_t i = 0; i < n; i++)
            best += Q[i] * VH[i];
    }
    memcpy(gbest, g, rows * sizeof *g);
    memcpy(hbest, h, cols * sizeof *h);
    double prev = best;
    for (int it = 0; it < o->onebit_fit_iters; it++) {
        if ((s = h_step(&f, g, h, A, G)))
            goto done;
        double E = g_step(&f, h, g, V, VH, false);
        if (E < best) {
            best = E;
            memcpy(gbest, g, rows * sizeof *g);
            memcpy(hbest, h, cols * sizeof *h);
        }
        if (prev - E <= 1e-7 * prev)
            break;
        prev = E;
    }
    if (o->onebit_fit_iters > 0) {
        /* Store h as fp16, then the g that fits the stored h best. */
        for (int c = 0; c < cols; c++) {
            float v = bllm_fp16_round((float)hbest[c]);
            if (!isfinite(v)) {
                s = bllm_fail(BLLM_ERR_UNSUPPORTED, "onebit fit: h[%d] = %g is beyond the fp16 range", c, hbest[c]);
                goto done;
            }
            h[c] = v;
            d->h[c] = v;
        }
        g_step(&f, h, g, V, VH, true);
        for (int r = 0; r < rows; r++) {
            if (!isfinite(g[r])) {
                s = bllm_fail(BLLM_ERR_UNSUPPORTED, "onebit fit: g[%d] is beyond the fp16 range", r);
                goto done;
            }
            d->g[r] = (float)g[r];
        }
    }
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            sim[(size_t)r * cols + c] = bllm_binary_decomp_value(d, r, c);
    rep->salient_share = 0.0;
    rep->rel_error = sqrt(bllm_gptq_output_error(w, sim, rows, cols, H, pool));
done:
    openblas_set_num_threads(1);
    free(buf);
    if (s)
        bllm_binary_decomp_free(d);
    return s;
}
