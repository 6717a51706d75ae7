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
        /* A is symmetric, so its column-major reading is the same matrix;
         * column-major calls spare LAPACKE's transposed copies. The last
         * factor, lower in column-major, is the row-major upper U. */
        lapack_int info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A, n);
        if (info == 0)
            info = LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', n, A, n);
        if (info == 0) {
            for (int j = 0; j < n; j++) /* column-major lower -> both triangles */
                for (int i = j + 1; i < n; i++)
                    A[(size_t)i * n + j] = A[(size_t)j * n + i];
            info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A, n);
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

/* The lazy update of the columns after a block, W[:, b1:] -= E U[b0:b1, b1:],
 * split by rows across the pool (single-threaded BLAS in each thread). */
typedef struct {
    double *W;
    const double *err, *U;
    int rows, cols, n, b0, b1, block;
} lazy_job;

static void lazy_worker(void *arg, int ith, int nth)
{
    const lazy_job *j = arg;
    int r0, r1;
    bllm_pool_range(j->rows, 8, ith, nth, &r0, &r1);
    if (r0 < r1)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, j->cols - j->b1, j->b1 - j->b0, -1.0,
                    j->err + (size_t)r0 * j->block, j->block, j->U + (size_t)j->b0 * j->n + j->b1, j->n, 1.0,
                    j->W + (size_t)r0 * j->cols + j->b1, j->cols);
}

bllm_status bllm_gptq_run(double *W, int rows, int cols, const bllm_gptq_hinv *h, int block, bool intra_block,
                          const bllm_gptq_method *m, void *ctx, float *Q, bllm_pool *pool)
{
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
        const int b1 = b0 + block < cols ? b0 + block : cols;
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
        if (b1 < cols) {
            lazy_job j = {W, err, h->U, rows, cols, n, b0, b1, block};
            if (pool)
                bllm_pool_run(pool, lazy_worker, &j);
            else
                lazy_worker(&j, 0, 1);
        }
    }
    free(err);
    free(q);
    return s;
}

/* trace(D H D^T) and trace(W H W^T) over rows of one thread, D = W - Q. */
typedef struct {
    const float *W, *Q;
    const double *H;
    int rows, cols;
    double *part; /* [thread][2] */
    bool nomem;
} err_job;

static void err_worker(void *arg, int ith, int nth)
{
    err_job *j = arg;
    int r0, r1;
    bllm_pool_range(j->rows, 8, ith, nth, &r0, &r1);
    j->part[2 * ith] = j->part[2 * ith + 1] = 0.0;
    if (r0 >= r1)
        return;
    const size_t n = (size_t)(r1 - r0) * j->cols;
    double *D = malloc(2 * n * sizeof(double)), *T = malloc(2 * n * sizeof(double));
    if (!D || !T) {
        j->nomem = true;
        free(D);
        free(T);
        return;
    }
    const float *w = j->W + (size_t)r0 * j->cols, *q = j->Q + (size_t)r0 * j->cols;
    for (size_t i = 0; i < n; i++) {
        D[i] = (double)w[i];
        D[n + i] = (double)w[i] - (double)q[i];
    }
    /* both in one product: [W; D] H */
    cblas_dsymm(CblasRowMajor, CblasRight, CblasUpper, 2 * (r1 - r0), j->cols, 1.0, j->H, j->cols, D, j->cols, 0.0,
                T, j->cols);
    double ref = 0.0, e = 0.0;
    for (size_t i = 0; i < n; i++) {
        ref += D[i] * T[i];
        e += D[n + i] * T[n + i];
    }
    j->part[2 * ith] = ref;
    j->part[2 * ith + 1] = e;
    free(D);
    free(T);
}

double bllm_gptq_output_error(const float *W, const float *Q, int rows, int cols, const double *H, bllm_pool *pool)
{
    int nth = pool ? bllm_pool_size(pool) : 1;
    double part[2 * 64];
    if (nth > 64)
        nth = 64, pool = NULL;
    err_job j = {W, Q, H, rows, cols, part, false};
    if (pool)
        bllm_pool_run(pool, err_worker, &j);
    else
        err_worker(&j, 0, 1);
    if (j.nomem)
        return NAN;
    double ref = 0.0, e = 0.0;
    for (int t = 0; t < nth; t++)
        ref += part[2 * t], e += part[2 * t + 1];
    return ref > 0.0 ? e / ref : (e > 0.0 ? INFINITY : 0.0);
}
