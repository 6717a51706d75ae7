#include "runtime/quant/gptq.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"

#define MAX_RETRIES 6

void bllm_gptq_hinv_free(bllm_gptq_hinv *h)
{
    if (!h)
        return;
    free(h->U);
    free(h->dead);
    memset(h, 0, sizeof *h);
}

bllm_status bllm_gptq_hinv_init(const double *H, int n, double percdamp, bllm_gptq_hinv *out)
{
    memset(out, 0, sizeof *out);
    if (n < 1 || !(percdamp >= 0.0))
        return bllm_fail(BLLM_ERR_ARG, "GPTQ: %d columns, damping %g", n, percdamp);
    size_t nn = (size_t)n * n;
    out->n = n;
    out->U = malloc(nn * sizeof(double));
    out->dead = calloc((size_t)n, 1);
    if (!out->U || !out->dead) {
        bllm_gptq_hinv_free(out);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for a %d x %d inverse Hessian", n, n);
    }
    double mean = 0.0;
    for (int i = 0; i < n; i++) {
        double d = H[(size_t)i * n + i];
        if (!isfinite(d) || d < 0.0) {
            bllm_gptq_hinv_free(out);
            return bllm_fail(BLLM_ERR_ARG, "GPTQ: Hessian diagonal %d is %g", i, d);
        }
        out->dead[i] = d == 0.0;
        mean += out->dead[i] ? 1.0 : d;
    }
    mean /= n;
    double damp = percdamp * mean;
    if (damp <= 0.0)
        damp = 1e-12 * (mean > 0 ? mean : 1.0);
    double *A = out->U;
    for (int attempt = 0;; attempt++) {
        memcpy(A, H, nn * sizeof(double));
        for (int i = 0; i < n; i++) {
            if (out->dead[i]) {
                /* nothing flows through this input: decouple it */
                for (int j = 0; j < n; j++)
                    A[(size_t)i * n + j] = A[(size_t)j * n + i] = 0.0;
                A[(size_t)i * n + i] = 1.0;
            }
            A[(size_t)i * n + i] += damp;
        }
        lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, A, n);
        if (info == 0)
            info = LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', n, A, n);
        if (info == 0) {
            for (int i = 0; i < n; i++) /* potri fills the lower triangle */
                for (int j = i + 1; j < n; j++)
                    A[(size_t)i * n + j] = A[(size_t)j * n + i];
            info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'U', n, A, n);
        }
        if (info == 0)
            break;
        if (info < 0 || attempt == MAX_RETRIES) {
            bllm_gptq_hinv_free(out);
            return bllm_fail(BLLM_ERR_ARG, "GPTQ: the damped Hessian (%d x %d, damping %g) is not positive "
                             "definite (LAPACK info %d)", n, n, damp, (int)info);
        }
        damp *= 10.0;
        out->retries++;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            A[(size_t)i * n + j] = 0.0;
    out->damp = damp;
    return BLLM_OK;
}

bllm_status bllm_gptq_run(double *W, int rows, int cols, const bllm_gptq_hinv *h, int block, bool intra_block,
                          const bllm_gptq_method *m, void *ctx, float *Q, bllm_pool *pool)
{
    (void)pool;
    if (h->n != cols || block < 1 || block % 64)
        return bllm_fail(BLLM_ERR_ARG, "GPTQ: %d columns against a %d x %d inverse Hessian, block %d (a "
                         "multiple of 64 is needed)", cols, h->n, h->n, block);
    const int n = cols;
    double *err = malloc((size_t)rows * block * sizeof(double));
    float *q = malloc((size_t)rows * sizeof(float));
    if (!err || !q) {
        free(err);
        free(q);
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for GPTQ (%d rows)", rows);
    }
    for (int c = 0; c < cols; c++)
        if (h->dead[c])
            for (int r = 0; r < rows; r++)
                W[(size_t)r * cols + c] = 0.0;
    bllm_status s = BLLM_OK;
    for (int b0 = 0; b0 < cols && !s; b0 += block) {
        const int b1 = b0 + block < cols ? b0 + block : cols, nb = b1 - b0;
        if (m->block_begin && (s = m->block_begin(ctx, W, rows, cols, b0, b1)))
            break;
        for (int i = b0; i < b1; i++) {
            m->column(ctx, W, rows, cols, i, q);
            const double d = h->U[(size_t)i * n + i];
            const double *u = h->U + (size_t)i * n;
            for (int r = 0; r < rows; r++) {
                double *wr = W + (size_t)r * cols;
                double e = (wr[i] - (double)q[r]) / d;
                wr[i] = q[r];
                Q[(size_t)r * cols + i] = q[r];
                err[(size_t)r * block + (i - b0)] = e;
                if (intra_block)
                    for (int j = i + 1; j < b1; j++)
                        wr[j] -= e * u[j];
            }
        }
        if (b1 < cols)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols - b1, nb, -1.0, err, block,
                        h->U + (size_t)b0 * n + b1, n, 1.0, W + b1, cols);
    }
    free(err);
    free(q);
    return s;
}

/* trace(D H D^T) for D rows x n (row-major double). */
static double quad_trace(const double *D, int rows, int n, const double *H, double *tmp)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, n, n, 1.0, D, n, H, n, 0.0, tmp, n);
    double t = 0.0;
    for (size_t i = 0; i < (size_t)rows * n; i++)
        t += D[i] * tmp[i];
    return t;
}

double bllm_gptq_output_error(const float *W, const float *Q, int rows, int cols, const double *H)
{
    size_t n = (size_t)rows * cols;
    double *D = calloc(n, sizeof(double)), *tmp = calloc(n, sizeof(double));
    if (!D || !tmp) {
        free(D);
        free(tmp);
        return NAN;
    }
    for (size_t i = 0; i < n; i++)
        D[i] = (double)W[i];
    double ref = quad_trace(D, rows, cols, H, tmp);
    for (size_t i = 0; i < n; i++)
        D[i] = (double)W[i] - (double)Q[i];
    double e = quad_trace(D, rows, cols, H, tmp);
    free(D);
    free(tmp);
    return ref > 0.0 ? e / ref : (e > 0.0 ? INFINITY : 0.0);
}
