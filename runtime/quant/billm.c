/* BiLLM (Huang et al. 2024): binarization with residual salient columns
 * and a magnitude split of the rest, with GPTQ-style compensation, stored
 * exactly as the billm type (runtime/format/binary.h).
 *
 * Per block of 128 columns (the last one 64 wide when cols % 128 == 64),
 * from the weights as compensated so far:
 *  1. Salient columns: score_c = sum_r w_rc^2 / U_cc^2 (U the Cholesky
 *     factor of H^-1, as the authors' "hessian" metric), columns ranked by
 *     it; the count k in 1..max_salient_cols minimizes the block's squared
 *     error when the top k columns and the rest are each binarized to order
 *     2, as in BiLLM's structural search.
 *  2. Break point: among the 81 quantiles (10% .. 90%) of |w| over the
 *     block's non-salient weights, the p minimizing the squared error of
 *     order-1 binarization of {|w| < p} (concentrated) and {|w| >= p}
 *     (sparse), each per row with its own mean and scale.
 *  3. Per row: salient columns mu1, a1 on w, then mu2, a2 on the residual;
 *     each group mu, a. mu is the mean, a the mean |w - mu|, every scale
 *     rounded to fp16 as soon as it is known (what is stored is what the
 *     later steps see).
 * Then the columns are quantized one by one, the sign taken from the
 * compensated weight, and each column's error is fed to the later columns
 * (bllm_gptq_run).
 *
 * Where this differs from the authors' code (github.com/Aaronhuang-778/BiLLM)
 * and why:
 *  - Their "hessian" mode searches the salient count and break point on the
 *    scores w^2 / U_cc^2 themselves, binarizing scores rather than weights;
 *    here both searches measure the error of the weights, as their
 *    "magnitude" mode does.
 *  - Their break-point quantiles include the zeros left where salient
 *    columns were masked out; here only non-salient weights count.
 *  - Their loop quantizes a whole block from its weights at the block's
 *    start and feeds errors to later blocks only. By default here errors
 *    are also fed to the block's later columns (GPTQ proper), the scales
 *    and groups staying those chosen at the block's start;
 *    --billm-block-errors off restores their behaviour.
 *  - torch.sign(0) is 0 (the weight becomes the mean); here 0 takes +. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/error.h"
#include "runtime/quant/gptq.h"
#include "runtime/quant/method.h"

#define N_SPLITS 81 /* quantiles 0.10, 0.11, ..., 0.90 */

typedef struct {
    bllm_binary_decomp *d;
    const uint8_t *keep; /* stbllm: 1 = kept (rows x cols); NULL = all kept */
    int regions;         /* magnitude regions of the non-salient weights: 2
                            (billm's groups) or 3 (stbllm's) */
    const bllm_gptq_hinv *h;
    const bllm_method_options *o;
    bllm_pool *pool;
    int rows, cols, nblk;
    /* the current block */
    const double *W;
    int c0, c1, nb, k_max;
    int *order;          /* block columns by descending score */
    double *err_k;       /* [threads][k_max + 1] */
    double *err_p;       /* [threads][N_SPLITS] */
    double split[N_SPLITS];
    int nth;
    uint64_t n_salient_cols;
    bllm_status status;
} billm_ctx;

/* Scale slots of a block row (binary.h's BLLM_BILLM_* and BLLM_STBLLM_*
 * enums are both this order): region k at 2k, 2k + 1; then the salient
 * orders. */
#define SC_MU(k) (2 * (k))
#define SC_A(k) (2 * (k) + 1)
#define SC_MU1(x) (2 * (x)->regions)
#define SC_A1(x) (2 * (x)->regions + 1)
#define SC_MU2(x) (2 * (x)->regions + 2)
#define SC_A2(x) (2 * (x)->regions + 3)
#define SC_N(x) (2 * (x)->regions + 4)

static inline bool kept(const billm_ctx *x, size_t i) { return !x->keep || x->keep[i]; }

/* fp16-rounded scale; beyond the fp16 range is an error, not an inf. */
static int h16(double x, float *out)
{
    float v = bllm_fp16_round((float)x);
    if (!isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* The searches below evaluate thousands of candidate fits per row, so
 * these sums keep four independent accumulators (the loops are latency
 * bound otherwise, and the compiler may not reorder floating-point sums). */
static double sum4(const double *v, int n)
{
    double a[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++)
            a[l] += v[i + l];
    for (; i < n; i++)
        a[0] += v[i];
    return (a[0] + a[1]) + (a[2] + a[3]);
}

/* sum |v - mu| and sum (v - mu)^2 */
static void dev4(const double *v, int n, double mu, double *ab, double *sq)
{
    double a[4] = {0, 0, 0, 0}, q[4] = {0, 0, 0, 0};
    int i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) {
            double d = v[i + l] - mu;
            a[l] += fabs(d);
            q[l] += d * d;
        }
    for (; i < n; i++) {
        double d = v[i] - mu;
        a[0] += fabs(d);
        q[0] += d * d;
    }
    *ab = (a[0] + a[1]) + (a[2] + a[3]);
    *sq = (q[0] + q[1]) + (q[2] + q[3]);
}

/* Order-1 fit of v[0..n): the squared error sum (v - mu - a s)^2 with mu the
 * mean, a = mean |v - mu|, s the sign of v - mu, which equals
 * sum (v - mu)^2 - n a^2. */
static double fit1_err(const double *v, int n)
{
    if (n == 0)
        return 0.0;
    double mu = sum4(v, n) / n, ab, sq;
    dev4(v, n, mu, &ab, &sq);
    double a = ab / n;
    return sq - n * a * a;
}

/* Order-2 (residual) fit: order 1, then order 1 again on what it leaves. */
static double fit2_err(const double *v, int n, double *res)
{
    if (n == 0)
        return 0.0;
    double mu = sum4(v, n) / n, ab, sq;
    dev4(v, n, mu, &ab, &sq);
    double a = ab / n;
    for (int i = 0; i < n; i++)
        res[i] = v[i] - mu - (v[i] - mu >= 0.0 ? a : -a);
    return fit1_err(res, n);
}

double bllm_billm_fit_error(const double *v, int n, int order)
{
    if (order <= 1)
        return fit1_err(v, n);
    double res[BLLM_BILLM_BLOCK];
    double *r = n <= BLLM_BILLM_BLOCK ? res : malloc((size_t)n * sizeof *r);
    if (!r)
        return NAN;
    double e = fit2_err(v, n, r);
    if (r != res)
        free(r);
    return e;
}

/* Step 1 for rows of one thread: err_k[k] += error with the top k salient. */
static void search_count_worker(void *arg, int ith, int nth)
{
    billm_ctx *x = arg;
    int r0, r1;
    bllm_pool_range(x->rows, 1, ith, nth, &r0, &r1);
    double sv[BLLM_BILLM_BLOCK], nv[BLLM_BILLM_BLOCK], res[BLLM_BILLM_BLOCK], row[BLLM_BILLM_BLOCK];
    double *err = x->err_k + (size_t)ith * (x->k_max + 1);
    int pos[BLLM_BILLM_BLOCK + 1];
    for (int r = r0; r < r1; r++) {
        /* kept row values in descending-score column order; pos[i]: how
         * many of them lie in the first i columns of that order */
        int n = 0;
        for (int i = 0; i < x->nb; i++) {
            pos[i] = n;
            size_t idx = (size_t)r * x->cols + x->c0 + x->order[i];
            if (kept(x, idx))
                row[n++] = x->W[idx];
        }
        pos[x->nb] = n;
        for (int k = 1; k <= x->k_max; k++) {
            int ks = pos[k];
            for (int i = 0; i < ks; i++)
                sv[i] = row[i];
            for (int i = ks; i < n; i++)
                nv[i - ks] = row[i];
            err[k] += fit2_err(sv, ks, res) + fit2_err(nv, n - ks, res);
        }
    }
}

/* Prefix sums over a row's non-salient weights sorted by value: the sets of
 * step 2 are {-p < w < p} (contiguous) and its complement (two ends). */
typedef struct {
    const double *v; /* sorted */
    const double *s1, *s2; /* s1[i] = sum v[0..i), s2 sums of squares */
} sorted_row;

/* First index in [a, b) with v >= t. */
static int lower_bound(const double *v, int a, int b, double t)
{
    while (a < b) {
        int m = a + (b - a) / 2;
        if (v[m] < t)
            a = m + 1;
        else
            b = m;
    }
    return a;
}

/* Sum |v - mu| over [a, b). */
static double abs_dev(const sorted_row *s, int a, int b, double mu)
{
    int m = lower_bound(s->v, a, b, mu);
    return (mu * (m - a) - (s->s1[m] - s->s1[a])) + ((s->s1[b] - s->s1[m]) - mu * (b - m));
}

/* Order-1 error of the union of [a0, b0) and [a1, b1). */
static double fit1_err_ranges(const sorted_row *s, int a0, int b0, int a1, int b1)
{
    int n = (b0 - a0) + (b1 - a1);
    if (n == 0)
        return 0.0;
    double sum = (s->s1[b0] - s->s1[a0]) + (s->s1[b1] - s->s1[a1]);
    double sq = (s->s2[b0] - s->s2[a0]) + (s->s2[b1] - s->s2[a1]);
    double mu = sum / n;
    double a = (abs_dev(s, a0, b0, mu) + abs_dev(s, a1, b1, mu)) / n;
    double e = (sq - n * mu * mu) - n * a * a;
    return e > 0.0 ? e : 0.0;
}

/* Sort v[0..n), n <= BLLM_BILLM_BLOCK (one row of a block): bottom-up merge
 * sort, no calls through a comparison pointer. */
static void sort_row(double *v, int n)
{
    double tmp[BLLM_BILLM_BLOCK], *a = v, *b = tmp;
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                b[k++] = a[j] < a[i] ? a[j++] : a[i++];
            while (i < mid)
                b[k++] = a[i++];
            while (j < hi)
                b[k++] = a[j++];
        }
        double *t = a;
        a = b, b = t;
    }
    if (a != v)
        memcpy(v, a, (size_t)n * sizeof *v);
}

/* Sort non-negative doubles (as their bit patterns, which order alike) by
 * an LSD radix sort, bytes at a time; tmp holds n values. */
static void sort_nonneg(double *v, double *tmp, size_t n)
{
    uint64_t *a = (uint64_t *)v, *b = (uint64_t *)tmp;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[(a[i] >> shift & 255) + 1]++;
        if (count[(a[0] >> shift & 255) + 1] == n)
            continue; /* this byte is the same everywhere */
        for (int k = 0; k < 256; k++)
            count[k + 1] += count[k];
        for (size_t i = 0; i < n; i++)
            b[count[a[i] >> shift & 255]++] = a[i];
        uint64_t *t = a;
        a = b, b = t;
    }
    if ((double *)a != v)
        memcpy(v, a, n * sizeof *v);
}

/* Step 2 for rows of one thread: err_p[i] += error with break point split[i]. */
static void search_split_worker(void *arg, int ith, int nth)
{
    billm_ctx *x = arg;
    int r0, r1;
    bllm_pool_range(x->rows, 1, ith, nth, &r0, &r1);
    double v[BLLM_BILLM_BLOCK], s1[BLLM_BILLM_BLOCK + 1], s2[BLLM_BILLM_BLOCK + 1];
    double *err = x->err_p + (size_t)ith * N_SPLITS;
    const uint8_t *sal = x->d->col_salient + x->c0;
    for (int r = r0; r < r1; r++) {
        int n = 0;
        for (int i = 0; i < x->nb; i++)
            if (!sal[i] && kept(x, (size_t)r * x->cols + x->c0 + i))
                v[n++] = x->W[(size_t)r * x->cols + x->c0 + i];
        sort_row(v, n);
        s1[0] = s2[0] = 0.0;
        for (int i = 0; i < n; i++) {
            s1[i + 1] = s1[i] + v[i];
            s2[i + 1] = s2[i] + v[i] * v[i];
        }
        sorted_row sr = {v, s1, s2};
        for (int t = 0; t < N_SPLITS; t++) {
            double p = x->split[t];
            /* concentrated: -p < w < p; sparse: w <= -p or w >= p */
            int a = lower_bound(v, 0, n, -p);
            while (a < n && v[a] <= -p)
                a++;
            int b = lower_bound(v, a, n, p);
            if (x->regions == 2) {
                err[t] += fit1_err_ranges(&sr, a, b, b, b) + fit1_err_ranges(&sr, 0, a, b, n);
                continue;
            }
            /* three regions: |w| < p, p <= |w| < 2p, 2p <= |w| */
            int a2 = lower_bound(v, 0, a, -2.0 * p);
            while (a2 < a && v[a2] <= -2.0 * p)
                a2++;
            int b2 = lower_bound(v, b, n, 2.0 * p);
            err[t] += fit1_err_ranges(&sr, a, b, b, b) + fit1_err_ranges(&sr, a2, a, b, b2) +
                      fit1_err_ranges(&sr, 0, a2, b2, n);
        }
    }
}

/* Quantile q of sorted a[0..n) with linear interpolation (numpy's default). */
static double quantile(const double *a, size_t n, double q)
{
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n)
        return a[n - 1];
    return a[lo] + (a[lo + 1] - a[lo]) * (pos - (double)lo);
}

/* mu and a of the weights of row r in block columns selected by keep(i),
 * from values v (the residual for the second order), fp16-rounded. */
static int fit_group(const double *v, int n, float *mu, float *a)
{
    if (n == 0) {
        *mu = *a = 0.0f;
        return 0;
    }
    double sum = 0.0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    if (h16(sum / n, mu))
        return -1;
    double ab = 0.0;
    for (int i = 0; i < n; i++)
        ab += fabs(v[i] - (double)*mu);
    return h16(ab / n, a);
}

/* The region of |w| for break point p: 0 below p, then 1 (and for three
 * regions 2 from 2p on). */
static inline int region_of(const billm_ctx *x, double w, double p)
{
    double a = fabs(w);
    return a < p ? 0 : x->regions == 2 || a < 2.0 * p ? 1 : 2;
}

/* Step 3 for rows of one thread. */
static void fit_worker(void *arg, int ith, int nth)
{
    billm_ctx *x = arg;
    int r0, r1;
    bllm_pool_range(x->rows, 1, ith, nth, &r0, &r1);
    const uint8_t *sal = x->d->col_salient + x->c0;
    const double p = x->split[0]; /* the chosen break point, moved to slot 0 */
    const int b = x->c0 / BLLM_BILLM_BLOCK;
    double vs[BLLM_BILLM_BLOCK], vr[3][BLLM_BILLM_BLOCK];
    /* billm keeps the group in sign2, stbllm the region in its own array */
    uint8_t *reg_all = x->d->type == BLLM_TYPE_STBLLM ? x->d->region : x->d->sign2;
    for (int r = r0; r < r1; r++) {
        const size_t row0 = (size_t)r * x->cols + x->c0;
        const double *w = x->W + row0;
        uint8_t *reg = reg_all + row0;
        float *sc = x->d->bscale + ((size_t)r * x->nblk + b) * SC_N(x);
        int ns = 0, nr[3] = {0, 0, 0};
        for (int i = 0; i < x->nb; i++) {
            if (!kept(x, row0 + i))
                continue;
            if (sal[i]) {
                vs[ns++] = w[i];
            } else {
                int k = region_of(x, w[i], p);
                vr[k][nr[k]++] = w[i];
                reg[i] = (uint8_t)k;
            }
        }
        int bad = 0;
        for (int k = 0; k < x->regions; k++)
            bad = bad || fit_group(vr[k], nr[k], &sc[SC_MU(k)], &sc[SC_A(k)]);
        bad = bad || fit_group(vs, ns, &sc[SC_MU1(x)], &sc[SC_A1(x)]);
        /* residual of the first order, with the stored (rounded) scales */
        for (int i = 0; i < ns; i++) {
            float v1 = sc[SC_MU1(x)] + (vs[i] - sc[SC_MU1(x)] >= 0.0 ? sc[SC_A1(x)] : -sc[SC_A1(x)]);
            vs[i] -= (double)v1;
        }
        bad = bad || fit_group(vs, ns, &sc[SC_MU2(x)], &sc[SC_A2(x)]);
        if (bad)
            x->status = BLLM_ERR_UNSUPPORTED; /* reported by the caller */
    }
}

static bllm_status block_begin(void *arg, const double *W, int rows, int cols, int c0, int c1)
{
    billm_ctx *x = arg;
    x->W = W;
    x->c0 = c0;
    x->c1 = c1;
    x->nb = c1 - c0;
    x->k_max = x->o->max_salient_cols < x->nb - 1 ? x->o->max_salient_cols : x->nb - 1;

    /* 1. salient columns */
    double score[BLLM_BILLM_BLOCK];
    for (int i = 0; i < x->nb; i++) {
        double u = x->h->U[(size_t)(c0 + i) * cols + c0 + i], s = 0.0;
        for (int r = 0; r < rows; r++) {
            double w = kept(x, (size_t)r * cols + c0 + i) ? W[(size_t)r * cols + c0 + i] : 0.0;
            s += w * w;
        }
        score[i] = s / (u * u);
        x->order[i] = i;
    }
    for (int i = 1; i < x->nb; i++) { /* stable insertion sort, descending */
        int v = x->order[i], j = i;
        while (j > 0 && score[x->order[j - 1]] < score[v]) {
            x->order[j] = x->order[j - 1];
            j--;
        }
        x->order[j] = v;
    }
    memset(x->err_k, 0, (size_t)x->nth * (x->k_max + 1) * sizeof(double));
    if (x->pool)
        bllm_pool_run(x->pool, search_count_worker, x);
    else
        search_count_worker(x, 0, 1);
    int best_k = 1;
    double best = INFINITY;
    for (int k = 1; k <= x->k_max; k++) {
        double e = 0.0;
        for (int t = 0; t < x->nth; t++)
            e += x->err_k[(size_t)t * (x->k_max + 1) + k];
        if (e < best)
            best = e, best_k = k;
    }
    uint8_t *sal = x->d->col_salient + c0;
    memset(sal, 0, (size_t)x->nb);
    for (int i = 0; i < best_k; i++)
        sal[x->order[i]] = 1;
    x->n_salient_cols += (uint64_t)best_k;

    /* 2. break point among the quantiles of the non-salient |w| */
    size_t n = (size_t)rows * (x->nb - best_k), m = 0;
    double *a = malloc(2 * (n ? n : 1) * sizeof *a);
    if (!a)
        return bllm_fail(BLLM_ERR_NOMEM, "out of memory for the billm break-point search");
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < x->nb; i++)
            if (!sal[i] && kept(x, (size_t)r * cols + c0 + i))
                a[m++] = fabs(W[(size_t)r * cols + c0 + i]) + 0.0; /* + 0.0: no -0 */
    if (m)
        sort_nonneg(a, a + n, m);
    for (int t = 0; t < N_SPLITS; t++)
        x->split[t] = m ? quantile(a, m, 0.10 + 0.01 * t) : 0.0;
    free(a);
    memset(x->err_p, 0, (size_t)x->nth * N_SPLITS * sizeof(double));
    if (x->pool)
        bllm_pool_run(x->pool, search_split_worker, x);
    else
        search_split_worker(x, 0, 1);
    int best_t = 0;
    best = INFINITY;
    for (int t = 0; t < N_SPLITS; t++) {
        double e = 0.0;
        for (int th = 0; th < x->nth; th++)
            e += x->err_p[(size_t)th * N_SPLITS + t];
        if (e < best)
            best = e, best_t = t;
    }
    x->split[0] = x->split[best_t];

    /* 3. the scales of every row */
    x->status = BLLM_OK;
    if (x->pool)
        bllm_pool_run(x->pool, fit_worker, x);
    else
        fit_worker(x, 0, 1);
    if (x->status)
        return bllm_fail(BLLM_ERR_UNSUPPORTED, "%s: a scale of columns %d..%d is beyond the fp16 range",
                         bllm_type_name(x->d->type), c0, c1 - 1);
    return BLLM_OK;
}

static void column(void *arg, const double *W, int rows, int cols, int c, float *q)
{
    billm_ctx *x = arg;
    const int b = c / BLLM_BILLM_BLOCK, salient = x->d->col_salient[c];
    const bool stb = x->d->type == BLLM_TYPE_STBLLM;
    for (int r = 0; r < rows; r++) {
        const size_t i = (size_t)r * cols + c;
        const float *sc = x->d->bscale + ((size_t)r * x->nblk + b) * SC_N(x);
        const double w = W[i];
        uint8_t s = 0, s2 = 0;
        if (!kept(x, i)) {
            /* pruned: stays 0, and its whole weight is the error the later
             * columns absorb; nothing is ever written back here */
        } else if (salient) {
            s = w - sc[SC_MU1(x)] >= 0.0;
            float v1 = sc[SC_MU1(x)] + (s ? sc[SC_A1(x)] : -sc[SC_A1(x)]);
            s2 = (w - v1) - sc[SC_MU2(x)] >= 0.0;
        } else {
            int k = stb ? x->d->region[i] : x->d->sign2[i];
            s = w - sc[SC_MU(k)] >= 0.0;
            s2 = stb ? 0 : (uint8_t)k;
        }
        x->d->sign[i] = s;
        x->d->sign2[i] = s2;
        q[r] = bllm_binary_decomp_value(x->d, r, c);
    }
}

/* The BiLLM family: billm (keep NULL, two groups) and stbllm (an N:M mask,
 * three regions). */
bllm_status bllm_billm_family_run(bllm_type type, const uint8_t *keep, const float *w, int rows, int cols,
                                  const double *H, const bllm_gptq_hinv *h, const bllm_method_options *o,
                                  bllm_pool *pool, bllm_binary_decomp *d, float *sim, bllm_method_report *rep)
{
    memset(rep, 0, sizeof *rep);
    const char *name = bllm_type_name(type);
    if (o->block != BLLM_BILLM_BLOCK)
        return bllm_fail(BLLM_ERR_ARG, "%s stores scales per %d columns; --block must be %d", name,
                         BLLM_BILLM_BLOCK, BLLM_BILLM_BLOCK);
    if (o->max_salient_cols < 1)
        return bllm_fail(BLLM_ERR_ARG, "%s needs at least 1 salient column per block to search", name);
    bllm_status s = bllm_binary_decomp_init(d, type, rows, cols);
    if (s)
        return s;
    if (type == BLLM_TYPE_STBLLM)
        memcpy(d->mask, keep, (size_t)rows * cols);
    billm_ctx x = {.d = d, .keep = type == BLLM_TYPE_STBLLM ? keep : NULL,
                   .regions = type == BLLM_TYPE_STBLLM ? 3 : 2, .h = h, .o = o, .pool = pool, .rows = rows,
                   .cols = cols, .nblk = bllm_billm_blocks(cols), .nth = pool ? bllm_pool_size(pool) : 1};
    double *W = malloc((size_t)rows * cols * sizeof *W);
    x.order = malloc(BLLM_BILLM_BLOCK * sizeof *x.order);
    x.err_k = malloc((size_t)x.nth * (BLLM_BILLM_BLOCK + 1) * sizeof *x.err_k);
    x.err_p = malloc((size_t)x.nth * N_SPLITS * sizeof *x.err_p);
    if (!W || !x.order || !x.err_k || !x.err_p) {
        s = bllm_fail(BLLM_ERR_NOMEM, "out of memory for %s on a %d x %d matrix", name, rows, cols);
    } else {
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            W[i] = w[i];
        bllm_gptq_method m = {block_begin, column};
        s = bllm_gptq_run(W, rows, cols, h, o->block, o->intra_block, &m, &x, sim, pool);
    }
    if (!s) {
        rep->salient_share = (double)x.n_salient_cols / cols;
        rep->rel_error = sqrt(bllm_gptq_output_error(w, sim, rows, cols, H, pool));
    }
    free(W);
    free(x.order);
    free(x.err_k);
    free(x.err_p);
    if (s)
        bllm_binary_decomp_free(d);
    return s;
}

bllm_status bllm_method_billm(const float *w, int rows, int cols, const double *H, const bllm_gptq_hinv *h,
                              const bllm_method_options *o, bllm_pool *pool, bllm_binary_decomp *d, float *sim,
                              bllm_method_report *rep)
{
    return bllm_billm_family_run(BLLM_TYPE_BILLM, NULL, w, rows, cols, H, h, o, pool, d, sim, rep);
}
